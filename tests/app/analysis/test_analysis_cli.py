"""`psychvis analyze` through Typer's CliRunner: formats, errors without tracebacks, plots."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app

FIXTURE = Path(__file__).parent / "data" / "responses_small.csv"

runner = CliRunner()


def test_analyze_json_prints_rows_with_required_fields() -> None:
    result = runner.invoke(app, ["analyze", str(FIXTURE), "--format", "json", "--n-boot", "200"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["condition"] for row in rows] == ["natural", "synthetic"]
    for key in ("n_participants", "accuracy", "accuracy_ci", "rt_ms", "confidence"):
        assert key in rows[0]
    assert rows[0]["n_participants"] == 3
    assert rows[0]["accuracy"] == pytest.approx(5 / 6)
    assert rows[0]["accuracy_ci"] == pytest.approx(1.96 / 12)
    assert rows[1]["catch_accuracy"] is None


def test_analyze_table_by_several_columns() -> None:
    result = runner.invoke(
        app,
        [
            "analyze",
            str(FIXTURE),
            "--by",
            "reference_type, n_references,grid_mode",
            "--n-boot",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("reference_type"))
    assert "n_references" in header and "accuracy %" in header
    assert any(line.startswith("natural") and "83.3 ± 16.3" in line for line in lines)
    assert "Paired tests, natural vs synthetic" in result.stdout
    assert "0.1835" in result.stdout  # p of the paired t-test, 1 - 2/sqrt(6)


def test_analyze_csv_with_excluded_participants() -> None:
    result = runner.invoke(
        app,
        ["analyze", str(FIXTURE), "--format", "csv", "--include-excluded", "--n-boot", "0"],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    natural = next(row for row in rows if row["condition"] == "natural")
    assert natural["n_participants"] == "4"
    assert float(natural["accuracy"]) == pytest.approx(0.625)
    assert natural["unit_accuracy_ci_low"] == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv"], "file not found"),
        ([str(FIXTURE), "--by", "colour"], "unknown grouping column(s): colour"),
        ([str(FIXTURE), "--format", "xml"], "unknown format 'xml'"),
    ],
)
def test_analyze_bad_input_exits_1_with_message(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["analyze", *args])
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_analyze_bad_values_exit_1_naming_column(tmp_path: Path) -> None:
    text = FIXTURE.read_text().splitlines()
    text[1] = text[1].replace(",practice,", ",warmup,")
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(text) + "\n")
    result = runner.invoke(app, ["analyze", str(path)])
    assert result.exit_code == 1
    assert "column 'trial_kind': bad value(s) 'warmup' (line 2)" in result.stderr


def test_analyze_writes_png_and_svg_plots(tmp_path: Path) -> None:
    out = tmp_path / "plots"
    result = runner.invoke(app, ["analyze", str(FIXTURE), "--plots", str(out), "--n-boot", "0"])
    assert result.exit_code == 0, result.output
    names = sorted(path.name for path in out.iterdir())
    stems = (
        "accuracy_by_group",
        "accuracy_by_confidence",
        "accuracy_by_layer",
        "rt_confidence_by_group",
    )
    assert names == sorted(f"{stem}.{ext}" for stem in stems for ext in ("png", "svg"))
    for stem in stems:
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        svg = (out / f"{stem}.svg").read_text()
        assert "<svg" in svg
    # the main figure draws the chance line and the per-condition labels
    main_svg = (out / "accuracy_by_group.svg").read_text()
    assert "chance" in main_svg and "natural" in main_svg


def _lab_file(tmp_path: Path) -> Path:
    """The fixture as another lab's conversion might come: an anticipatory key press (negative
    RT, line 5: p1, natural) and a confidence of 4 (line 15: p2, natural) on main trials."""
    lines = FIXTURE.read_text().splitlines()
    header = lines[0].split(",")
    for line, column, value in ((5, "rt_ms", "-68.6"), (15, "confidence", "4")):
        cells = lines[line - 1].split(",")
        assert cells[header.index("trial_kind")] == "main"
        cells[header.index(column)] = value
        lines[line - 1] = ",".join(cells)
    path = tmp_path / "lab.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_analyze_treats_invalid_rt_and_confidence_as_missing_with_one_warning(
    tmp_path: Path,
) -> None:
    path = _lab_file(tmp_path)
    args = ["--format", "json", "--n-boot", "0"]
    result = runner.invoke(app, ["analyze", str(path), *args])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("warning:") == 1
    assert "column 'rt_ms': 1 value(s) treated as missing" in result.stderr
    assert "'-68.6' (line 5)" in result.stderr
    assert "column 'confidence': 1 value(s) treated as missing" in result.stderr
    assert "'4' (line 15)" in result.stderr
    clean = json.loads(runner.invoke(app, ["analyze", str(FIXTURE), *args]).stdout)
    rows = json.loads(result.stdout)
    for row, before in zip(rows, clean, strict=True):
        for key in ("n_participants", "n_trials", "accuracy", "accuracy_ci"):
            assert row[key] == before[key], key
    # The trials stay in the accuracy; their RT and confidence leave the means: p1's natural
    # RTs 1000, 800, 1000 (not 1200) and p2's natural confidence 2, 2, 1 (not 3).
    assert clean[0]["rt_ms"] == pytest.approx(1500)
    assert rows[0]["rt_ms"] == pytest.approx(clean[0]["rt_ms"] + (2800 / 3 - 1000) / 3)
    assert rows[0]["confidence"] == pytest.approx(clean[0]["confidence"] + (5 / 3 - 2) / 3)
    assert rows[1] == clean[1]

    strict = runner.invoke(app, ["analyze", str(path), "--strict", *args])
    assert strict.exit_code == 1
    assert "column 'rt_ms': bad value(s) '-68.6' (line 5); expected a non-negative" in strict.stderr


def test_analyze_still_refuses_a_file_without_a_needed_column(tmp_path: Path) -> None:
    lines = [line.split(",") for line in FIXTURE.read_text().splitlines()]
    drop = lines[0].index("grid_mode")
    path = tmp_path / "no_grid.csv"
    path.write_text(
        "\n".join(",".join(c for i, c in enumerate(cells) if i != drop) for cells in lines)
    )
    assert runner.invoke(app, ["analyze", str(path), "--n-boot", "0"]).exit_code == 0
    grouped = runner.invoke(app, ["analyze", str(path), "--by", "grid_mode", "--n-boot", "0"])
    assert grouped.exit_code == 1
    assert "missing column(s): grid_mode" in grouped.stderr
