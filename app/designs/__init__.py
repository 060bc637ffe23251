"""Experiment designs: design files and presets, schedule generation, run-time rules.

Pure code: imports only `app.schedule` and `app.errors` (no database, no HTTP).
See docs/designs.md for the design-file reference.
"""

from app.designs.errors import ArmsFull, DesignInvalid
from app.designs.exclusions import ParticipantSummary, evaluate_exclusions
from app.designs.generate import (
    AnsweredTrial,
    attempts_to_skip,
    choose_arm,
    fill_repeated,
    generate_schedule,
)
from app.designs.loader import (
    check_design_against,
    load_design,
    parse_design,
    preset_names,
    preset_text,
)
from app.designs.model import Design, design_arms, design_encoding, design_timing
from app.designs.preview import expected_arm, preview_rows, render_preview

__all__ = [
    "AnsweredTrial",
    "ArmsFull",
    "Design",
    "DesignInvalid",
    "ParticipantSummary",
    "attempts_to_skip",
    "check_design_against",
    "choose_arm",
    "design_arms",
    "design_encoding",
    "design_timing",
    "evaluate_exclusions",
    "expected_arm",
    "fill_repeated",
    "generate_schedule",
    "load_design",
    "parse_design",
    "preset_names",
    "preset_text",
    "preview_rows",
    "render_preview",
]
