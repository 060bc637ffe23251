"""Pydantic request/response models of the HTTP API (…Submit, …Read)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from app.answer import SubmittedAnswer
from app.tasks import AnswerFields, answer_union, tasks

MAX_RT_MS = 3_600_000.0
"""An hour: anything longer is not a reaction time."""


class _Strict(BaseModel):
    # strict: a JSON value must have the documented type (no `false` or `"3"` for a number);
    # these models are only parsed from JSON, where strict mode still reads UUID strings.
    model_config = ConfigDict(extra="forbid", strict=True)


RT_TOLERANCE_MS = 1.0
"""How far rt_ms may be from answer_ms - onset_ms (three values rounded to 0.1 ms each)."""


LEGACY_ANSWER_FIELDS = ("response", "confidence")
"""2-AFC answer fields that a body may carry at its top level instead of in `answer` (answers
queued in a browser by an earlier version of the page, docs/participant_api.md)."""


class ResponseSubmit(_Strict):
    """One answer from the browser; `response_uuid` is its idempotency key."""

    response_uuid: UUID
    trial_index: int = Field(ge=0, le=100_000)
    answer: answer_union()  # type: ignore[valid-type]
    """The trial type's fields (`app.tasks`), with the type's name in `task`."""
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

    @model_validator(mode="before")
    @classmethod
    def _fold_flat_answer(cls, data: Any) -> Any:
        # {"response": "upper", "confidence": 2, ...} is the 2-AFC answer in its older, flat form.
        if isinstance(data, dict) and "answer" not in data:
            if any(key in data for key in LEGACY_ANSWER_FIELDS):
                data = dict(data)
                flat = {key: data.pop(key) for key in LEGACY_ANSWER_FIELDS if key in data}
                data["answer"] = {"task": "afc2", **flat}
        return data

    def to_answer(self) -> SubmittedAnswer:
        """The answer as the services take it; its `fields` are the type's fields without the
        type's name (`trial_response.answer`)."""
        fields: AnswerFields = self.answer
        return SubmittedAnswer(
            response_uuid=str(self.response_uuid),
            trial_index=self.trial_index,
            task=str(fields.task),  # type: ignore[attr-defined]
            fields=fields.model_dump(mode="json", exclude={"task"}),
            rt_ms=self.rt_ms,
            onset_ms=self.onset_ms,
            answer_ms=self.answer_ms,
            frame_interval_mean_ms=self.frame_interval_mean_ms,
            frame_interval_max_ms=self.frame_interval_max_ms,
            viewport_w_px=self.viewport_w_px,
            viewport_h_px=self.viewport_h_px,
            device_pixel_ratio=self.device_pixel_ratio,
            display_scale=self.display_scale,
            focus_lost=self.focus_lost,
            fullscreen_exited=self.fullscreen_exited,
            input_kind=self.input,
        )

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


class ProgressRead(BaseModel):
    """Where the trial stands in its part of the study, for the page's progress line: among the
    2-AFC trials (the task blocks around them left out), or within its task block."""

    index: int
    """0-based."""
    total: int


class TimingRead(BaseModel):
    choice_ms: int
    correct_ms: int
    blank_ms: int
    response_lock_ms: int


class TrialBase(BaseModel):
    """What every trial carries; its type (`task`) adds its own fields (`TrialType.Payload`)."""

    trial_index: int
    block: BlockRead
    progress: ProgressRead
    feedback: bool
    timing: TimingRead


def _trial_read() -> Any:
    models = tuple(
        create_model(f"{task.Payload.__name__}Trial", __base__=(TrialBase, task.Payload))
        for task in tasks().values()
    )
    if len(models) == 1:
        return models[0]
    return Annotated[Union[models], Field(discriminator="task")]  # noqa: UP007


TrialRead = _trial_read()


class NextRead(BaseModel):
    step: Literal["trial", "page", "done"]
    """`trial`: show `trial`; `page`: a page the server renders comes next (the instructions,
    after the start ratings): go to /p/<token>; `done`: every trial is answered."""
    n_trials: int
    n_answered: int
    trial: TrialRead | None  # type: ignore[valid-type]
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
    """null where the trial gives no feedback or has no right answer (also `solution`)."""
    solution: dict[str, Any] | None
    """The fields a correct answer has (2-AFC: `{"response": "upper"}`)."""
    block_end: BlockEndRead | None
    next: NextRead


class MturkSubmitRead(BaseModel):
    submit_url: str
    assignmentId: str  # noqa: N815  (MTurk's own parameter name)


class CompletionRead(BaseModel):
    outcome: Literal["completed", "failed_checks", "no_consent", "pending"]
    """`pending`: all answers are in, but a page remains (free-text feedback) at /p/<token>."""
    completion_code: str | None
    redirect_url: str | None
    mturk: MturkSubmitRead | None


class EventsAck(BaseModel):
    stored: int
