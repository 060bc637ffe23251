"""One call behind `psychvis analyze`: read a file, analyse, render, optionally plot."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from app.analysis.load import AnalysisInputError, read_responses
from app.analysis.report import OUTPUT_FORMATS, render
from app.analysis.stats import DEFAULT_N_BOOT, DEFAULT_SEED, analyze, needed_columns

logger = logging.getLogger(__name__)


def analyze_file(
    path: Path,
    *,
    by: Sequence[str],
    fmt: str = "table",
    plots_dir: Path | None = None,
    include_excluded: bool = False,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = DEFAULT_SEED,
    strict: bool = False,
) -> str:
    """Analyse a `responses.csv` file and return the report text.

    Args:
        path: File in the export format.
        by: Grouping columns.
        fmt: `table`, `json` or `csv` (see `app.analysis.report.render`).
        plots_dir: When given, the figures of `app.analysis.plots.write_plots` go there,
            grouped like the table.
        include_excluded: Keep participants marked excluded.
        n_boot: Bootstrap resamples for the per-unit interval.
        seed: Bootstrap seed.
        strict: Refuse the file for any missing core column or invalid value; otherwise
            invalid values the analysis does not need (and invalid RTs and confidence ratings)
            become missing with one `AnalysisInputWarning`.

    Returns:
        The rendered report.

    Raises:
        AnalysisInputError: Bad file, bad values, unknown grouping column or format, or nothing
            to analyse.
    """
    if fmt not in OUTPUT_FORMATS:
        raise AnalysisInputError(f"unknown format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    if n_boot < 0:
        raise AnalysisInputError("the number of bootstrap resamples cannot be negative")
    by = tuple(by)
    frame = read_responses(path, needed=needed_columns(by), strict=strict)
    analysis = analyze(
        frame, by, include_excluded=include_excluded, n_boot=n_boot, seed=seed, validated=True
    )
    if plots_dir is not None:
        from app.analysis.plots import write_plots

        try:
            write_plots(frame, plots_dir, by=by, include_excluded=include_excluded, validated=True)
        except OSError as exc:
            raise AnalysisInputError(f"cannot write plots to {plots_dir}: {exc}") from exc
    return render(analysis, fmt)
