"""Schedule preview: JSON rows, the table, and the `psychvis experiments preview` command."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from app.cli import app
from app.designs import expected_arm, generate_schedule, load_design, render_preview
from app.schedule import Catalog

REQUIRED = {
    "trial_index",
    "block_index",
    "trial_kind",
    "condition",
    "reference_type",
    "n_references",
    "grid_mode",
    "layer",
    "channel",
    "batch",
}


def test_json_preview_lists_trials_with_required_fields() -> None:
    s = generate_schedule(load_design("paper-exp1"), None, 3)
    rows = json.loads(render_preview(s, "json"))
    assert len(rows) == 189 and REQUIRED <= set(rows[0])  # 3 start ratings, 186 2-AFC trials
    assert rows[5]["layer"].startswith("mixed") and isinstance(rows[5]["channel"], int)
    repeated = [r for r in rows if r["trial_kind"] == "repeated"]
    assert len(repeated) == 18
    assert all(r["unit_id"] is None and r["layer"] is None and r["batch"] is None for r in repeated)


def test_table_preview_shows_blocks_ratings_and_counts(make_unit) -> None:  # type: ignore[no-untyped-def]
    demo = load_design("demo")
    units = [make_unit(f"u{i}", roles=("main",)) for i in range(10)]
    units += [make_unit("x", roles=("practice", "catch")), make_unit("y", roles=("practice",))]
    catalog = Catalog(units=tuple(units))
    text = render_preview(generate_schedule(demo, catalog, 1), "table", catalog)
    assert "13 trials in 3 blocks" in text
    assert 'block 2  main  natural  6 trials  "Next: natural reference images"' in text
    assert "queries = max ref" in text
    assert "catch     natural" in text


def test_expected_arm_follows_balanced_assignment() -> None:
    imi = load_design("imi")
    arms = [expected_arm(imi, p) for p in range(1, 9)]
    for k in range(0, 8, 2):
        assert sorted(arms[k : k + 2]) == ["natural", "synthetic"]  # type: ignore[type-var]
    assert expected_arm(load_design("paper-exp1"), 3) is None


def test_cli_preview_prints_json_and_refuses_bad_designs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    result = runner.invoke(
        app, ["experiments", "preview", "paper-exp2", "--participant", "2", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 222  # 216 2-AFC trials, 3 + 3 ratings
    result = runner.invoke(app, ["experiments", "preview", "imi", "--participant", "1"])
    assert result.exit_code == 0 and "arm " in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('seed = 1\n[conditions.natural]\nreference_typ = "natural"\n')
    result = runner.invoke(app, ["experiments", "preview", str(bad)])
    assert result.exit_code == 1
    assert "line 3, conditions.natural.reference_typ: unknown key" in result.output
