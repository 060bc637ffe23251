"""Contract: a set written by stimuli_builder loads in the app's importer (stimulus_set_v1.md).

The two packages never import each other; this test is the only place that uses both.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parent / "stimuli_builder"))

from conftest_builder import build_tiny_set  # noqa: E402

from app.errors import ManifestInvalid  # noqa: E402
from app.stimuli import load_manifest  # noqa: E402


def test_app_imports_a_builder_set(tmp_path: Path) -> None:
    out = build_tiny_set(tmp_path)
    manifest = load_manifest(out)
    assert manifest.id == "contract-tiny"
    assert len(manifest.units) == 3
    unit = manifest.units[0]
    assert unit.natural is not None and unit.natural.batches[0].batch == 0
    assert unit.synthetic is not None and len(unit.synthetic.max_references) == 3
    roles = {r for u in manifest.units for r in u.roles}
    assert roles == {"main", "practice", "catch"}


def test_app_refuses_a_tampered_builder_set(tmp_path: Path) -> None:
    out = build_tiny_set(tmp_path)
    victim = next((out / "images" / "natural").rglob("*.png"))
    victim.write_bytes(victim.read_bytes()[:-10])
    with pytest.raises(ManifestInvalid, match="sha256"):
        load_manifest(out)


@pytest.mark.parametrize("preset", ["paper-exp1", "paper-exp2"])
def test_builder_presets_hold_every_unit_the_design_presets_need(preset: str) -> None:
    """A set built with the builder's preset can run the app's design preset of the same name."""
    from app import designs
    from app.schedule import Catalog, UnitInfo
    from stimuli_builder.presets import PRESETS

    units = tuple(
        UnitInfo(
            id=f"{u.layer}:{u.channel}",
            layer=u.layer,
            channel=u.channel,
            hand_picked=u.hand_picked,
            roles=u.roles,
            natural_batches=tuple(range(20)),
            n_natural_references=9,
            n_synthetic_references=10,
        )
        for u in PRESETS[preset]()
    )
    design = designs.load_design(preset)
    designs.check_design_against(design, Catalog(stimulus_set=preset, units=units))
    schedule = designs.generate_schedule(design, Catalog(stimulus_set=preset, units=units), 1)
    afc2 = [t for t in schedule.trials if t.task == "afc2"]
    assert len(afc2) == {"paper-exp1": 186, "paper-exp2": 216}[preset]
