"""Text renderings of an `Analysis`: aligned table, JSON and CSV.

Imports no pandas: it formats the plain dicts that `app.analysis.stats` returns.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from app.analysis.stats import Analysis

OutputFormat = Literal["table", "json", "csv"]
OUTPUT_FORMATS: tuple[str, ...] = ("table", "json", "csv")
_FORMULA_PREFIXES = ("=", "+", "-", "@")

ROW_FIELDS: tuple[str, ...] = (
    "n_participants",
    "n_trials",
    "accuracy",
    "accuracy_sem",
    "accuracy_ci",
    "rt_ms",
    "rt_ms_sem",
    "rt_correct_ms",
    "rt_correct_ms_sem",
    "confidence",
    "confidence_sem",
    "n_units",
    "unit_accuracy",
    "unit_accuracy_ci_low",
    "unit_accuracy_ci_high",
    "catch_n_participants",
    "catch_accuracy",
    "catch_accuracy_ci",
)
"""Statistic columns of a summary row, after the group columns (the CSV column order)."""


def render(analysis: Analysis, fmt: OutputFormat | str) -> str:
    """Render an analysis in one of `OUTPUT_FORMATS`.

    Args:
        analysis: Result of `app.analysis.stats.analyze`.
        fmt: `table` (all sections, aligned text), `json` (the list of summary rows) or `csv`
            (the summary rows, one line each).

    Returns:
        The text, ending with a newline.

    Raises:
        ValueError: Unknown format.
    """
    if fmt == "table":
        return format_table(analysis)
    if fmt == "json":
        return format_json(analysis.rows)
    if fmt == "csv":
        return format_csv(analysis.rows, analysis.by)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}")


def format_json(rows: Sequence[dict[str, Any]]) -> str:
    """JSON list of summary rows (accuracy as a proportion, `accuracy_ci` the ± half-width)."""
    return json.dumps([_json_safe(row) for row in rows], indent=2, allow_nan=False) + "\n"


def format_csv(rows: Sequence[dict[str, Any]], by: Sequence[str]) -> str:
    """CSV of summary rows: group columns, then `ROW_FIELDS`; empty cells for undefined values."""
    buffer = io.StringIO()
    columns = [*by, *(name for name in ROW_FIELDS if name not in by)]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_cell(row.get(key)) for key in columns})
    return buffer.getvalue()


def format_table(analysis: Analysis) -> str:
    """Aligned text report: summary per group, accuracy by confidence, paired tests."""
    by = list(analysis.by)
    summary = analysis.summary
    excluded = summary.get("n_excluded_participants", 0)
    excluded_note = (
        f"{excluded} excluded participant(s) "
        + ("included" if summary.get("include_excluded") else "left out")
        if excluded
        else "no excluded participants"
    )
    parts = [
        f"Main trials: {summary.get('n_main_trials')} from {summary.get('n_participants')} "
        f"participant(s) ({excluded_note}); grouped by {', '.join(by) or '(all)'}.",
        "Accuracy: mean over participants of their proportion correct, ± 1.96·SEM. "
        "RT and confidence: mean of participant means ± SEM.",
        "",
    ]
    headers = [
        *by,
        "n",
        "trials",
        "accuracy %",
        "RT ms",
        "RT correct ms",
        "confidence",
        "units",
        "unit acc % [95% boot CI]",
        "catch acc %",
    ]
    lines = []
    for row in analysis.rows:
        lines.append(
            [
                *(_text(row.get(column)) for column in by),
                _text(row["n_participants"]),
                _text(row["n_trials"]),
                _pm(row["accuracy"], row["accuracy_ci"], scale=100, digits=1),
                _pm(row["rt_ms"], row["rt_ms_sem"], digits=0),
                _pm(row["rt_correct_ms"], row["rt_correct_ms_sem"], digits=0),
                _pm(row["confidence"], row["confidence_sem"], digits=2),
                _text(row["n_units"]),
                _interval(
                    row["unit_accuracy"], row["unit_accuracy_ci_low"], row["unit_accuracy_ci_high"]
                ),
                _pm(row["catch_accuracy"], row["catch_accuracy_ci"], scale=100, digits=1),
            ]
        )
    parts.append(_align(headers, lines))

    if summary.get("catch_n_participants"):
        parts += [
            "",
            "Catch trials, all groups: "
            + _pm(summary.get("catch_accuracy"), summary.get("catch_accuracy_ci"), 100, 1)
            + f" % correct ({summary['catch_n_participants']} participant(s)).",
        ]

    if analysis.by_confidence:
        parts += ["", "Accuracy by confidence (participants who used the level):"]
        conf_lines = [
            [
                *(_text(row.get(column)) for column in by),
                _text(row["confidence"]),
                _text(row["n_participants"]),
                _text(row["n_trials"]),
                _pm(row["accuracy"], row["accuracy_ci"], scale=100, digits=1),
            ]
            for row in analysis.by_confidence
        ]
        conf_headers = [*by, "confidence", "n", "trials", "accuracy %"]
        if "confidence" in by:
            conf_headers.remove("confidence")
            conf_lines = [line[: len(by)] + line[len(by) + 1 :] for line in conf_lines]
        parts.append(_align(conf_headers, conf_lines))

    if analysis.paired_tests:
        strata = [column for column in by if column not in ("condition", "reference_type")]
        parts += ["", "Paired tests, natural vs synthetic (per-participant accuracy):"]
        test_lines = [
            [
                *(_text(row.get(column)) for column in strata),
                _text(row["n_pairs"]),
                _text(row["accuracy_natural"], scale=100, digits=1),
                _text(row["accuracy_synthetic"], scale=100, digits=1),
                _pm(row["difference"], row["difference_ci"], scale=100, digits=1),
                _text(row["t"], digits=3),
                _text(row["df"]),
                _text(row["p_t"], digits=4),
                _text(row["wilcoxon_w"], digits=1),
                _text(row["p_wilcoxon"], digits=4),
            ]
            for row in analysis.paired_tests
        ]
        test_headers = [
            *strata,
            "pairs",
            "natural %",
            "synthetic %",
            "difference %",
            "t",
            "df",
            "p (t)",
            "W",
            "p (Wilcoxon)",
        ]
        parts.append(_align(test_headers, test_lines))
    return "\n".join(parts) + "\n"


def _align(headers: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    widths = [len(header) for header in headers]
    for line in lines:
        widths = [max(width, len(cell)) for width, cell in zip(widths, line, strict=True)]
    rendered = [
        "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
        for cells in [list(headers), ["-" * width for width in widths], *lines]
    ]
    return "\n".join(rendered)


def _text(value: Any, scale: float = 1.0, digits: int | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) or digits is not None:
        return f"{float(value) * scale:.{digits if digits is not None else 3}f}"
    return str(value)


def _pm(mean: Any, half_width: Any, scale: float = 1.0, digits: int = 1) -> str:
    if mean is None:
        return "–"
    text = _text(mean, scale, digits)
    if half_width is None:
        return text
    return f"{text} ± {_text(half_width, scale, digits)}"


def _interval(mean: Any, low: Any, high: Any) -> str:
    if mean is None:
        return "–"
    text = _text(mean, 100, 1)
    if low is None or high is None:
        return text
    return f"{text} [{_text(low, 100, 1)}, {_text(high, 100, 1)}]"


def _csv_cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        # Spreadsheets would run such a cell as a formula; the quote makes it text.
        return "'" + value
    return value


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: None if isinstance(value, float) and math.isnan(value) else value
        for key, value in row.items()
    }
