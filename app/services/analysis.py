"""An experiment's analysis (app.analysis: table, bootstrap intervals, figures) for the console,
computed once per data version and cached, so a reload redoes neither bootstrap nor matplotlib.

The data version changes with every stored or deleted answer and every change of a
participant's exclusion; nothing else the analysis reads ever changes.
"""

from __future__ import annotations

import base64
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.cache import LruCache
from app.export_format import RESPONSE_COLUMNS
from app.models import Experiment, Participant, TrialResponse
from app.services.experiments import cache_key
from app.services.export import iter_response_rows

if TYPE_CHECKING:
    from app.analysis import Analysis

N_BOOT = 2000
"""Bootstrap resamples per interval on the console (`psychvis analyze` uses 10,000)."""

DataVersion = tuple[int, int, int]


@dataclass(frozen=True)
class AnalysisView:
    """What the Analysis page shows.

    plots: (file base name, caption, base64 PNG) per figure.
    warnings: the analysis's input warnings (e.g. columns it could not use).
    error: why there is no analysis (no answers, unknown column), else None.
    """

    analysis: Analysis | None = None
    plots: tuple[tuple[str, str, str], ...] = ()
    warnings: tuple[str, ...] = field(default=())
    error: str | None = None


_VIEWS: LruCache[tuple[object, ...], AnalysisView] = LruCache(maxsize=32)


def data_version(session: Session, experiment: Experiment) -> DataVersion:
    """(answers, highest answer id, sum of excluded participants' answer ids) of the
    experiment's non-test participants: a new answer raises the highest id, a deletion lowers
    the count, an exclusion or its reversal moves the sum (one aggregate query)."""
    count, highest, excluded = session.execute(
        select(
            func.count(),
            func.coalesce(func.max(TrialResponse.id), 0),
            func.coalesce(
                func.sum(case((Participant.excluded.is_(True), TrialResponse.id), else_=0)), 0
            ),
        )
        .select_from(TrialResponse)
        .join(Participant, TrialResponse.participant_id == Participant.id)
        .where(Participant.experiment_id == experiment.id, Participant.test_mode.is_(False))
    ).one()
    return int(count), int(highest), int(excluded)


def analysis_view(
    session: Session,
    experiment: Experiment,
    by: tuple[str, ...],
    *,
    include_excluded: bool = False,
    n_boot: int = N_BOOT,
) -> AnalysisView:
    """The analysis of the experiment's answers grouped by `by`, with its figures; cached
    per (experiment, data version, by, include_excluded, n_boot).

    Args:
        by: Grouping columns (`app.analysis.parse_by`).
        include_excluded: Keep participants marked excluded.
        n_boot: Bootstrap resamples.

    Returns:
        The view; its `error` says why there is none (no answers, an unknown column).
    """
    # The version is read first: rows read afterwards are at least as new, so an entry never
    # holds older data than its key says.
    key = (*cache_key(experiment), data_version(session, experiment), by, include_excluded, n_boot)
    return _VIEWS.get(
        key,
        lambda: _compute(session, experiment, by, include_excluded=include_excluded, n_boot=n_boot),
    )


def _compute(
    session: Session,
    experiment: Experiment,
    by: tuple[str, ...],
    *,
    include_excluded: bool,
    n_boot: int,
) -> AnalysisView:
    import pandas as pd

    from app.analysis import AnalysisInputError, AnalysisInputWarning, analyze
    from app.analysis.plots import draw_plots

    frame = pd.DataFrame(
        list(iter_response_rows(session, experiment)), columns=list(RESPONSE_COLUMNS)
    )
    try:
        if frame.empty:
            raise AnalysisInputError("no answers yet")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AnalysisInputWarning)
            result = analyze(frame, by, include_excluded=include_excluded, n_boot=n_boot)
            plots = draw_plots(frame, by=by, include_excluded=include_excluded)
    except AnalysisInputError as exc:
        return AnalysisView(error=str(exc))
    return AnalysisView(
        analysis=result,
        plots=tuple(
            (plot.name, plot.caption, base64.b64encode(plot.png()).decode("ascii"))
            for plot in plots
        ),
        warnings=tuple(
            str(w.message) for w in caught if issubclass(w.category, AnalysisInputWarning)
        ),
    )
