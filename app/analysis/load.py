"""Read and validate response tables in the export format (`app.export_format`).

Every problem with the input becomes one `AnalysisInputError` whose message names the columns,
values and lines at fault, so the CLI can print it instead of a traceback.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app.export_format import CODEBOOK, RESPONSE_COLUMNS, ColumnSpec

logger = logging.getLogger(__name__)

MAX_EXAMPLES = 5
"""How many offending cells an error message quotes per column."""

PARTICIPANT_KEY: tuple[str, ...] = ("experiment", "participant")
"""Columns that identify one participant (ids need only be unique within an experiment)."""

TRIAL_KEY: tuple[str, ...] = ("experiment", "session", "participant", "trial_index")
"""Columns that identify one answered trial; a file may hold each combination once."""

_TRUE_TEXT = frozenset({"true", "1"})
_FALSE_TEXT = frozenset({"false", "0"})
_NEUTRALISED_PREFIXES = ("'=", "'+", "'-", "'@")
_NON_NEGATIVE_COLUMNS = ("trial_index", "block_index", "channel", "batch", "repeat_of_trial_index")


class AnalysisInputError(ValueError):
    """The input is not a valid response table; the message says what is wrong and where."""


def read_responses(path: Path) -> pd.DataFrame:
    """Read a `responses.csv` file and return it validated and typed.

    Args:
        path: CSV file in the export format (UTF-8, comma-separated, header row; columns in any
            order, extra columns kept but not checked).

    Returns:
        The table typed as `coerce_frame` describes.

    Raises:
        AnalysisInputError: The file is missing or unreadable, lacks columns, or holds values
            that break the codebook.
    """
    if not path.exists():
        raise AnalysisInputError(f"{path}: file not found")
    if not path.is_file():
        raise AnalysisInputError(f"{path}: not a file")
    try:
        raw = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8-sig",
            skipinitialspace=False,
        )
    except pd.errors.EmptyDataError as exc:
        raise AnalysisInputError(f"{path}: the file is empty (no header row)") from exc
    except pd.errors.ParserError as exc:
        raise AnalysisInputError(f"{path}: not a readable CSV file: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise AnalysisInputError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    raw.columns = [str(column).strip() for column in raw.columns]
    frame = coerce_frame(raw, source=str(path), line_numbers=True)
    logger.info("responses read", extra={"path": str(path), "rows": len(frame)})
    return frame


def coerce_frame(
    frame: pd.DataFrame, *, source: str = "responses", line_numbers: bool = False
) -> pd.DataFrame:
    """Validate a response table and return a typed copy.

    Accepts the raw text of a CSV file as well as a frame that is already typed (Python bools,
    ints, timestamps), so the dashboard can pass rows built from the database.

    Types of the result: text columns `str` (empty cell -> `""`); `int` columns pandas `Int64`;
    `rt_ms` float64; `correct` and `excluded` bool; `hand_picked` nullable `boolean`; timestamps
    `datetime64[ns, UTC]`. Extra columns are kept unchanged.

    Args:
        frame: The table; one row per answered trial.
        source: Name used at the start of error messages (e.g. the file path).
        line_numbers: Report problems as file line numbers (header = line 1) instead of 0-based
            row positions.

    Returns:
        A new, typed DataFrame with a fresh 0-based RangeIndex.

    Raises:
        AnalysisInputError: Missing columns, empty required cells, values outside the codebook,
            inconsistent derived columns (`correct`, `correct_response`, `conf_rating`) or
            duplicate trials.
    """
    frame = frame.reset_index(drop=True)
    where: Callable[[int], str] = (
        (lambda i: f"line {i + 2}") if line_numbers else (lambda i: f"row {i}")
    )
    missing = [column for column in RESPONSE_COLUMNS if column not in frame.columns]
    if missing:
        message = f"{source}: missing column(s): {', '.join(missing)}"
        if len(frame.columns) == 1 and any(sep in str(frame.columns[0]) for sep in ";\t|"):
            message += " (the header is one column: is the file comma-separated?)"
        raise AnalysisInputError(message)
    if frame.empty:
        raise AnalysisInputError(f"{source}: no data rows")

    problems: list[str] = []
    typed = frame.copy()
    for column in RESPONSE_COLUMNS:
        spec = CODEBOOK[column]
        text = frame[column].map(_cell_text)
        typed[column] = _parse_column(spec, text, problems, where)
    if not problems:
        _check_consistency(typed, problems, where)
    if problems:
        raise AnalysisInputError(
            f"{source}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return typed


def _cell_text(value: Any) -> str:
    """Return a cell as the text it would have in the CSV file (empty for missing)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return str(value).strip()


def _parse_column(
    spec: ColumnSpec, text: pd.Series, problems: list[str], where: Callable[[int], str]
) -> pd.Series:
    empty = text == ""
    if not spec.nullable and empty.any():
        problems.append(f"column '{spec.name}': empty cell(s) on {_positions(empty, where)}")
    if spec.type == "str":
        if spec.allowed is not None:
            _check_allowed(spec, text, ~empty, problems, where)
        return text.astype(object)
    # The exporter neutralises spreadsheet formulas by prefixing `'`; undo it for values.
    text = text.map(lambda s: s[1:] if s.startswith(_NEUTRALISED_PREFIXES) else s)
    if spec.type == "bool":
        lowered = text.str.lower()
        bad = ~empty & ~lowered.isin(_TRUE_TEXT | _FALSE_TEXT)
        _report_bad(spec, text, bad, problems, where, "true or false")
        values = lowered.isin(_TRUE_TEXT)
        if spec.nullable:
            return values.astype("boolean").mask(empty, pd.NA)
        return values.astype(bool)
    if spec.type in ("int", "float"):
        numbers = pd.to_numeric(text.str.replace("\u2212", "-", regex=False), errors="coerce")
        bad = ~empty & numbers.isna()
        if spec.type == "int":
            bad |= ~empty & numbers.notna() & (numbers % 1 != 0)
        if spec.name in _NON_NEGATIVE_COLUMNS or spec.name == "rt_ms":
            bad |= ~empty & numbers.notna() & (numbers < 0)
        _report_bad(spec, text, bad, problems, where, _expected(spec))
        if spec.type == "float":
            return numbers.astype("float64")
        ints = numbers.where(~bad).round().astype("Int64")
        if spec.allowed is not None:
            _check_allowed(spec, ints.astype(str), ~empty & ~bad, problems, where)
        return ints
    stamps = pd.to_datetime(text.where(~empty), utc=True, format="ISO8601", errors="coerce")
    bad = ~empty & stamps.isna()
    _report_bad(spec, text, bad, problems, where, "an ISO 8601 timestamp")
    return stamps


def _expected(spec: ColumnSpec) -> str:
    if spec.type == "int":
        kind = "a non-negative integer" if spec.name in _NON_NEGATIVE_COLUMNS else "an integer"
    else:
        kind = "a non-negative number"
    return kind


def _check_allowed(
    spec: ColumnSpec,
    text: pd.Series,
    check: pd.Series,
    problems: list[str],
    where: Callable[[int], str],
) -> None:
    allowed = spec.allowed or ()
    bad = check & ~text.isin(allowed)
    _report_bad(spec, text, bad, problems, where, "one of " + ", ".join(allowed))


def _report_bad(
    spec: ColumnSpec,
    text: pd.Series,
    bad: pd.Series,
    problems: list[str],
    where: Callable[[int], str],
    expected: str,
) -> None:
    if not bad.any():
        return
    positions = np.flatnonzero(bad.to_numpy())
    examples = ", ".join(f"{text.iloc[i]!r} ({where(int(i))})" for i in positions[:MAX_EXAMPLES])
    more = f", … ({len(positions)} in all)" if len(positions) > MAX_EXAMPLES else ""
    problems.append(f"column '{spec.name}': bad value(s) {examples}{more}; expected {expected}")


def _positions(mask: pd.Series, where: Callable[[int], str]) -> str:
    positions = np.flatnonzero(mask.to_numpy())
    listed = ", ".join(where(int(i)) for i in positions[:MAX_EXAMPLES])
    more = f", … ({len(positions)} in all)" if len(positions) > MAX_EXAMPLES else ""
    return listed + more


def _check_consistency(
    typed: pd.DataFrame, problems: list[str], where: Callable[[int], str]
) -> None:
    response_upper = typed["response"] == "upper"
    derived_correct = typed["response"] == typed["correct_response"]
    bad = typed["correct"] != derived_correct
    if bad.any():
        problems.append(
            "column 'correct' disagrees with response == correct_response on "
            + _positions(bad, where)
        )
    bad = (typed["query_order"] == "max_upper") != (typed["correct_response"] == "upper")
    if bad.any():
        problems.append(
            "column 'correct_response' disagrees with query_order (max_upper -> upper) on "
            + _positions(bad, where)
        )
    sign = np.where(response_upper.to_numpy(), 1, -1)
    bad = pd.Series(
        typed["conf_rating"].to_numpy(dtype="int64")
        != sign * typed["confidence"].to_numpy(dtype="int64"),
        index=typed.index,
    )
    if bad.any():
        problems.append(
            "column 'conf_rating' is not +confidence (upper) / -confidence (lower) on "
            + _positions(bad, where)
        )
    duplicated = typed.duplicated(subset=list(TRIAL_KEY), keep="first")
    if duplicated.any():
        problems.append(
            "duplicate trial (same experiment, session, participant, trial_index) on "
            + _positions(duplicated, where)
        )
