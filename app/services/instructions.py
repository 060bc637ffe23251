"""What the instructions page says, derived from the design and the participant's schedule.

The page must match what the participant will do: which blocks give trial-wise feedback and in
which style, whether the buttons are locked at first, how many blocks and breaks there are. It
is read off the participant's stored schedule (blocks and per-trial feedback), so it cannot
disagree with what the task page then shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.designs import Design
from app.models import Participant, ScheduledTrial

EXAMPLE_IMAGES = "/static/example"
"""The example screen's images (a made-up unit, `app.demo.write_example_images`)."""


@dataclass(frozen=True)
class InstructionFacts:
    """The facts the instructions state (see templates/participant/instructions.html)."""

    feedback_kinds: tuple[str, ...]
    """Block kinds whose trials show trial-wise feedback, in schedule order."""
    feedback_style: str
    score_kinds: tuple[str, ...]
    """Block kinds that end with "You got X out of N trials correct"."""
    response_lock_s: float
    n_blocks: int
    """Blocks a participant goes through (reserved practice repeats not counted)."""
    n_practice_blocks: int
    n_breaks: int
    practice_attempts: int
    """The most attempts a practice block repeated until all correct may take (0: none is)."""
    n_trials: int
    max_only: bool
    """Some conditions show only the maximally activating side."""
    one_reference: bool
    """Some conditions show one reference image per side."""
    no_references: bool
    """Some trials show no reference images at all."""
    example: dict[str, Any]


def _ordered_unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def example_screen(design: Design) -> dict[str, Any]:
    """The example stage: the design's largest layout, drawn with the example unit's images."""
    layouts = [(c.grid, c.references) for c in design.conditions.values() if c.references]
    grid_mode, n_refs = max(layouts, key=lambda g: (g[1], g[0] == "min_max"), default=("none", 0))
    refs = range(n_refs)
    return {
        "grid_mode": grid_mode,
        "n_references": n_refs,
        "min": [f"{EXAMPLE_IMAGES}/min_{i}.webp" for i in refs] if grid_mode == "min_max" else [],
        "max": [f"{EXAMPLE_IMAGES}/max_{i}.webp" for i in refs],
        # The maximally activating query on top: the example explains, it is not a trial.
        "upper": f"{EXAMPLE_IMAGES}/max_query.webp",
        "lower": f"{EXAMPLE_IMAGES}/min_query.webp",
    }


def instruction_facts(
    session: Session, participant: Participant, design: Design
) -> InstructionFacts:
    """The instructions' facts for `participant` (enrolled, schedule stored).

    Args:
        session: the request's session (one query of the participant's scheduled trials).
        participant: whose schedule the page describes.
        design: the experiment's design.

    Returns:
        The facts; kinds are "practice", "main" and "repeated".
    """
    blocks = participant.blocks
    # The instructions explain the 2-AFC part: task blocks (ratings) are not counted here.
    first_attempts = [b for b in blocks if b.get("attempt", 1) == 1 and b["kind"] != "task"]
    rows = session.execute(
        select(
            ScheduledTrial.block_index,
            ScheduledTrial.feedback,
            ScheduledTrial.grid_mode,
            ScheduledTrial.n_references,
        )
        .where(ScheduledTrial.participant_id == participant.id, ScheduledTrial.trial_kind != "task")
        .order_by(ScheduledTrial.trial_index)
    ).all()
    feedback_kinds = _ordered_unique([blocks[r.block_index]["kind"] for r in rows if r.feedback])
    modes = {(r.grid_mode, r.n_references) for r in rows}
    practice = [b for b in blocks if b["kind"] == "practice"]
    return InstructionFacts(
        feedback_kinds=feedback_kinds,
        feedback_style=design.feedback.style,
        score_kinds=_ordered_unique([b["kind"] for b in first_attempts if b["block_feedback"]]),
        response_lock_s=design.timing.response_lock_ms / 1000,
        n_blocks=len(first_attempts),
        n_practice_blocks=sum(1 for b in first_attempts if b["kind"] == "practice"),
        n_breaks=sum(1 for b in first_attempts if b["break_after"]),
        practice_attempts=max(
            (b["max_attempts"] for b in practice if b.get("repeat_until_correct")), default=0
        ),
        n_trials=sum(b["n_trials"] for b in first_attempts),
        max_only=any(mode == "max_only" for mode, _ in modes),
        one_reference=any(n == 1 for _, n in modes),
        no_references=any(mode == "none" for mode, _ in modes),
        example=example_screen(design),
    )
