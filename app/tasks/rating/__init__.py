"""The intuitiveness rating (docs/protocol.md, "Intuitiveness ratings"): nine synthetic and nine
natural maximally activating images of one unit side by side; the participant says on a slider
from -100 (not intuitive) to 100 (intuitive) how intuitive what the unit responds to is.

The paper's designs ask for these ratings before the instructions (`start`, a block with
`before_instructions`) and after the last 2-AFC trial (`end`); the design's `[ratings]` section
says which units. A rating has no right answer. Its answers are exported to `ratings.csv`, not
to `responses.csv`. On the page: static/tasks/rating.js; markup: templates/tasks/rating.html.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field

from app.export_format import ColumnSpec
from app.schedule import TrialSpec, UnitInfo
from app.tasks.base import AnswerFields, TrialType, image_url

if TYPE_CHECKING:
    from app.models import StimulusUnit

SCALE_MIN, SCALE_MAX = -100, 100
N_IMAGES = 9
"""Images per side, as in the paper (the first nine of each list)."""


class RatingAnswer(AnswerFields):
    task: Literal["rating"] = "rating"
    value: Annotated[int, Field(ge=SCALE_MIN, le=SCALE_MAX)]
    """-100 = not intuitive at all, 100 = very intuitive."""


class RatingScale(BaseModel):
    min: int = SCALE_MIN
    max: int = SCALE_MAX
    step: int = 1
    start: int = 0
    """Where the slider starts."""
    min_label: str = "Not intuitive"
    max_label: str = "Intuitive"


class RatingPayload(BaseModel):
    task: Literal["rating"]
    position: Literal["start", "end"]
    images: dict[Literal["synthetic", "natural"], list[str]]
    """Image URLs of the unit's maximally activating synthetic and natural images."""
    scale: RatingScale


class Rating(TrialType):
    name = "rating"
    Answer = RatingAnswer
    Payload = RatingPayload
    block_title = "Next: rate how intuitive the images are"
    export_table = "ratings"
    export_columns: ClassVar[tuple[ColumnSpec, ...]] = ()

    def display(
        self, spec: TrialSpec, unit: StimulusUnit, names: Mapping[str, str]
    ) -> dict[str, Any]:
        """`{"synthetic": [...], "natural": [...]}`: the first nine maximally activating images
        of each kind (natural ones from batch 0, the paper's reference batch)."""
        synthetic = (unit.data.get("synthetic") or {}).get("max_references", [])
        batches = (unit.data.get("natural") or {}).get("batches") or []
        batch = next((b for b in batches if b["batch"] == 0), batches[0] if batches else {})
        natural = batch.get("max_references", [])
        return {
            "synthetic": [names[e["path"]] for e in synthetic[:N_IMAGES]],
            "natural": [names[e["path"]] for e in natural[:N_IMAGES]],
        }

    def unit_problem(self, unit: UnitInfo) -> str | None:
        if min(unit.n_synthetic_references, unit.n_natural_references) < N_IMAGES:
            return (
                f"needs {N_IMAGES} synthetic and {N_IMAGES} natural references to be rated (has "
                f"{unit.n_synthetic_references} and {unit.n_natural_references})"
            )
        return None

    def solution(self, spec: TrialSpec) -> None:
        return None

    def payload(self, trial: Mapping[str, Any]) -> dict[str, Any]:
        display = trial["display"]
        return {
            "task": self.name,
            "position": trial["condition"],
            "images": {
                "synthetic": [image_url(h) for h in display["synthetic"]],
                "natural": [image_url(h) for h in display["natural"]],
            },
            "scale": RatingScale().model_dump(),
        }

    def preload(self, display: Any) -> list[str]:
        return [*display["synthetic"], *display["natural"]]

    def export_values(
        self, answer: Mapping[str, Any], solution: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        return {"value": answer["value"]}


TASK = Rating()
