"""Reading and validating response tables: types, and clear messages for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from app.analysis import (
    AnalysisInputError,
    AnalysisInputWarning,
    analyze_frame,
    coerce_frame,
    read_responses,
)
from app.export_format import (
    CODEBOOK,
    CORE_RESPONSE_COLUMNS,
    RESPONSE_COLUMNS,
    TRIAL_MEASUREMENT_SPECS,
    codebook_markdown,
)

FIXTURE = Path(__file__).parent / "data" / "responses_small.csv"


def _raw() -> pd.DataFrame:
    return pd.read_csv(FIXTURE, dtype=str, keep_default_na=False)


def _write(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "responses.csv"
    frame.to_csv(path, index=False)
    return path


def test_export_format_lists_columns_in_order_with_a_codebook() -> None:
    assert RESPONSE_COLUMNS[:3] == ("experiment", "session", "participant")
    # The columns of the first release keep their names and order; measurements come after.
    assert CORE_RESPONSE_COLUMNS[-2:] == ("excluded", "exclusion_reasons")
    assert len(CORE_RESPONSE_COLUMNS) == 31
    assert RESPONSE_COLUMNS[:31] == CORE_RESPONSE_COLUMNS
    assert RESPONSE_COLUMNS[31:] == tuple(spec.name for spec in TRIAL_MEASUREMENT_SPECS)
    assert len(RESPONSE_COLUMNS) == len(set(RESPONSE_COLUMNS))
    assert list(CODEBOOK) == list(RESPONSE_COLUMNS)
    assert all(CODEBOOK[name].description for name in RESPONSE_COLUMNS)
    assert CODEBOOK["confidence"].allowed == ("1", "2", "3")
    assert CODEBOOK["trial_kind"].allowed == ("practice", "main", "catch", "repeated")
    assert CODEBOOK["input_kind"].allowed == ("mouse", "keyboard", "touch")
    assert list(_raw().columns) == list(CORE_RESPONSE_COLUMNS)


def test_export_format_imports_no_pandas() -> None:
    code = "import sys, app.export_format; sys.exit('pandas' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_read_responses_types_columns() -> None:
    frame = read_responses(FIXTURE)
    assert len(frame) == 42
    assert frame["correct"].dtype == bool
    assert frame["excluded"].dtype == bool
    assert str(frame["confidence"].dtype) == "Int64"
    assert frame["rt_ms"].dtype == float
    assert frame["presented_at"].dt.tz is not None
    assert frame["repeat_of_trial_index"].isna().sum() == 42 - 3
    assert frame.loc[0, "exclusion_reasons"] == ""


def test_typed_frame_is_accepted_again() -> None:
    typed = read_responses(FIXTURE)
    again = coerce_frame(typed)
    pd.testing.assert_frame_equal(again, typed)


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = _write(tmp_path, _raw().drop(columns=["confidence", "rt_ms"]))
    with pytest.raises(AnalysisInputError, match=r"missing column\(s\): confidence, rt_ms"):
        read_responses(path, strict=True)
    with pytest.raises(AnalysisInputError, match=r"missing column\(s\): rt_ms, confidence"):
        read_responses(path)


def test_missing_columns_the_analysis_does_not_need_are_left_empty(tmp_path: Path) -> None:
    path = _write(tmp_path, _raw().drop(columns=["query_image_upper", "layer"]))
    with pytest.warns(AnalysisInputWarning, match="absent, treated as empty: layer, query_"):
        frame = read_responses(path)
    assert set(frame["layer"]) == {""}
    with pytest.raises(AnalysisInputError, match=r"missing column\(s\): layer"):
        read_responses(path, needed=["layer"])
    with pytest.raises(AnalysisInputError, match=r"missing column\(s\): layer, query_image"):
        read_responses(path, strict=True)


def test_semicolon_file_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "responses.csv"
    _raw().to_csv(path, index=False, sep=";")
    with pytest.raises(AnalysisInputError, match="comma-separated"):
        read_responses(path)


def test_bad_values_are_named_with_line_numbers(tmp_path: Path) -> None:
    raw = _raw()
    raw.loc[3, "confidence"] = "4"
    raw.loc[4, "trial_kind"] = "warmup"
    raw.loc[5, "rt_ms"] = "fast"
    raw.loc[6, "correct"] = "yes"
    raw.loc[7, "presented_at"] = "yesterday"
    raw.loc[8, "participant"] = ""
    with pytest.raises(AnalysisInputError) as info:
        read_responses(_write(tmp_path, raw), strict=True)
    message = str(info.value)
    assert "6 problem(s)" in message
    assert "column 'confidence': bad value(s) '4' (line 5); expected one of 1, 2, 3" in message
    assert "column 'trial_kind': bad value(s) 'warmup' (line 6)" in message
    assert "column 'rt_ms': bad value(s) 'fast' (line 7)" in message
    assert "column 'correct': bad value(s) 'yes' (line 8)" in message
    assert "column 'presented_at': bad value(s) 'yesterday' (line 9)" in message
    assert "column 'participant': empty cell(s) on line 10" in message


def test_inconsistent_correct_and_conf_rating_are_reported(tmp_path: Path) -> None:
    raw = _raw()
    raw.loc[1, "correct"] = "false" if raw.loc[1, "correct"] == "true" else "true"
    raw.loc[2, "conf_rating"] = str(-int(raw.loc[2, "conf_rating"]))
    path = _write(tmp_path, raw)
    with pytest.raises(AnalysisInputError) as info:
        read_responses(path, strict=True)
    message = str(info.value)
    assert "'correct' disagrees with response == correct_response on line 3" in message
    assert "'conf_rating' is not +confidence (upper) / -confidence (lower) on line 4" in message
    # Which of `correct` and `response` is wrong is unknown: refused without --strict too.
    with pytest.raises(AnalysisInputError) as info:
        read_responses(path)
    assert "1 problem(s)" in str(info.value) and "'correct' disagrees" in str(info.value)
    raw.loc[1, "correct"] = _raw().loc[1, "correct"]
    with pytest.warns(
        AnalysisInputWarning, match=r"'conf_rating': 1 value\(s\) treated as missing"
    ):
        frame = read_responses(_write(tmp_path, raw))
    assert frame["conf_rating"].isna().tolist() == [i == 2 for i in range(len(raw))]


def test_duplicate_trials_are_reported(tmp_path: Path) -> None:
    raw = _raw()
    raw = pd.concat([raw, raw.iloc[[5]]], ignore_index=True)
    with pytest.raises(AnalysisInputError, match="duplicate trial .* line 44"):
        read_responses(_write(tmp_path, raw))


def test_spreadsheet_neutralised_numbers_are_read(tmp_path: Path) -> None:
    raw = _raw()
    negative = raw["conf_rating"].str.startswith("-")
    raw.loc[negative, "conf_rating"] = "'" + raw.loc[negative, "conf_rating"]
    frame = read_responses(_write(tmp_path, raw))
    assert frame["conf_rating"].min() < 0


def test_empty_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(AnalysisInputError, match="empty"):
        read_responses(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(RESPONSE_COLUMNS) + "\n")
    with pytest.raises(AnalysisInputError, match="no data rows"):
        read_responses(header_only)
    with pytest.raises(AnalysisInputError, match="file not found"):
        read_responses(tmp_path / "absent.csv")


def test_frame_problems_report_row_positions() -> None:
    raw = _raw()
    raw.loc[0, "n_references"] = "5"
    with pytest.raises(AnalysisInputError, match=r"'5' \(row 0\); expected one of 0, 1, 9"):
        analyze_frame(raw, strict=True)
    with pytest.raises(AnalysisInputError, match=r"'5' \(row 0\); expected one of 0, 1, 9"):
        analyze_frame(raw, ["n_references"])
    with pytest.warns(AnalysisInputWarning, match=r"'n_references': 1 value\(s\) .*\(row 0\)"):
        analyze_frame(raw)


def test_docs_show_the_current_codebook() -> None:
    docs = Path(__file__).parents[3] / "docs" / "analysis.md"
    assert codebook_markdown() in docs.read_text()


def test_exporter_csv_writer_output_reads_back(tmp_path: Path) -> None:
    from app.services.export import write_csv

    raw = _raw()
    raw.loc[raw["condition"] == "synthetic", "condition"] = "-synthetic"  # gets neutralised
    path = tmp_path / "exported.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        assert write_csv(fh, raw.to_dict(orient="records")) == len(raw)
    frame = read_responses(path)
    expected = read_responses(FIXTURE)
    assert set(frame["condition"]) == {"natural", "'-synthetic"}
    pd.testing.assert_series_equal(frame["conf_rating"], expected["conf_rating"])
    pd.testing.assert_series_equal(frame["correct"], expected["correct"])
