"""Loading designs: presets, files, and refusing bad ones with the key and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.designs import (
    DesignInvalid,
    check_design_against,
    load_design,
    parse_design,
    preset_names,
    preset_text,
)
from app.designs.tomlpos import key_lines
from app.schedule import Catalog

GOOD = """\
name = "custom"
seed = "s1"

[conditions.natural]
reference_type = "natural"
n_references = 1
grid_mode = "max_only"

[conditions.synthetic]
reference_type = "synthetic"

[units]
main = ["a:1", "a:2", "a:3", "a:4"]
practice = ["p:1"]
catch = ["p:1", "p:2"]

[timing]
choice_ms = 400

[[blocks]]
kind = "practice"
condition = "natural"
n_trials = 1

[[blocks]]
kind = "main"
condition = "natural"
n_trials = 4
n_catch = 2

[[blocks]]
kind = "main"
condition = "synthetic"
n_trials = 4
"""


def errors_of(text: str) -> str:
    with pytest.raises(DesignInvalid) as info:
        parse_design(text, "custom")
    return info.value.detail


def test_presets_load_and_custom_design_parses(tmp_path: Path) -> None:
    for name in preset_names():
        assert load_design(name).name == name
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    design = load_design(str(path))
    assert design.timing.choice_ms == 400 and design.timing.correct_ms == 1500
    assert design.conditions["synthetic"].references == 9


def test_typo_in_a_key_names_line_and_suggests() -> None:
    message = errors_of(GOOD.replace("choice_ms = 400", "choise_ms = 400"))
    assert "line 18, timing.choise_ms: unknown key (did you mean 'choice_ms'?)" in message


def test_typo_in_a_block_key_names_its_line() -> None:
    message = errors_of(GOOD.replace("n_catch = 2", "n_cach = 2"))
    assert "line 29, blocks[1].n_cach: unknown key (did you mean 'n_catch'?)" in message


def test_unknown_condition_in_block_is_refused() -> None:
    message = errors_of(GOOD.replace('condition = "synthetic"', 'condition = "synthetc"'))
    assert "line 33, blocks[2].condition: unknown condition 'synthetc'" in message
    assert "did you mean 'synthetic'" in message


def test_impossible_block_sizes_are_refused() -> None:
    message = errors_of(GOOD.replace("n_trials = 4\nn_catch", "n_trials = 3\nn_catch"))
    assert "line 28, blocks[1].n_trials" in message
    assert "shows 3 main trials from unit list 'main' (4 units)" in message
    message = errors_of(GOOD.replace("n_catch = 2", "n_catch = 3"))
    assert "blocks[1].n_catch: 3 catch trials in one block but unit list 'catch' has 2" in message


def test_bad_values_and_syntax_are_refused() -> None:
    assert "line 6, conditions.natural.n_references" in errors_of(
        GOOD.replace("n_references = 1", "n_references = 4")
    )
    assert "not valid TOML" in errors_of(GOOD + "\n[broken\n")
    assert "identical-image catch trials copy displayed references" in errors_of(
        GOOD.replace('reference_type = "natural"', 'reference_type = "none"')
        .replace("n_references = 1\n", "")
        .replace('grid_mode = "max_only"\n', "")
    )
    assert "unknown unit list 'mian' (did you mean 'main'?)" in errors_of(
        GOOD.replace('condition = "synthetic"\n', 'condition = "synthetic"\nunits = "mian"\n')
    )
    assert "give either [[blocks]] or [[sections]]" in errors_of(GOOD.split("[[blocks]]")[0])


def test_the_fast_session_flag_has_a_default_a_setting_and_a_range() -> None:
    assert parse_design(GOOD, "custom").quality.min_median_answer_interval_ms == 250
    stricter = GOOD + "\n[quality]\nmin_median_answer_interval_ms = 400\n"
    assert parse_design(stricter, "custom").quality.min_median_answer_interval_ms == 400
    off = GOOD + "\n[quality]\nmin_median_answer_interval_ms = 0\n"
    assert parse_design(off, "custom").quality.min_median_answer_interval_ms == 0
    negative = GOOD + "\n[quality]\nmin_median_answer_interval_ms = -1\n"
    assert "quality.min_median_answer_interval_ms" in errors_of(negative)


def test_unknown_preset_and_missing_file() -> None:
    with pytest.raises(DesignInvalid, match="did you mean 'paper-exp1'"):
        preset_text("paper_exp1")
    with pytest.raises(DesignInvalid, match="neither a preset"):
        load_design("/nonexistent/design.toml")


def test_catalog_checks_name_what_the_set_lacks(make_unit) -> None:  # type: ignore[no-untyped-def]
    def catalog(**lacking: object) -> Catalog:
        ids = ["a:1", "a:2", "a:3", "a:4", "p:1", "p:2"]
        return Catalog(stimulus_set="set", units=tuple(make_unit(i, **lacking) for i in ids))

    design = parse_design(GOOD, "custom")
    check_design_against(design, catalog())
    with pytest.raises(DesignInvalid, match="lacks 9 synthetic references per side"):
        check_design_against(design, catalog(synthetic=0))
    with pytest.raises(DesignInvalid, match="share 0 natural batches besides the practice batch"):
        check_design_against(design, catalog(batches=(0,)))
    with pytest.raises(DesignInvalid, match="has no natural batch 0"):
        check_design_against(design, catalog(batches=(1, 2, 3)))
    small = Catalog(stimulus_set="set", units=catalog().units[1:])
    with pytest.raises(DesignInvalid) as info:
        parse_design(GOOD, "custom", small)
    assert "line 13, units.main[0]: unit 'a:1' is not in set" in info.value.detail


def test_role_lists_need_enough_units(make_unit) -> None:  # type: ignore[no-untyped-def]
    demo = load_design("demo")
    few = Catalog(
        units=tuple(make_unit(f"m:{i}") for i in range(4))
        + (make_unit("p:0", roles=("practice", "catch")),)
    )
    with pytest.raises(DesignInvalid) as info:
        check_design_against(demo, few)
    assert "units.main: the stimulus set has 4 units with role 'main'; the design needs 10" in (
        info.value.detail
    )


def test_exp1_against_a_set_without_synthetic_images(catalog_for) -> None:  # type: ignore[no-untyped-def]
    exp1 = load_design("paper-exp1")
    check_design_against(exp1, catalog_for(exp1))
    with pytest.raises(DesignInvalid, match="condition 'synthetic'"):
        check_design_against(exp1, catalog_for(exp1, synthetic=0))


def test_key_lines_cover_tables_arrays_and_inline_tables() -> None:
    text = preset_text("paper-exp2")
    lines = key_lines(text)
    all_lines = text.splitlines()
    line = lines[("sections", 2, "blocks", 3, "n_catch")]
    assert "n_catch = 2" in all_lines[line - 1] and all_lines[line - 1].startswith("  { kind")
    assert all_lines[lines[("sections", 2, "name")] - 1] == 'name = "max-9"'
    assert "mixed4a:33" in all_lines[lines[("units", "set_b", 4)] - 1]
    assert all_lines[lines[("conditions", "synthetic-max-9", "grid_mode")] - 1].startswith(
        "grid_mode"
    )


def test_docs_example_design_parses_and_generates() -> None:
    docs = Path(__file__).resolve().parents[3] / "docs" / "designs.md"
    text = docs.read_text().split("### Example\n```toml\n", 1)[1].split("```", 1)[0]
    design = parse_design(text, "example")
    assert design.quotas == {"natural": 30, "synthetic": 30}
    from app.designs import generate_schedule

    assert len(generate_schedule(design, None, 1, arm="natural").trials) == 25


def test_key_lines_follow_nested_arrays_of_tables() -> None:
    text = """\
seed = 1
[[sections]]
name = "a"
[[sections.blocks]]
kind = "main"
[[sections]]
name = "b"
[[sections.blocks]]
kind = "main"
[[sections.blocks]]
kind = 'x'  # comment with = and [brackets]
title = \"\"\"multi
line\"\"\"
n_trials = 2
"""
    lines = key_lines(text)
    assert lines[("sections", 1, "blocks", 1, "kind")] == 11
    assert lines[("sections", 1, "blocks", 1, "n_trials")] == 14
    assert lines[("sections", 0, "blocks", 0)] == 4
