"""The interface every trial type implements (docs/adding-a-task.md).

A trial type owns what differs between kinds of trial: which images a scheduled trial shows
(`display`), what the browser needs to draw it (`payload`, `preload`), the type-specific fields
of an answer (`Answer`), what a correct answer contains (`solution`) and the export columns it
adds (`export_values`, `export_columns`). Everything generic — the schedule's storage, the
answer path with its exactly-once guarantee, timing and attention measurements, blocks,
feedback timing, exports of the shared columns, the page's runner — calls these methods
without knowing which type it runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from app.export_format import ColumnSpec
from app.schedule import TrialSpec, UnitInfo

if TYPE_CHECKING:
    from app.models import StimulusUnit

IMAGE_URL_PREFIX = "/img/"


def image_url(name: str) -> str:
    """The URL of a served image name (`<hash>.<ext>`)."""
    return IMAGE_URL_PREFIX + name


class AnswerFields(BaseModel):
    """Base of a type's answer model: strict JSON types, no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TrialType(ABC):
    """One kind of trial. Subclasses live in `app/tasks/<name>/` and are found by name."""

    name: ClassVar[str]
    """The type's id: `scheduled_trial.task`, the payload's and the answer's `task`."""
    Answer: ClassVar[type[AnswerFields]]
    """The type-specific fields of an answer, stored as `trial_response.answer`. It must have a
    `task: Literal[name]` field: the request body's `answer` is a union over all types."""
    Payload: ClassVar[type[BaseModel]]
    """The type-specific fields of the trial the browser gets (documentation and OpenAPI)."""

    @abstractmethod
    def display(self, spec: TrialSpec, unit: StimulusUnit, names: Mapping[str, str]) -> Any:
        """The served image names a scheduled trial shows (stored as `scheduled_trial.display`).

        Args:
            spec: the trial as the design scheduled it.
            unit: the stimulus unit it shows.
            names: served image name per image path of the stimulus set.
        """

    @abstractmethod
    def solution(self, spec: TrialSpec) -> dict[str, Any] | None:
        """The fields every correct answer to this trial has (`scheduled_trial.solution`);
        None for a trial without a right answer. An answer is correct when it contains them."""

    @abstractmethod
    def payload(self, trial: Mapping[str, Any]) -> dict[str, Any]:
        """The type-specific part of the trial the browser draws, from the `scheduled_trial`
        row's columns. It must not reveal the solution."""

    @abstractmethod
    def preload(self, display: Any) -> list[str]:
        """The served image names of a trial's display, in the order to preload them."""

    @abstractmethod
    def export_values(
        self, answer: Mapping[str, Any], solution: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """The values of `export_columns` for one stored answer."""

    export_columns: ClassVar[Sequence[ColumnSpec]] = ()
    """The type's columns in `responses.csv`, with their codebook entries."""
    block_title: ClassVar[str] = "Next block"
    """The title of a task block of this type (docs/designs.md, `[[task_blocks]]`) that gives
    none; the page shows it before the block."""
    export_table: ClassVar[str] = "responses"
    """The export its answers go to: `responses` (`responses.csv`, with the generic trial and
    measurement columns plus `export_columns`) or a table of the type's own (the rating type's
    `ratings`)."""

    def unit_problem(self, unit: UnitInfo) -> str | None:
        """What keeps a unit of a stimulus set from a task block of this type (a design check:
        "needs 9 synthetic references ..."), or None when it can be shown."""
        return None

    @staticmethod
    def is_correct(answer: Mapping[str, Any], solution: Mapping[str, Any] | None) -> bool | None:
        """Whether an answer contains the solution's fields (None: no right answer). The one
        definition of correctness; the one-statement answer computes the same in SQL
        (`answer @> solution`)."""
        if solution is None:
            return None
        return all(answer.get(key) == value for key, value in solution.items())
