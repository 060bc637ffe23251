"""StimulusManifest: the builder's pydantic model of stimulus set v1 (docs/stimulus_set_v1.md).

No torch import. The app reads the same file with its own model (app/stimuli.py).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

# Final: the constants keep their literal types, which the model's Literal fields need.
SCHEMA: Final = "psychvis.stimulus_set"
SCHEMA_VERSION: Final = 1

Branch = Literal["1x1", "3x3", "5x5", "pool"]
Role = Literal["main", "practice", "catch", "intuitiveness"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileEntry(_Strict):
    """sha256 and size of one file of the set."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Exemplar(_Strict):
    """A natural image: the exact 224x224 crop the network saw."""

    path: str
    source: str | None = None
    rank: int | None = Field(default=None, ge=1)
    activation: float | None = None


class Synthetic(_Strict):
    """A feature visualisation and its final objective (sign * channel spatial mean)."""

    path: str
    objective: float | None = None


class NaturalBatch(_Strict):
    """One trial folder of a unit (batch 0 is reserved for practice and catch trials)."""

    batch: int = Field(ge=0)
    max_query: Exemplar
    min_query: Exemplar
    max_references: list[Exemplar] = Field(max_length=9)
    min_references: list[Exemplar] = Field(max_length=9)


class NaturalSet(_Strict):
    """All natural batches of a unit."""

    batches: list[NaturalBatch]


class SyntheticSet(_Strict):
    """Feature visualisations of a unit, strongest objective first."""

    max_references: list[Synthetic] = Field(min_length=1, max_length=10)
    min_references: list[Synthetic] = Field(min_length=1, max_length=10)


class Unit(_Strict):
    """One feature map and its stimuli."""

    id: str
    layer: str
    channel: int = Field(ge=0)
    branch: Branch | None = None
    label: str
    hand_picked: bool = False
    roles: list[Role]
    natural: NaturalSet | None = None
    synthetic: SyntheticSet | None = None


class StimulusManifest(_Strict):
    """``manifest.json`` of a stimulus set, schema version 1."""

    schema_: Literal["psychvis.stimulus_set"] = Field(default=SCHEMA, alias="schema")
    schema_version: Literal[1] = SCHEMA_VERSION
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,79}$")
    title: str | None = None
    created_at: str
    image_size_px: int = 224
    provenance: dict[str, Any]
    files: dict[str, FileEntry]
    units: list[Unit]

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_json_dict(self) -> dict[str, Any]:
        """Plain dict with the ``schema`` key, in the spec's key order."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=False)
