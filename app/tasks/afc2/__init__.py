"""The 2-AFC trial of the paper (docs/protocol.md, The task): reference grids of minimally and
maximally activating images, two query images at the centre; the participant picks the query
that is also maximally activating (`upper` or `lower`) with a confidence of 1 (guess) to 3
(sure). On the page: static/tasks/afc2.js; markup: templates/tasks/afc2.html."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel

from app.export_format import CODEBOOK, ColumnSpec
from app.schedule import GridMode, TrialSpec
from app.tasks.base import AnswerFields, TrialType, image_url

if TYPE_CHECKING:
    from app.models import StimulusUnit

Side = Literal["upper", "lower"]


class Afc2Answer(AnswerFields):
    task: Literal["afc2"] = "afc2"
    response: Side
    """The query chosen as maximally activating."""
    confidence: Literal[1, 2, 3]
    """1 = guess, 2, 3 = sure."""


class Afc2Payload(BaseModel):
    task: Literal["afc2"]
    grid_mode: GridMode
    n_references: int
    references: dict[Literal["min", "max"], list[str]]
    """Image URLs of the minimally and maximally activating references."""
    queries: dict[Side, str]
    """Image URLs of the two queries."""


def correct_side(query_order: str) -> Side:
    """Where the maximally activating query is shown."""
    return "upper" if query_order == "max_upper" else "lower"


class Afc2(TrialType):
    name = "afc2"
    Answer = Afc2Answer
    Payload = Afc2Payload
    export_columns: ClassVar[tuple[ColumnSpec, ...]] = tuple(
        CODEBOOK[name] for name in ("response", "correct_response", "confidence", "conf_rating")
    )

    def display(
        self, spec: TrialSpec, unit: StimulusUnit, names: Mapping[str, str]
    ) -> dict[str, Any]:
        """References per side and the two queries: `{"min": [...], "max": [...], "upper": name,
        "lower": name}`."""
        natural = unit.data.get("natural") or {}
        batches = natural.get("batches") or []
        batch = next((b for b in batches if b["batch"] == spec.batch), batches[0])
        n = spec.n_references or 0
        synthetic = unit.data.get("synthetic") or {}

        def refs(side: str) -> list[str]:
            nat = [e["path"] for e in batch.get(f"{side}_references", [])]
            syn = [e["path"] for e in synthetic.get(f"{side}_references", [])]
            if spec.reference_type == "natural":
                return nat[:n]
            if spec.reference_type == "synthetic":
                return syn[:n]
            if spec.reference_type == "mixed":
                # Alternate synthetic and natural images, synthetic first.
                return [syn[i // 2] if i % 2 == 0 else nat[i // 2] for i in range(n)]
            return []

        max_refs = refs("max") if spec.grid_mode != "none" else []
        min_refs = refs("min") if spec.grid_mode == "min_max" else []
        if spec.catch_query_indices is not None:
            # Identical-image catch trial: the queries are displayed references
            # (docs/protocol.md, Designs).
            i, j = spec.catch_query_indices
            max_query, min_query = refs("max")[i], refs("min")[j]
        else:
            max_query, min_query = batch["max_query"]["path"], batch["min_query"]["path"]
        upper, lower = (
            (max_query, min_query) if spec.query_order == "max_upper" else (min_query, max_query)
        )
        return {
            "min": [names[p] for p in min_refs],
            "max": [names[p] for p in max_refs],
            "upper": names[upper],
            "lower": names[lower],
        }

    def solution(self, spec: TrialSpec) -> dict[str, Any]:
        if spec.query_order is None:
            raise ValueError(f"2-AFC trial {spec.trial_index} has no query order")
        return {"response": correct_side(spec.query_order)}

    def payload(self, trial: Mapping[str, Any]) -> dict[str, Any]:
        display = trial["display"]
        return {
            "task": self.name,
            "grid_mode": trial["grid_mode"],
            "n_references": trial["n_references"],
            "references": {
                "min": [image_url(h) for h in display["min"]],
                "max": [image_url(h) for h in display["max"]],
            },
            "queries": {
                "upper": image_url(display["upper"]),
                "lower": image_url(display["lower"]),
            },
        }

    def preload(self, display: Any) -> list[str]:
        return [*display["max"], *display["min"], display["upper"], display["lower"]]

    def export_values(
        self, answer: Mapping[str, Any], solution: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        response, confidence = answer["response"], answer["confidence"]
        return {
            "response": response,
            "correct_response": solution["response"] if solution else "",
            "confidence": confidence,
            "conf_rating": confidence if response == "upper" else -confidence,
        }


TASK = Afc2()
