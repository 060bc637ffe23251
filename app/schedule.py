"""Plain data types of a participant's schedule: what designs produce and the server stores.

Imports nothing from app (pydantic only), so both `app.designs` and `app.services` use it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TrialKind = Literal["practice", "main", "catch", "repeated", "task"]
"""`task`: a trial of a task block (a type other than the 2-AFC, e.g. a rating; docs/designs.md)."""
ReferenceType = Literal["natural", "synthetic", "none", "mixed"]
GridMode = Literal["min_max", "max_only", "none"]
QueryOrder = Literal["max_upper", "max_lower"]
Side = Literal["upper", "lower"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class UnitInfo(_Frozen):
    """What a design may know about one unit of a stimulus set (no image data)."""

    id: str
    layer: str
    channel: int
    branch: str | None = None
    hand_picked: bool = False
    roles: tuple[str, ...] = ("main",)
    natural_batches: tuple[int, ...] = ()
    n_natural_references: int = 0
    """Smallest number of natural references per side over the unit's batches."""
    n_synthetic_references: int = 0
    """Number of synthetic references per side (0: the set has no synthetic images here)."""


class Catalog(_Frozen):
    """The units of a stimulus set, as a design sees them."""

    stimulus_set: str | None = None
    units: tuple[UnitInfo, ...] = ()

    def get(self, unit_id: str) -> UnitInfo | None:
        for unit in self.units:
            if unit.id == unit_id:
                return unit
        return None


class TrialSpec(_Frozen):
    """One trial of a participant's schedule, before images are resolved.

    `unit_id` is None only for a `repeated` trial not yet chosen (chosen at run time from the
    participant's own answers, then stored with `repeat_of_trial_index`).
    """

    trial_index: int = Field(ge=0)
    block_index: int = Field(ge=0)
    task: str = "afc2"
    """The trial type (`app.tasks`)."""
    trial_kind: TrialKind
    condition: str
    """The design's condition; for a rating trial its position (`start` or `end`)."""
    unit_id: str | None
    # What the 2-AFC trial shows; None for other types (app/tasks/).
    reference_type: ReferenceType | None = None
    n_references: Literal[0, 1, 9] | None = None
    grid_mode: GridMode | None = None
    batch: int | None = None
    """Natural batch the queries (and natural references) come from."""
    query_order: QueryOrder | None = None
    feedback: bool = True
    """Trial-wise feedback (black frame, then green frame on the correct query)."""
    catch_query_indices: tuple[int, int] | None = None
    """Identical-image catch trial: (index into displayed max refs, index into displayed min refs)
    whose images become the max and min query."""
    repeat_of_trial_index: int | None = None


class BlockSpec(_Frozen):
    """A block of consecutive trials: shown with an intro before and feedback/break after."""

    block_index: int = Field(ge=0)
    kind: Literal["practice", "main", "repeated", "task"]
    condition: str
    title: str
    """Shown before the block, e.g. "Next: natural reference images"."""
    n_trials: int = Field(ge=1)
    block_feedback: bool = True
    """Show "You got X out of N trials correct" at the end."""
    break_after: bool = True
    """Offer a self-paced break after the block."""
    repeat_until_correct: bool = False
    """IMI-style practice: repeat the block until every trial is correct (see `attempt`)."""
    max_attempts: int = 1
    attempt: int = Field(default=1, ge=1)
    """Which attempt of a repeat_until_correct practice block this is. Attempts 2..max_attempts
    are reserved in the schedule up front and skipped once an attempt is all correct."""
    n_least_confident: int = Field(default=0, ge=0)
    """Repeated blocks: how many trials repeat the least confident main trials (the others
    repeat the most confident ones)."""
    before_instructions: bool = False
    """Run between consent and the instructions (a task block at the start, e.g. the start
    ratings); the block's trials are the first of the schedule."""


class Schedule(_Frozen):
    """A participant's whole schedule, generated once at enrolment and stored."""

    design: str
    participant_number: int
    seed: str
    arm: str | None = None
    """Between-subject condition of this participant (None for within-subject designs)."""
    blocks: tuple[BlockSpec, ...]
    trials: tuple[TrialSpec, ...]
