"""Pydantic request/response models of the HTTP API (…Submit, …Read)."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_RT_MS = 3_600_000.0
"""An hour: anything longer is not a reaction time."""


class _Strict(BaseModel):
    # strict: a JSON value must have the documented type (no `false` or `"3"` for a number);
    # these models are only parsed from JSON, where strict mode still reads UUID strings.
    model_config = ConfigDict(extra="forbid", strict=True)


RT_TOLERANCE_MS = 1.0
"""How far rt_ms may be from answer_ms - onset_ms (three values rounded to 0.1 ms each)."""


class ResponseSubmit(_Strict):
    """One answer from the browser; `response_uuid` is its idempotency key."""

    response_uuid: UUID
    trial_index: int = Field(ge=0, le=100_000)
    response: Literal["upper", "lower"]
    confidence: Literal[1, 2, 3]
    rt_ms: float = Field(ge=0, le=MAX_RT_MS, allow_inf_nan=False)
    onset_ms: float | None = Field(default=None, ge=0, le=1e10, allow_inf_nan=False)
    answer_ms: float | None = Field(default=None, ge=0, le=1e10, allow_inf_nan=False)
    frame_interval_mean_ms: float | None = Field(default=None, ge=0, le=60_000, allow_inf_nan=False)
    frame_interval_max_ms: float | None = Field(
        default=None, ge=0, le=MAX_RT_MS, allow_inf_nan=False
    )
    viewport_w_px: int | None = Field(default=None, ge=0, le=100_000)
    viewport_h_px: int | None = Field(default=None, ge=0, le=100_000)
    device_pixel_ratio: float | None = Field(default=None, gt=0, le=16, allow_inf_nan=False)
    display_scale: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    """Uniform scale of the trial screen's images at the answer (1 = native size)."""
    focus_lost: bool = False
    fullscreen_exited: bool = False
    input: Literal["mouse", "keyboard", "touch"] | None = None

    @model_validator(mode="after")
    def _rt_is_answer_minus_onset(self) -> ResponseSubmit:
        # The browser sends all three, each rounded to 0.1 ms (static/trial.js): an rt_ms that
        # disagrees with its own stamps was not measured by the task page.
        if self.onset_ms is not None and self.answer_ms is not None:
            if abs(self.answer_ms - self.onset_ms - self.rt_ms) > RT_TOLERANCE_MS:
                raise ValueError("rt_ms must equal answer_ms - onset_ms")
        return self


class EventSubmit(_Strict):
    kind: Literal[
        "focus_lost",
        "focus_gained",
        "visibility_hidden",
        "visibility_visible",
        "fullscreen_enter",
        "fullscreen_exit",
        "resize",
        "heartbeat",
        "page_load",
        "page_hide",
        "network_retry",
    ]
    client_ms: float | None = Field(default=None, ge=0, le=1e10, allow_inf_nan=False)
    trial_index: int | None = Field(default=None, ge=0, le=100_000)
    data: dict[str, Any] = Field(
        default_factory=dict,
        # What `_small` accepts, stated in the schema too (clients and fuzzers read it).
        json_schema_extra={
            "maxProperties": 16,
            "propertyNames": {"maxLength": 40},
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "maxLength": 200},
                    {"type": "number"},
                    {"type": "boolean"},
                    {"type": "null"},
                ]
            },
        },
    )

    @field_validator("data")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > 16:
            raise ValueError("at most 16 data fields")
        for key, item in value.items():
            if len(key) > 40 or not isinstance(item, (int, float, str, bool, type(None))):
                raise ValueError("data holds short keys and scalar values only")
            if isinstance(item, str) and len(item) > 200:
                raise ValueError("data strings are at most 200 characters")
        return value


class EventBatch(_Strict):
    events: list[EventSubmit] = Field(max_length=50)


class ErrorRead(BaseModel):
    code: str
    detail: str


class BlockRead(BaseModel):
    block_index: int
    kind: str
    title: str
    n_trials: int
    position: int
    block_feedback: bool
    break_after: bool
    after_practice: bool = False
    """The first block after the practice blocks."""


class TimingRead(BaseModel):
    choice_ms: int
    correct_ms: int
    blank_ms: int
    response_lock_ms: int


class TrialRead(BaseModel):
    trial_index: int
    block: BlockRead
    grid_mode: Literal["min_max", "max_only", "none"]
    n_references: int
    references: dict[Literal["min", "max"], list[str]]
    queries: dict[Literal["upper", "lower"], str]
    feedback: bool
    timing: TimingRead


class NextRead(BaseModel):
    step: Literal["trial", "done"]
    n_trials: int
    n_answered: int
    trial: TrialRead | None
    preload: list[str]


class BlockEndRead(BaseModel):
    block_index: int
    n_correct: int | None
    """null where the block does not show its score."""
    n_trials: int


class ResponseAck(BaseModel):
    trial_index: int
    duplicate: bool
    correct: bool | None
    """null where the trial gives no feedback (also `correct_response`)."""
    correct_response: Literal["upper", "lower"] | None
    block_end: BlockEndRead | None
    next: NextRead


class MturkSubmitRead(BaseModel):
    submit_url: str
    assignmentId: str  # noqa: N815  (MTurk's own parameter name)


class CompletionRead(BaseModel):
    outcome: Literal["completed", "failed_checks", "no_consent", "pending"]
    """`pending`: all answers are in, but pages remain (final ratings, feedback) at /p/<token>."""
    completion_code: str | None
    redirect_url: str | None
    mturk: MturkSubmitRead | None


class EventsAck(BaseModel):
    stored: int
