"""Read and validate response tables in the export format (`app.export_format`).

A problem with what the analysis needs becomes one `AnalysisInputError` whose message names the
columns, values and lines at fault, so the CLI can print it instead of a traceback. Invalid
values elsewhere (and invalid RTs or confidence ratings) become missing values with one
`AnalysisInputWarning`, unless `strict` asks for today's contract: every core column present and
every value valid.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app.export_format import CODEBOOK, CORE_RESPONSE_COLUMNS, RESPONSE_COLUMNS, ColumnSpec

logger = logging.getLogger(__name__)

MAX_EXAMPLES = 5
"""How many offending cells an error message quotes per column."""

PARTICIPANT_KEY: tuple[str, ...] = ("experiment", "participant")
"""Columns that identify one participant (ids need only be unique within an experiment)."""

TRIAL_KEY: tuple[str, ...] = ("experiment", "session", "participant", "trial_index")
"""Columns that identify one answered trial; a file may hold each combination once."""

ANALYSIS_COLUMNS: tuple[str, ...] = (
    "experiment",
    "session",
    "participant",
    "trial_index",
    "trial_kind",
    "condition",
    "reference_type",
    "correct",
    "excluded",
)
"""Columns every analysis needs, with valid values: who answered which trial, of which kind and
condition, whether correctly, and whether the participant is excluded."""

MEASURE_COLUMNS: tuple[str, ...] = ("rt_ms", "confidence")
"""Columns every analysis needs present; an invalid cell (a negative RT from an anticipatory key
press, a confidence of 4) becomes missing and leaves that trial out of the RT or confidence
statistics only."""

_TRUE_TEXT = frozenset({"true", "1"})
_FALSE_TEXT = frozenset({"false", "0"})
_NEUTRALISED_PREFIXES = ("'=", "'+", "'-", "'@")
_NON_NEGATIVE_COLUMNS = ("trial_index", "block_index", "channel", "batch", "repeat_of_trial_index")


class AnalysisInputError(ValueError):
    """The input is not a valid response table; the message says what is wrong and where."""


class AnalysisInputWarning(UserWarning):
    """Values the analysis does not rely on were invalid and are treated as missing."""


@dataclass(frozen=True, slots=True)
class _Problem:
    """Invalid cells of one column (`bad` marks them) or a row-level inconsistency."""

    column: str
    detail: str
    bad: pd.Series
    about: str = "value"
    """`value` (message "column 'x': bad value(s) ..."), `row` ("column 'x' disagrees ...") or
    `trial` (the detail alone)."""

    @property
    def message(self) -> str:
        if self.about == "trial":
            return self.detail
        return f"column '{self.column}'{': ' if self.about == 'value' else ' '}{self.detail}"


def read_responses(path: Path, *, needed: Iterable[str] = (), strict: bool = False) -> pd.DataFrame:
    """Read a `responses.csv` file and return it validated and typed.

    Args:
        path: CSV file in the export format (UTF-8, comma-separated, header row; columns in any
            order, extra columns kept but not checked).
        needed: Further columns the caller relies on (e.g. the grouping columns), checked as
            strictly as `ANALYSIS_COLUMNS`.
        strict: Refuse the file for any missing core column or invalid value.

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
    frame = coerce_frame(raw, source=str(path), line_numbers=True, needed=needed, strict=strict)
    logger.info("responses read", extra={"path": str(path), "rows": len(frame)})
    return frame


def coerce_frame(
    frame: pd.DataFrame,
    *,
    source: str = "responses",
    line_numbers: bool = False,
    needed: Iterable[str] = (),
    strict: bool = False,
) -> pd.DataFrame:
    """Validate a response table and return a typed copy.

    Accepts the raw text of a CSV file as well as a frame that is already typed (Python bools,
    ints, timestamps), so the dashboard can pass rows built from the database.

    Types of the result: text columns `str` (empty cell -> `""`); `int` columns pandas `Int64`;
    `rt_ms` float64; `correct` and `excluded` bool; other booleans nullable `boolean`;
    timestamps `datetime64[ns, UTC]`. Every column of `RESPONSE_COLUMNS` is present (absent ones
    empty); extra columns are kept unchanged.

    Lenient (default): `ANALYSIS_COLUMNS`, `MEASURE_COLUMNS` and `needed` must be present and
    the first and last must hold valid values; invalid cells anywhere else (and in
    `MEASURE_COLUMNS`) become missing, reported in one `AnalysisInputWarning` per table.
    Strict: every column of `CORE_RESPONSE_COLUMNS` must be present and every value valid.

    Args:
        frame: The table; one row per answered trial.
        source: Name used at the start of error messages (e.g. the file path).
        line_numbers: Report problems as file line numbers (header = line 1) instead of 0-based
            row positions.
        needed: Further columns that must be present and valid (grouping columns).
        strict: Refuse any problem instead of treating invalid values as missing.

    Returns:
        A new, typed DataFrame with a fresh 0-based RangeIndex.

    Raises:
        AnalysisInputError: Missing columns, empty required cells, values outside the codebook,
            inconsistent derived columns (`correct`, `correct_response`, `conf_rating`) or
            duplicate trials; in lenient mode only what concerns the needed columns (their
            values, a `correct` that disagrees with the response, duplicate trials).
    """
    frame = frame.reset_index(drop=True)
    where: Callable[[int], str] = (
        (lambda i: f"line {i + 2}") if line_numbers else (lambda i: f"row {i}")
    )
    needed = tuple(column for column in needed if column in CODEBOOK)
    hard = set(CORE_RESPONSE_COLUMNS) if strict else {*ANALYSIS_COLUMNS, *needed}
    required = (
        CORE_RESPONSE_COLUMNS
        if strict
        else tuple(dict.fromkeys([*ANALYSIS_COLUMNS, *MEASURE_COLUMNS, *needed]))
    )
    missing = [column for column in required if column not in frame.columns]
    if missing:
        message = f"{source}: missing column(s): {', '.join(missing)}"
        if len(frame.columns) == 1 and any(sep in str(frame.columns[0]) for sep in ";\t|"):
            message += " (the header is one column: is the file comma-separated?)"
        raise AnalysisInputError(message)
    if frame.empty:
        raise AnalysisInputError(f"{source}: no data rows")

    problems: list[_Problem] = []
    typed = frame.copy()
    absent: list[str] = []
    for column in RESPONSE_COLUMNS:
        spec = CODEBOOK[column]
        if column not in frame.columns:
            typed[column] = _empty_column(spec, len(frame))
            if column in CORE_RESPONSE_COLUMNS:
                absent.append(column)
            continue
        text = frame[column].map(_cell_text)
        if column not in CORE_RESPONSE_COLUMNS and (text == "").all():
            # A measurement column without a single value (a typed frame read back).
            typed[column] = _empty_column(spec, len(frame))
            continue
        typed[column] = _parse_column(spec, text, problems, where)
    if strict:
        if not problems:
            _check_consistency(typed, problems, where)
        _raise_if(source, problems)
        return typed
    _raise_if(source, [problem for problem in problems if problem.column in hard])
    typed = _treat_as_missing(typed, problems)
    found: list[_Problem] = []
    _check_consistency(typed, found, where)
    _raise_if(source, [problem for problem in found if problem.column in hard])
    typed = _treat_as_missing(typed, found)
    problems += found
    if problems or absent:
        _warn(source, problems, absent, where)
    return typed


def _raise_if(source: str, problems: list[_Problem]) -> None:
    if problems:
        raise AnalysisInputError(
            f"{source}: {len(problems)} problem(s):\n"
            + "\n".join(f"  - {problem.message}" for problem in problems)
        )


def _empty_column(spec: ColumnSpec, n: int) -> pd.Series:
    """A column of `n` missing values with the type `_parse_column` gives `spec`."""
    if spec.type == "str":
        return pd.Series([""] * n, dtype=object)
    if spec.type == "bool":
        return pd.Series([pd.NA] * n, dtype="boolean")
    if spec.type == "int":
        return pd.Series([pd.NA] * n, dtype="Int64")
    if spec.type == "float":
        return pd.Series([math.nan] * n, dtype="float64")
    return pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")


def _treat_as_missing(typed: pd.DataFrame, problems: list[_Problem]) -> pd.DataFrame:
    for problem in problems:
        column, bad = problem.column, problem.bad.to_numpy()
        spec = CODEBOOK[column]
        values = typed[column]
        if spec.type == "str":
            typed[column] = values.mask(bad, "")
        elif spec.type == "bool":
            typed[column] = values.astype("boolean").mask(bad, pd.NA)
        elif spec.type == "float":
            typed[column] = values.mask(bad, math.nan)
        elif spec.type == "int":
            typed[column] = values.mask(bad, pd.NA)
        else:
            typed[column] = values.mask(bad, pd.NaT)
    return typed


def _warn(
    source: str, problems: list[_Problem], absent: list[str], where: Callable[[int], str]
) -> None:
    """One warning for the whole table: per column, how many cells and the first of them."""
    lines: list[str] = []
    by_column: dict[str, list[_Problem]] = {}
    for problem in problems:
        by_column.setdefault(problem.column, []).append(problem)
    for column, found in by_column.items():
        bad = found[0].bad.copy()
        for problem in found[1:]:
            bad |= problem.bad
        reasons = "; ".join(problem.detail for problem in found)
        lines.append(f"column '{column}': {int(bad.sum())} value(s) treated as missing: {reasons}")
    if absent:
        lines.append(f"column(s) absent, treated as empty: {', '.join(absent)}")
    message = (
        f"{source}: invalid values treated as missing (--strict refuses the file instead):\n"
        + "\n".join(f"  - {line}" for line in lines)
    )
    logger.info("invalid input treated as missing", extra={"columns": len(lines)})
    warnings.warn(message, AnalysisInputWarning, stacklevel=3)


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
    spec: ColumnSpec, text: pd.Series, problems: list[_Problem], where: Callable[[int], str]
) -> pd.Series:
    empty = text == ""
    if not spec.nullable and empty.any():
        problems.append(_Problem(spec.name, f"empty cell(s) on {_positions(empty, where)}", empty))
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
        if spec.nullable or (empty | bad).any():
            return values.astype("boolean").mask(empty | bad, pd.NA)
        return values.astype(bool)
    if spec.type in ("int", "float"):
        numbers = pd.to_numeric(text.str.replace("\u2212", "-", regex=False), errors="coerce")
        bad = ~empty & numbers.isna()
        if spec.type == "int":
            bad |= ~empty & numbers.notna() & (numbers % 1 != 0)
        if spec.name in _NON_NEGATIVE_COLUMNS or spec.type == "float":
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
    problems: list[_Problem],
    where: Callable[[int], str],
) -> None:
    allowed = spec.allowed or ()
    bad = check & ~text.isin(allowed)
    _report_bad(spec, text, bad, problems, where, "one of " + ", ".join(allowed))


def _report_bad(
    spec: ColumnSpec,
    text: pd.Series,
    bad: pd.Series,
    problems: list[_Problem],
    where: Callable[[int], str],
    expected: str,
) -> None:
    if not bad.any():
        return
    positions = np.flatnonzero(bad.to_numpy())
    examples = ", ".join(f"{text.iloc[i]!r} ({where(int(i))})" for i in positions[:MAX_EXAMPLES])
    more = f", … ({len(positions)} in all)" if len(positions) > MAX_EXAMPLES else ""
    problems.append(
        _Problem(
            spec.name,
            f"bad value(s) {examples}{more}; expected {expected}",
            bad,
        )
    )


def _positions(mask: pd.Series, where: Callable[[int], str]) -> str:
    positions = np.flatnonzero(mask.to_numpy())
    listed = ", ".join(where(int(i)) for i in positions[:MAX_EXAMPLES])
    more = f", … ({len(positions)} in all)" if len(positions) > MAX_EXAMPLES else ""
    return listed + more


def _check_consistency(
    typed: pd.DataFrame, problems: list[_Problem], where: Callable[[int], str]
) -> None:
    """Derived columns must agree with what they derive from, where both are known.

    A disagreement of `correct` is charged to `correct` (needed: which of the two is right is
    unknown); the others to the derived column (`correct_response`, `conf_rating`).
    """
    response, correct_response = typed["response"], typed["correct_response"]
    known = (response != "") & (correct_response != "")
    bad = known & (typed["correct"].astype("boolean") != (response == correct_response))
    bad = bad.fillna(False).astype(bool)
    if bad.any():
        problems.append(
            _Problem(
                "correct",
                "disagrees with response == correct_response on " + _positions(bad, where),
                bad,
                about="row",
            )
        )
    known = (typed["query_order"] != "") & (correct_response != "")
    bad = known & ((typed["query_order"] == "max_upper") != (typed["correct_response"] == "upper"))
    if bad.any():
        problems.append(
            _Problem(
                "correct_response",
                "disagrees with query_order (max_upper -> upper) on " + _positions(bad, where),
                bad,
                about="row",
            )
        )
    confidence = typed["confidence"].astype("Float64")
    conf_rating = typed["conf_rating"].astype("Float64")
    sign = pd.Series(np.where((response == "upper").to_numpy(), 1.0, -1.0), index=typed.index)
    known = (response != "") & confidence.notna() & conf_rating.notna()
    bad = (known & (conf_rating != sign * confidence)).fillna(False).astype(bool)
    if bad.any():
        problems.append(
            _Problem(
                "conf_rating",
                "is not +confidence (upper) / -confidence (lower) on " + _positions(bad, where),
                bad,
                about="row",
            )
        )
    duplicated = typed.duplicated(subset=list(TRIAL_KEY), keep="first")
    if duplicated.any():
        problems.append(
            _Problem(
                "trial_index",
                "duplicate trial (same experiment, session, participant, trial_index) on "
                + _positions(duplicated, where),
                duplicated,
                about="trial",
            )
        )
