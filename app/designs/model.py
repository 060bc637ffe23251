"""The design-file schema: pydantic models mirroring the TOML keys (see docs/designs.md).

Only shape and per-field rules live here; rules that span keys (a block naming an unknown
condition, block sizes that cannot cover a unit list, ...) are checked in `app.designs.loader`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.schedule import GridMode, ReferenceType

BlockKind = Literal["practice", "main"]
CatchKind = Literal["identical", "easy"]
Encoding = Literal["lossless", "lossy", "png"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
VAR_PATTERN = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ConditionSpec(_Model):
    """How trials of one condition show references (docs/protocol.md, The task)."""

    reference_type: ReferenceType
    n_references: Literal[0, 1, 9] | None = None
    """References per side; default 9 (0 for `none`)."""
    grid_mode: GridMode | None = None
    """`min_max` or `max_only`; default `min_max` (`none` for `none`)."""
    batch_offset: int | None = Field(default=None, ge=0)
    """Natural batch rotation offset (docs/protocol.md, Designs); default: position in [conditions]."""
    title: str | None = None
    """Shown before the condition's blocks; default from the reference settings."""

    @model_validator(mode="after")
    def _consistent(self) -> ConditionSpec:
        if self.reference_type == "none":
            if self.n_references not in (None, 0):
                raise ValueError("reference_type 'none' shows no references: n_references = 0")
            if self.grid_mode not in (None, "none"):
                raise ValueError("reference_type 'none' shows no references: grid_mode = 'none'")
        else:
            if self.n_references == 0:
                raise ValueError(
                    f"reference_type {self.reference_type!r} needs n_references = 1 or 9"
                )
            if self.grid_mode == "none":
                raise ValueError(
                    f"reference_type {self.reference_type!r} needs grid_mode "
                    "'min_max' or 'max_only'"
                )
        return self

    @property
    def references(self) -> Literal[0, 1, 9]:
        if self.reference_type == "none":
            return 0
        return 9 if self.n_references is None else self.n_references

    @property
    def grid(self) -> GridMode:
        if self.reference_type == "none":
            return "none"
        return "min_max" if self.grid_mode is None else self.grid_mode

    def default_title(self) -> str:
        if self.title is not None:
            return self.title
        if self.reference_type == "none":
            return "no reference images"
        text = f"{self.reference_type} reference images"
        details = []
        if self.grid == "max_only":
            details.append("maximally activating only")
        if self.references == 1:
            details.append("one per side")
        return f"{text} ({', '.join(details)})" if details else text


class UnitList(_Model):
    """A named list of units: explicit ids, or the stimulus set's units with a role."""

    ids: tuple[str, ...] | None = None
    role: str | None = None
    """Take the stimulus set's units with this role, in manifest order."""
    count: int | None = Field(default=None, ge=1)
    """With `role`: take the first `count` (without a stimulus set: make `count` placeholders;
    default there: as many as the design draws)."""
    skip: int = Field(default=0, ge=0)
    """With `role`: leave out the first `skip` units of that role first (practice units taken
    from the main units of a set that has no practice role: `role = "main", skip = 40`)."""
    group_size: int | None = Field(default=None, ge=1)
    """Cut the list into consecutive groups of this size; each condition drawing from it gets
    one whole group, groups shuffled per participant (Experiment I practice lists)."""

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return {"ids": value}
        return value

    @model_validator(mode="after")
    def _one_source(self) -> UnitList:
        if (self.ids is None) == (self.role is None):
            raise ValueError("give exactly one of `ids` or `role`")
        if self.ids is not None:
            if not self.ids:
                raise ValueError("`ids` is empty")
            if self.count is not None or self.skip:
                raise ValueError("`count` and `skip` only apply to `role` lists")
            dupes = sorted({u for u in self.ids if self.ids.count(u) > 1})
            if dupes:
                raise ValueError(f"duplicate unit ids: {', '.join(dupes)}")
            if self.group_size is not None and len(self.ids) % self.group_size:
                raise ValueError(
                    f"{len(self.ids)} ids cannot be cut into groups of {self.group_size}"
                )
        return self


class BlockTemplate(_Model):
    """One block of trials; `condition`, `units` and `title` may hold `{variables}`."""

    kind: BlockKind
    condition: str
    n_trials: int = Field(ge=1)
    """Practice or main trials in the block (catch trials come on top)."""
    n_catch: int = Field(default=0, ge=0)
    """Catch trials mixed into the block (main blocks only)."""
    units: str | None = None
    """Unit list to draw from; default `main` for main blocks, `practice` for practice."""
    title: str | None = None
    feedback: bool | None = None
    """Trial-wise feedback; default from [feedback.<kind>]."""
    block_feedback: bool | None = None
    break_after: bool | None = None
    repeat_until_correct: bool = False
    """Practice only: repeat the block until every trial is correct (IMI)."""
    max_attempts: int = Field(default=1, ge=1, le=20)
    """With repeat_until_correct: how many attempts at most (reserved in the schedule)."""

    @model_validator(mode="after")
    def _kind_rules(self) -> BlockTemplate:
        if self.kind == "practice" and self.n_catch:
            raise ValueError("practice blocks have no catch trials (n_catch = 0)")
        if self.repeat_until_correct and self.kind != "practice":
            raise ValueError("repeat_until_correct is for practice blocks")
        if self.max_attempts > 1 and not self.repeat_until_correct:
            raise ValueError("max_attempts > 1 needs repeat_until_correct = true")
        return self

    @property
    def unit_list(self) -> str:
        if self.units is not None:
            return self.units
        return "main" if self.kind == "main" else "practice"


class Section(_Model):
    """A named group of blocks; sections can be reordered per participant (Experiment II)."""

    name: str = Field(pattern=NAME_PATTERN)
    vars: dict[str, str] = Field(default_factory=dict)
    """Values for `{name}` placeholders in this section's blocks."""
    blocks: tuple[BlockTemplate, ...] = Field(min_length=1)


class SectionOrder(_Model):
    mode: Literal["fixed", "latin_square", "random"] = "fixed"
    """`latin_square`: Williams-balanced rows, row (p - 1) mod n (2n for odd n)."""
    group: tuple[str, ...] | None = None
    """Sections that trade places; default all. Others keep their position."""


class Counterbalance(_Model):
    """A `{variable}` whose value depends on the participant number p (1-based)."""

    values: tuple[str, ...] = Field(min_length=1)
    every: int = Field(default=1, ge=1)
    """p uses values[((p - 1) // every + s) mod len(values)]."""
    per_section: bool = False
    """Add the section's listed position s to the index (sets rotating over sections)."""


class RepeatedSpec(_Model):
    """Repeated trials chosen at run time from the participant's own main trials."""

    conditions: tuple[str, ...] = Field(min_length=1)
    """One block per condition."""
    n_least: int = Field(default=3, ge=0)
    n_most: int = Field(default=3, ge=0)
    order: Literal["random", "fixed"] = "random"
    """Order of the repeated blocks: seeded shuffle or as listed."""

    @model_validator(mode="after")
    def _some(self) -> RepeatedSpec:
        if self.n_least + self.n_most == 0:
            raise ValueError("n_least + n_most must be at least 1")
        if len(set(self.conditions)) != len(self.conditions):
            raise ValueError("conditions are listed twice")
        return self


class RatingsSpec(_Model):
    """Intuitiveness ratings (slider -100..100) of units of a list, at the start and/or end:
    the paper's shorthand for task blocks of the `rating` type (`Design.task_block_list`)."""

    start: str | None = None
    end: str | None = None
    shuffle: bool = True


class TaskBlockSpec(_Model):
    """A block of trials of one trial type (app/tasks/<task>), one per unit of a list, before
    the instructions (`start`) or after the last 2-AFC trial (`end`): how a design schedules a
    type other than the 2-AFC, which `[[sections]]`/`[[blocks]]` make."""

    task: str = Field(pattern=r"^[a-z][a-z0-9_]{0,15}$")
    units: str
    position: Literal["start", "end"]
    shuffle: bool = True
    """Order the units randomly per participant (else in list order)."""
    title: str | None = None
    """Shown before the block; default: the type's `block_title`."""


class CatchSpec(_Model):
    kind: CatchKind = "identical"
    """`identical`: queries are copies of displayed references (paper); `easy`: easy units
    shown as ordinary trials (IMI)."""
    units: str = "catch"


class FeedbackKind(_Model):
    trial: bool = True
    block: bool = True
    break_after: bool = True


class FeedbackSpec(_Model):
    style: Literal["frames", "text"] = "frames"
    """How trial-wise feedback looks: `frames` (the paper: a black frame on the choice, then a
    green frame on the correct query) or `text` (IMI: "Correct!" in green or "Incorrect!" in
    red)."""
    practice: FeedbackKind = FeedbackKind(trial=True, block=True, break_after=False)
    main: FeedbackKind = FeedbackKind()
    repeated: FeedbackKind = FeedbackKind()


class TimingSpec(_Model):
    choice_ms: int = Field(default=500, ge=0, le=10_000)
    correct_ms: int = Field(default=1500, ge=0, le=10_000)
    blank_ms: int = Field(default=100, ge=0, le=10_000)
    response_lock_ms: int = Field(default=0, ge=0, le=60_000)


class ScreenSpec(_Model):
    min_scale: float = Field(default=0.75, gt=0, le=1)
    """Smallest uniform scale of the trial screen's images (1 = native size) a participant's
    window may need; smaller windows and screens are asked to enlarge or are turned away
    before consent (docs/participant_view.md)."""


class ImagesSpec(_Model):
    encoding: Encoding = "lossless"
    """Served encoding: lossless WebP, lossy WebP (quality 90) or the original PNG."""


class BatchesSpec(_Model):
    rotation: Literal["participant", "fixed"] = "participant"
    """`participant`: docs/protocol.md, Designs rotation; `fixed`: every main trial uses batch `main`."""
    count: int = Field(default=20, ge=2)
    """Number of batches (0..count-1) when no stimulus set is given."""
    practice: int = Field(default=0, ge=0)
    """Batch of practice and catch trials, excluded from the rotation."""
    main: int = Field(default=1, ge=0)
    """Batch of main trials with rotation = 'fixed'."""


class ExclusionSpec(_Model):
    """Exclusion thresholds (docs/protocol.md, Designs); a criterion left out is not applied."""

    min_catch_accuracy: float | None = Field(default=None, ge=0, le=1)
    min_failed_catch_to_exclude: int = Field(default=1, ge=1)
    """The catch criterion never excludes with fewer failed catch trials than this."""
    prolific_attention_rule: bool = False
    """Prolific: no rejection for a single failed attention check in studies over 5 minutes
    (acts as min_failed_catch_to_exclude = 2 when the study takes more than 300 s)."""
    min_total_time_s: float | None = Field(default=None, ge=0)
    max_total_time_s: float | None = Field(default=None, gt=0)
    min_instruction_time_s: float | None = Field(default=None, ge=0)
    min_answers_per_row: int | None = Field(default=None, ge=0)
    max_practice_attempts: int | None = Field(default=None, ge=1)
    require_practice_passed: bool = False

    @model_validator(mode="after")
    def _window(self) -> ExclusionSpec:
        lo, hi = self.min_total_time_s, self.max_total_time_s
        if lo is not None and hi is not None and lo >= hi:
            raise ValueError("min_total_time_s must be below max_total_time_s")
        return self


class QualitySpec(_Model):
    """Quality flags in the export (docs/designs.md, `[quality]`): marked, never excluded."""

    min_median_answer_interval_ms: float = Field(default=250.0, ge=0, le=60_000)
    """A participant whose answers reached the server at a median interval below this is
    flagged `implausibly_fast` in participants.csv (0: no flag). Between two answers a browser
    shows the blank screen and the next trial and waits for the press: 250 ms leaves a median
    response time of about 150 ms, faster than people choose between two images."""


class TextsSpec(_Model):
    consent: str | None = None
    instructions: str | None = None
    feedback_prompt: str | None = None
    completion: str | None = None


class Design(_Model):
    """A whole experiment design, as parsed from a design file (frozen)."""

    name: str = Field(pattern=NAME_PATTERN)
    title: str | None = None
    description: str | None = None
    seed: int | str
    placeholder_unit_prefix: str = Field(default="unit", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    """Id prefix of the units made up when no stimulus set is given (`<prefix>:<i>`)."""
    arms: tuple[str, ...] = ()
    """Between-subject arms (each participant gets one; `{arm}` in blocks); empty: within."""
    quotas: dict[str, int] = Field(default_factory=dict)
    conditions: dict[str, ConditionSpec] = Field(min_length=1)
    units: dict[str, UnitList] = Field(default_factory=dict)
    counterbalance: dict[str, Counterbalance] = Field(default_factory=dict)
    blocks: tuple[BlockTemplate, ...] = ()
    sections: tuple[Section, ...] = ()
    section_order: SectionOrder = SectionOrder()
    every_unit_once: bool = True
    """Main trials show each unit of their list exactly once per condition."""
    remainder: Literal["error", "rotate"] = "error"
    """every_unit_once with blocks one trial short each: `rotate` gives the spare units to
    blocks rotating with the participant (Experiment I none blocks), `error` refuses."""
    catch: CatchSpec = CatchSpec()
    repeated: RepeatedSpec | None = None
    ratings: RatingsSpec = RatingsSpec()
    task_blocks: tuple[TaskBlockSpec, ...] = ()
    feedback: FeedbackSpec = FeedbackSpec()
    timing: TimingSpec = TimingSpec()
    screen: ScreenSpec = ScreenSpec()
    images: ImagesSpec = ImagesSpec()
    batches: BatchesSpec = BatchesSpec()
    exclusions: ExclusionSpec = ExclusionSpec()
    quality: QualitySpec = QualitySpec()
    texts: TextsSpec = TextsSpec()
    free_text_feedback: bool = False

    @field_validator("seed")
    @classmethod
    def _seed_not_bool(cls, value: int | str) -> int | str:
        if isinstance(value, str) and not value:
            raise ValueError("seed must not be empty")
        return value

    @field_validator("quotas")
    @classmethod
    def _positive_quotas(cls, value: dict[str, int]) -> dict[str, int]:
        for arm, quota in value.items():
            if quota < 1:
                raise ValueError(f"quota of {arm!r} must be at least 1")
        return value

    @model_validator(mode="after")
    def _blocks_or_sections(self) -> Design:
        if bool(self.blocks) == bool(self.sections):
            raise ValueError("give either [[blocks]] or [[sections]] (exactly one of them)")
        return self

    @property
    def seed_text(self) -> str:
        return str(self.seed)

    def section_list(self) -> tuple[Section, ...]:
        """The design's sections; plain [[blocks]] form one unnamed section."""
        if self.sections:
            return self.sections
        return (Section(name="main", blocks=self.blocks),)

    def task_block_list(self) -> tuple[tuple[tuple[str | int, ...], TaskBlockSpec], ...]:
        """Every task block with the key path it is written at (`("ratings", "start")`,
        `("task_blocks", 0)`, ...): `[ratings]` first (as rating task blocks), then
        `[[task_blocks]]`, in file order."""
        found: list[tuple[tuple[str | int, ...], TaskBlockSpec]] = []
        for position in ("start", "end"):
            name = getattr(self.ratings, position)
            if name is not None:
                spec = TaskBlockSpec(
                    task="rating", units=name, position=position, shuffle=self.ratings.shuffle
                )
                found.append((("ratings", position), spec))
        found += [(("task_blocks", i), block) for i, block in enumerate(self.task_blocks)]
        return tuple(found)


def design_arms(design: Design) -> tuple[str, ...]:
    """Between-subject arms (empty for within-subject designs)."""
    return design.arms


def design_encoding(design: Design) -> Encoding:
    """Image encoding the server serves: `lossless`, `lossy` or `png`."""
    return design.images.encoding


def design_timing(design: Design) -> dict[str, int]:
    """Trial timing for the participant API (`choice_ms`, `correct_ms`, `blank_ms`,
    `response_lock_ms`)."""
    return design.timing.model_dump()
