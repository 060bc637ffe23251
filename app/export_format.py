"""The response export format (`responses.csv`): column order and codebook.

Plain module on purpose: the exporter (`app.services.export`) and the analysis (`app.analysis`)
both import it, so it must not import pandas, numpy or anything from app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnType = Literal["str", "int", "float", "bool", "datetime"]

BOOL_TRUE = "true"
BOOL_FALSE = "false"
EXCLUSION_REASON_SEPARATOR = ";"


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One column of `responses.csv`.

    Attributes:
        name: Column header.
        type: Value type as written in the CSV: `str`, `int`, `float` (decimal point), `bool`
            (`true`/`false`) or `datetime` (ISO 8601, UTC, e.g. `2025-03-01T12:00:00.123Z`).
        description: What the value means.
        allowed: The only values allowed, as they appear in the file; None when any value of the
            type is allowed.
        nullable: Whether the cell may be empty.
    """

    name: str
    type: ColumnType
    description: str
    allowed: tuple[str, ...] | None = None
    nullable: bool = False


_SPECS: tuple[ColumnSpec, ...] = (
    ColumnSpec("experiment", "str", "Experiment (study) identifier."),
    ColumnSpec(
        "session",
        "str",
        "Launched session (participant link batch) the participant enrolled through.",
        nullable=True,
    ),
    ColumnSpec("participant", "str", "Opaque participant identifier, unique within an experiment."),
    ColumnSpec(
        "participant_group",
        "str",
        "Participant group, e.g. `expert`/`lay` (Experiment II); empty when not used.",
        nullable=True,
    ),
    ColumnSpec(
        "trial_index", "int", "0-based position of the trial in the participant's schedule."
    ),
    ColumnSpec("block_index", "int", "0-based block the trial belongs to.", nullable=True),
    ColumnSpec(
        "trial_kind",
        "str",
        "`main` trials are analysed; `practice`, `catch` (identical-image attention checks) and "
        "`repeated` (consistency re-tests) are not.",
        allowed=("practice", "main", "catch", "repeated"),
    ),
    ColumnSpec("condition", "str", "Condition label of the design (e.g. `natural`, `Max-9`)."),
    ColumnSpec(
        "reference_type",
        "str",
        "Kind of reference images shown: natural exemplars, synthetic feature visualizations, "
        "none (baseline) or mixed (follow-up designs).",
        allowed=("natural", "synthetic", "none", "mixed"),
    ),
    ColumnSpec(
        "n_references",
        "int",
        "Reference images per side (0 for the `none` baseline).",
        allowed=("0", "1", "9"),
    ),
    ColumnSpec(
        "grid_mode",
        "str",
        "Which reference grids were shown: min and max, max only, or none.",
        allowed=("min_max", "max_only", "none"),
    ),
    ColumnSpec("layer", "str", "CNN layer of the unit (e.g. `mixed4b`).", nullable=True),
    ColumnSpec("channel", "int", "Channel (feature map) index within the layer.", nullable=True),
    ColumnSpec(
        "unit_label", "str", "Unit identifier from the stimulus set manifest.", nullable=True
    ),
    ColumnSpec(
        "hand_picked",
        "bool",
        "Whether the unit was hand-picked (Experiment I) rather than drawn at random.",
        allowed=(BOOL_TRUE, BOOL_FALSE),
        nullable=True,
    ),
    ColumnSpec(
        "batch",
        "int",
        "Natural-exemplar batch the queries came from (batch 0: practice and catch).",
        nullable=True,
    ),
    ColumnSpec(
        "query_order",
        "str",
        "Placement of the maximally activating query: upper or lower.",
        allowed=("max_upper", "max_lower"),
    ),
    ColumnSpec(
        "response",
        "str",
        "Query the participant chose as maximally activating.",
        allowed=("upper", "lower"),
    ),
    ColumnSpec(
        "correct_response",
        "str",
        "Position of the maximally activating query (follows from `query_order`).",
        allowed=("upper", "lower"),
    ),
    ColumnSpec(
        "correct",
        "bool",
        "Whether `response` equals `correct_response`.",
        allowed=(BOOL_TRUE, BOOL_FALSE),
    ),
    ColumnSpec(
        "confidence",
        "int",
        "Confidence of the answer: 1 = guess, 2, 3 = sure.",
        allowed=("1", "2", "3"),
    ),
    ColumnSpec(
        "conf_rating",
        "int",
        "Signed confidence: +confidence when `response` is upper, -confidence when lower.",
        allowed=("-3", "-2", "-1", "1", "2", "3"),
    ),
    ColumnSpec(
        "rt_ms",
        "float",
        "Response time in ms from the stimulus onset frame to the start of the response: the "
        "press of an answer button (pointerdown) or key (keydown), by the input event's own time "
        "stamp (client clock; the release is not waited for).",
    ),
    ColumnSpec(
        "presented_at",
        "datetime",
        "Stimulus onset, ISO 8601 UTC (client clock, mapped to UTC).",
        nullable=True,
    ),
    ColumnSpec(
        "received_at",
        "datetime",
        "Server receipt of the response, ISO 8601 UTC (server clock).",
        nullable=True,
    ),
    ColumnSpec(
        "query_image_upper",
        "str",
        "SHA-256 of the upper query image as served (in the design's image encoding); "
        "not its path in the stimulus set.",
        nullable=True,
    ),
    ColumnSpec(
        "query_image_lower",
        "str",
        "SHA-256 of the lower query image as served (in the design's image encoding); "
        "not its path in the stimulus set.",
        nullable=True,
    ),
    ColumnSpec(
        "stimulus_set", "str", "Stimulus set id (and version) the trial used.", nullable=True
    ),
    ColumnSpec(
        "repeat_of_trial_index",
        "int",
        "For `repeated` trials: `trial_index` of the main trial repeated; empty otherwise.",
        nullable=True,
    ),
    ColumnSpec(
        "excluded",
        "bool",
        "Whether the participant is excluded from analysis (same value on all their rows).",
        allowed=(BOOL_TRUE, BOOL_FALSE),
    ),
    ColumnSpec(
        "exclusion_reasons",
        "str",
        f"Reasons for exclusion, separated by `{EXCLUSION_REASON_SEPARATOR}`; empty when none.",
        nullable=True,
    ),
)

TRIAL_MEASUREMENT_SPECS: tuple[ColumnSpec, ...] = (
    ColumnSpec(
        "onset_ms",
        "float",
        "Stimulus onset: `performance.now()` in the first animation frame after the trial screen "
        "was drawn, ms since the page loaded (client clock).",
        nullable=True,
    ),
    ColumnSpec(
        "answer_ms",
        "float",
        "The press of the answer button or key (the input event's time stamp), ms since the "
        "page loaded (client clock); `rt_ms` = `answer_ms` - `onset_ms`.",
        nullable=True,
    ),
    ColumnSpec(
        "frame_interval_mean_ms",
        "float",
        "Mean interval between animation frames while the trial was shown, ms (16.7 at 60 Hz; "
        "about 33 on a 30-Hz or overloaded display).",
        nullable=True,
    ),
    ColumnSpec(
        "frame_interval_max_ms",
        "float",
        "Longest interval between animation frames while the trial was shown, ms (a stall).",
        nullable=True,
    ),
    ColumnSpec(
        "viewport_w_px",
        "int",
        "Browser viewport width at the answer, CSS px.",
        nullable=True,
    ),
    ColumnSpec(
        "viewport_h_px",
        "int",
        "Browser viewport height at the answer, CSS px.",
        nullable=True,
    ),
    ColumnSpec(
        "device_pixel_ratio",
        "float",
        "Device pixels per CSS px (`window.devicePixelRatio`: 1 on most desktops, 2 on HiDPI).",
        nullable=True,
    ),
    ColumnSpec(
        "input_kind",
        "str",
        "How the answer was given: mouse, keyboard or touch; empty when not reported.",
        allowed=("mouse", "keyboard", "touch"),
        nullable=True,
    ),
    ColumnSpec(
        "focus_lost",
        "bool",
        "Whether the page lost focus (another tab or window) while the trial was shown.",
        allowed=(BOOL_TRUE, BOOL_FALSE),
    ),
    ColumnSpec(
        "fullscreen_exited",
        "bool",
        "Whether the participant left fullscreen while the trial was shown.",
        allowed=(BOOL_TRUE, BOOL_FALSE),
    ),
    ColumnSpec(
        "via_beacon",
        "bool",
        "Whether the answer arrived by `navigator.sendBeacon` (sent while the page was being "
        "left or hidden) instead of a normal request.",
        allowed=(BOOL_TRUE, BOOL_FALSE),
    ),
    ColumnSpec(
        "response_uuid",
        "str",
        "Client-generated id of the answer (its idempotency key: a resent answer is stored once).",
    ),
    ColumnSpec(
        "display_scale",
        "float",
        "Uniform scale of the trial screen's images when the answer was given (1.0 = native "
        "224 CSS px; below 1 the window was too small for the full-size stage). Empty for "
        "answers stored before it was recorded.",
        nullable=True,
    ),
)
"""Per-trial measurements appended to `responses.csv`, in export order.

Each name is also the `TrialResponse` attribute the exporter reads (`app.services.export`), so
exporting another stored per-trial column is one more entry here (and the regenerated codebook
table in docs/analysis.md). Files from elsewhere may lack these columns: the analysis treats
them as optional."""

CORE_RESPONSE_COLUMNS: tuple[str, ...] = tuple(spec.name for spec in _SPECS)
"""The columns every response table must have for `psychvis analyze --strict`."""

RESPONSE_COLUMNS: tuple[str, ...] = CORE_RESPONSE_COLUMNS + tuple(
    spec.name for spec in TRIAL_MEASUREMENT_SPECS
)
"""Columns of `responses.csv`, in the order the exporter writes them."""

CODEBOOK: dict[str, ColumnSpec] = {spec.name: spec for spec in (*_SPECS, *TRIAL_MEASUREMENT_SPECS)}
"""Column name -> description, type, allowed values and nullability."""


def codebook_markdown() -> str:
    """Render the codebook as a Markdown table (for docs and the dashboard).

    Returns:
        A Markdown table with one row per column, in export order.
    """
    lines = [
        "| column | type | allowed values | empty allowed | description |",
        "|---|---|---|---|---|",
    ]
    for spec in CODEBOOK.values():
        allowed = ", ".join(f"`{value}`" for value in spec.allowed) if spec.allowed else ""
        nullable = "yes" if spec.nullable else "no"
        lines.append(
            f"| `{spec.name}` | {spec.type} | {allowed} | {nullable} | {spec.description} |"
        )
    return "\n".join(lines)


# --- participants.csv, events.csv, ratings.csv (the dashboard's other exports) --------------------

_PARTICIPANT_SPECS: tuple[ColumnSpec, ...] = (
    ColumnSpec("experiment", "str", "Experiment (study) identifier."),
    ColumnSpec("session", "str", "Launched session the participant enrolled through."),
    ColumnSpec("participant", "str", "Opaque participant identifier (as in responses.csv)."),
    ColumnSpec(
        "participant_group",
        "str",
        "Condition / arm assigned at enrolment (between-subject designs); empty otherwise.",
        nullable=True,
    ),
    ColumnSpec("platform", "str", "Recruitment platform.", allowed=("prolific", "mturk", "lab")),
    ColumnSpec(
        "platform_id",
        "str",
        "Prolific PID / MTurk workerId: raw, or a keyed hash (`h-` + 20 hex digits) when the "
        "experiment pseudonymises platform ids (see `platform_id_mode`).",
        nullable=True,
    ),
    ColumnSpec(
        "platform_id_mode",
        "str",
        "How `platform_id` is written for this experiment.",
        allowed=("raw", "pseudonymised"),
    ),
    ColumnSpec(
        "status",
        "str",
        "Stored status. A participant who stopped without finishing keeps the status reached "
        "(the console counts those not seen for longer than the inactivity limit as returned); "
        "`returned` is allowed but not set by psychvis.",
        allowed=("enrolled", "consented", "in_progress", "completed", "declined", "returned"),
    ),
    ColumnSpec(
        "test_mode",
        "bool",
        "Experimenter trying the study (left out unless asked for).",
        allowed=(BOOL_TRUE, BOOL_FALSE),
    ),
    ColumnSpec("n_trials", "int", "Trials in the participant's schedule."),
    ColumnSpec("n_answered", "int", "Trials answered (2-AFC and task-block trials, e.g. ratings)."),
    ColumnSpec("enrolled_at", "datetime", "Enrolment (start button), ISO 8601 UTC."),
    ColumnSpec("consented_at", "datetime", "Consent given, ISO 8601 UTC.", nullable=True),
    ColumnSpec(
        "instruction_time_s",
        "float",
        "Seconds spent on the instructions.",
        nullable=True,
    ),
    ColumnSpec("completed_at", "datetime", "Completion, ISO 8601 UTC.", nullable=True),
    ColumnSpec("duration_s", "float", "Seconds from consent to completion.", nullable=True),
    ColumnSpec(
        "last_seen_at", "datetime", "Last request or heartbeat, ISO 8601 UTC.", nullable=True
    ),
    ColumnSpec(
        "excluded",
        "bool",
        "Whether the design's exclusion criteria exclude the participant.",
        allowed=(BOOL_TRUE, BOOL_FALSE),
    ),
    ColumnSpec(
        "exclusion_reasons",
        "str",
        f"Failed criteria, separated by `{EXCLUSION_REASON_SEPARATOR}`; empty when none.",
        nullable=True,
    ),
    ColumnSpec(
        "feedback_text",
        "str",
        "Optional free-text feedback at the end (participant's words; cells starting with "
        "= + - @ get a leading `'`).",
        nullable=True,
    ),
    ColumnSpec(
        "feedback_at", "datetime", "When the feedback was sent, ISO 8601 UTC.", nullable=True
    ),
    ColumnSpec(
        "screen_w_px",
        "int",
        "Screen width in CSS px as the landing page saw it at the start.",
        nullable=True,
    ),
    ColumnSpec(
        "screen_h_px",
        "int",
        "Screen height in CSS px as the landing page saw it at the start.",
        nullable=True,
    ),
    ColumnSpec(
        "median_answer_interval_ms",
        "float",
        "Median time between consecutive answers as the server received them, the first from "
        "the task page being served, ms (server clock); empty without an interval to measure.",
        nullable=True,
    ),
    ColumnSpec(
        "implausibly_fast",
        "bool",
        "Quality flag: `median_answer_interval_ms` below the design's `[quality] "
        "min_median_answer_interval_ms` (default 250 ms): answers faster than people answer, "
        "e.g. a script. Not an exclusion (`excluded` does not include it); empty when not "
        "judged (no interval, or the flag turned off).",
        allowed=(BOOL_TRUE, BOOL_FALSE),
        nullable=True,
    ),
)

_EVENT_SPECS: tuple[ColumnSpec, ...] = (
    ColumnSpec("experiment", "str", "Experiment (study) identifier."),
    ColumnSpec("participant", "str", "Opaque participant identifier."),
    ColumnSpec(
        "kind",
        "str",
        "Event reported by the browser (e.g. `focus_lost`, `fullscreen_exit`, `resize`).",
    ),
    ColumnSpec("trial_index", "int", "Trial shown when it happened.", nullable=True),
    ColumnSpec(
        "client_ms", "float", "Browser clock (performance.now()) of the event, ms.", nullable=True
    ),
    ColumnSpec("received_at", "datetime", "Server receipt, ISO 8601 UTC (server clock)."),
    ColumnSpec("data", "str", "Event details as a JSON object (e.g. the new viewport size)."),
)

_RATING_SPECS: tuple[ColumnSpec, ...] = (
    ColumnSpec("experiment", "str", "Experiment (study) identifier."),
    ColumnSpec("participant", "str", "Opaque participant identifier."),
    ColumnSpec("participant_group", "str", "Condition / arm, if any.", nullable=True),
    ColumnSpec("rating_index", "int", "0-based position among the participant's ratings."),
    ColumnSpec(
        "trial_index",
        "int",
        "The rating's trial in the schedule (as in responses.csv, events.csv).",
    ),
    ColumnSpec(
        "position",
        "str",
        "Rated before the trials (`start`) or after them (`end`).",
        allowed=("start", "end"),
    ),
    ColumnSpec("unit_key", "str", "Rated unit (stimulus-set unit id)."),
    ColumnSpec("layer", "str", "CNN layer of the unit.", nullable=True),
    ColumnSpec("channel", "int", "Channel index within the layer.", nullable=True),
    ColumnSpec(
        "value",
        "int",
        "Intuitiveness slider: -100 (not intuitive) ... +100 (intuitive).",
    ),
    ColumnSpec(
        "rt_ms",
        "float",
        "Images shown to Continue pressed, ms (client clock); empty for ratings given on the "
        "earlier rating pages, which did not measure it.",
        nullable=True,
    ),
    ColumnSpec("received_at", "datetime", "Server receipt, ISO 8601 UTC."),
)

PARTICIPANT_COLUMNS: tuple[str, ...] = tuple(spec.name for spec in _PARTICIPANT_SPECS)
EVENT_COLUMNS: tuple[str, ...] = tuple(spec.name for spec in _EVENT_SPECS)
RATING_COLUMNS: tuple[str, ...] = tuple(spec.name for spec in _RATING_SPECS)
PARTICIPANT_CODEBOOK: dict[str, ColumnSpec] = {spec.name: spec for spec in _PARTICIPANT_SPECS}
EVENT_CODEBOOK: dict[str, ColumnSpec] = {spec.name: spec for spec in _EVENT_SPECS}
RATING_CODEBOOK: dict[str, ColumnSpec] = {spec.name: spec for spec in _RATING_SPECS}

TABLE_CODEBOOKS: dict[str, dict[str, ColumnSpec]] = {
    "responses": CODEBOOK,
    "participants": PARTICIPANT_CODEBOOK,
    "events": EVENT_CODEBOOK,
    "ratings": RATING_CODEBOOK,
}
"""Every exported table (file `<name>.csv`) and its codebook, in column order."""


DERIVED_COLUMNS = ("branch",)
"""Columns the analysis computes from a response table that a grouping may name besides the
export columns (`app.analysis.stats`)."""


def parse_by(text: str) -> tuple[str, ...]:
    """Split a grouping option (`"reference_type, n_references"`) into column names.

    An empty string means no grouping (one overall row). Here rather than in `app.analysis`, so
    that the console can read a grouping without importing pandas.
    """
    return tuple(part.strip() for part in text.split(",") if part.strip())
