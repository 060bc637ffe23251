"""Fixtures for design tests: catalogs built from a design's own unit ids."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from app.designs import Design
from app.designs.generate import resolve_lists
from app.schedule import Catalog, UnitInfo

CatalogFactory = Callable[..., Catalog]


def unit(
    unit_id: str,
    roles: Iterable[str] = ("main",),
    batches: Iterable[int] = range(20),
    natural: int = 9,
    synthetic: int = 9,
) -> UnitInfo:
    layer, _, channel = unit_id.rpartition(":")
    return UnitInfo(
        id=unit_id,
        layer=layer or unit_id,
        channel=int(channel) if channel.isdigit() else 0,
        roles=tuple(roles),
        natural_batches=tuple(batches),
        n_natural_references=natural,
        n_synthetic_references=synthetic,
    )


@pytest.fixture
def make_unit() -> Callable[..., UnitInfo]:
    """`unit(id, roles=..., batches=..., natural=9, synthetic=9)`."""
    return unit


@pytest.fixture
def catalog_for() -> CatalogFactory:
    """A catalog holding every unit a design names (all batches 0..19, 9 + 9 references)."""

    def make(design: Design, **overrides: object) -> Catalog:
        ids: dict[str, None] = {}
        for listed in resolve_lists(design, None).values():
            ids.update(dict.fromkeys(listed))
        return Catalog(
            stimulus_set="test-set",
            units=tuple(unit(i, **overrides) for i in ids),  # type: ignore[arg-type]
        )

    return make
