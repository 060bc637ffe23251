"""BuildConfig: presets, overrides, and messages for typos and bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from stimuli_builder.config import build_config, load_config, parse_override
from stimuli_builder.errors import ConfigError
from stimuli_builder.presets import (
    BRANCHES,
    EXP1_UNITS,
    EXP2_SETS,
    inception_branch_of,
    inception_branch_ranges,
    paper_exp1,
    paper_exp2,
)


def test_exp1_preset_matches_protocol_counts_and_branch_columns() -> None:
    units = paper_exp1()
    main = [u for u in units if "main" in u.roles]
    assert len(main) == 45
    assert sum(u.hand_picked for u in main) == 9
    assert len([u for u in units if "practice" in u.roles]) == 15
    assert len([u for u in units if "intuitiveness" in u.roles]) == 3
    for layer, (random_maps, hand) in EXP1_UNITS.items():
        for branch, ch in zip(BRANCHES, random_maps, strict=True):
            assert inception_branch_of(layer, ch)[0] == branch
        assert inception_branch_of(layer, hand)[0] == "pool"


def test_exp2_sets_have_one_map_per_branch_in_range() -> None:
    for table in EXP2_SETS.values():
        for layer, chans in table.items():
            for branch, ch in zip(BRANCHES, chans, strict=True):
                assert ch in inception_branch_ranges(layer)[branch]
    units = paper_exp2()
    sets = {s for u in units for s in u.sets}
    assert sets == {"a", "b", "c", "d", "e"}
    assert len([u for u in units if "a" in u.sets]) == 20
    assert all("catch" in u.roles for u in units if "e" in u.sets)


def test_unknown_key_names_the_key_and_suggests_the_right_one() -> None:
    with pytest.raises(
        ConfigError, match=r"scan\.batch_sise: unknown key \(did you mean 'batch_size'\?\)"
    ):
        build_config({"scan": {"batch_sise": 3}})


def test_bad_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"select\.k"):
        build_config({"select": {"k": 0}})
    with pytest.raises(ConfigError, match="unknown preset"):
        build_config({"preset": "paper-exp3"})


def test_overrides_take_toml_values_and_bare_strings(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('id = "x"\nwork_dir = "w"\n[render]\nsteps = 100\n')
    cfg = load_config(
        path,
        [
            parse_override("render.steps=8"),
            parse_override("device=cpu"),
            parse_override("render.scales=[1.0]"),
        ],
    )
    assert cfg.render.steps == 8 and cfg.device == "cpu" and cfg.render.scales == [1.0]
    assert cfg.work_dir == tmp_path / "w"


def test_broken_toml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("id = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_preset_and_explicit_units_merge_roles() -> None:
    cfg = build_config(
        {"preset": "paper-exp1", "units": [{"layer": "mixed3a", "channel": 25, "roles": ["catch"]}]}
    )
    units = cfg.resolved_units()
    assert len({u.id for u in units}) == len(units)
    merged = next(u for u in units if u.id == "mixed3a:25")
    assert merged.roles == ["main", "catch"]
    assert cfg.layers()[0] == "mixed3a"


def test_speed_options_do_not_change_step_hashes() -> None:
    from stimuli_builder.pipeline import step_hashes

    def hashes(**sections: dict[str, object]) -> dict[str, str]:
        data: dict[str, object] = {
            "preset": "paper-exp1",
            "device": "cpu",
            "model": {"weights": "random"},
            "data": {"root": "/data"},
        }
        return step_hashes(build_config(data | sections))

    base = hashes()
    fast = hashes(
        scan={"overlap": False, "prefetch_batches": 4, "agreement_floor": 0.5},
        render={"memory_format": "channels_last", "compile": True},
    )
    assert (fast["scan"], fast["render"]) == (base["scan"], base["render"])
    # result-changing options do change them
    assert hashes(render={"gram_precision": "bf16"})["render"] != base["render"]
    bf16 = hashes(scan={"precision": "bf16"})["scan"]
    assert hashes(scan={"precision": "bf16", "agreement_floor": 0.5})["scan"] != bf16
