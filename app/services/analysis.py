"""An experiment's analysis (app.analysis: table, bootstrap intervals, figures) for the console,
cached per experiment, data version and grouping, and computed outside the request.

The data version changes with every stored or deleted answer and every change of a
participant's exclusion; nothing else the analysis reads ever changes. When the cached view is
of an older version, a background worker computes the current one while the page shows the
older one (docs/architecture_console.md, "The analysis cache").
"""

from __future__ import annotations

import base64
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import Session

from app.cache import Computed, StaleWhileRevalidate
from app.export_format import RESPONSE_COLUMNS
from app.models import Experiment, Participant, TrialResponse
from app.services.experiments import cache_key
from app.services.export import iter_response_rows

if TYPE_CHECKING:
    import pandas as pd

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


@dataclass(frozen=True)
class ShownAnalysis:
    """The view a page shows and how it relates to the current data.

    view: the newest view computed (None: none yet).
    answers: the answers `view` covers; `answers_now`: the answers there are now.
    current: `view` is of the current data version.
    updating: a newer view is being computed: the page should reload itself shortly.
    failure: why the newest computation failed (the older `view`, if any, is still shown).
    wanted_since_ms: the time (Unix ms) whose data the page waits for, for its reload URL.
    """

    view: AnalysisView | None
    answers: int = 0
    answers_now: int = 0
    current: bool = True
    updating: bool = False
    failure: str | None = None
    wanted_since_ms: int = 0


_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="analysis")
"""One analysis at a time per process: a computation takes a core for a second or two, and
participants' answers share the machine."""

RETRY_AFTER_S = 30
"""After a failed computation, how long pages show the failure before a reload tries again."""

_VIEWS: StaleWhileRevalidate[tuple[object, ...], AnalysisView] = StaleWhileRevalidate(
    maxsize=32, executor=_WORKER, retry_after_s=RETRY_AFTER_S
)
"""Per (experiment, by, include_excluded, n_boot): the newest view and its data version."""


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
    background: bool = False,
    wanted_since_ms: int | None = None,
) -> ShownAnalysis:
    """The analysis of the experiment's answers grouped by `by`, with its figures; cached
    per (experiment, data version, by, include_excluded, n_boot).

    Args:
        by: Grouping columns (`app.analysis.parse_by`).
        include_excluded: Keep participants marked excluded.
        n_boot: Bootstrap resamples.
        background: When the view of the current data is missing, compute it on the analysis
            worker (its own session on the engine `session` is bound to) and return the newest
            older view at once, or none. False, or a session bound to a connection (a
            transaction other sessions cannot see, as in tests): compute it here.
        wanted_since_ms: With `background`: a view of data read at or after this time (Unix
            ms) will do even if data arrived since (`StaleWhileRevalidate.get`); default now.

    Returns:
        The view (its `error` says why there is no analysis: no answers, an unknown column)
        and whether it is current, being updated, or failed to update.
    """
    # The version is read first: rows read afterwards are at least as new, so a view never
    # holds older data than its version says.
    read_at = _VIEWS.clock()
    version = data_version(session, experiment)
    key = (*cache_key(experiment), by, include_excluded, n_boot)
    engine = session.get_bind()
    if not background or not isinstance(engine, Engine):
        cached = _VIEWS.current(key, version)
        if cached is None:
            frame = _frame(session, experiment)
            view = _analyze(frame, by, include_excluded=include_excluded, n_boot=n_boot)
            cached = Computed(version, view, read_at)
            _VIEWS.put(key, cached)
        return ShownAnalysis(cached.value, answers=version[0], answers_now=version[0])

    experiment_id = experiment.id

    def compute() -> tuple[DataVersion, AnalysisView]:
        return _compute_alone(
            engine, experiment_id, by, include_excluded=include_excluded, n_boot=n_boot
        )

    wanted_since = None if wanted_since_ms is None else wanted_since_ms / 1000
    latest = _VIEWS.get(key, version, compute, wanted_since=wanted_since)
    newest = latest.newest
    return ShownAnalysis(
        None if newest is None else newest.value,
        answers=0 if newest is None else _answers(newest.version),
        answers_now=version[0],
        current=newest is not None and newest.version == version,
        updating=latest.updating,
        failure=latest.failure,
        wanted_since_ms=int(latest.wanted_since * 1000),
    )


def _answers(version: object) -> int:
    """The answer count of a `DataVersion` (the cache stores versions as plain hashables)."""
    assert isinstance(version, tuple)
    return int(version[0])


def _compute_alone(
    engine: Engine,
    experiment_id: int,
    by: tuple[str, ...],
    *,
    include_excluded: bool,
    n_boot: int,
) -> tuple[DataVersion, AnalysisView]:
    """The current version and its view, read through a session of its own (the worker's)."""
    # Read only: a deferred BEGIN takes no write lock on SQLite. The rows are read and the
    # session closed before the CPU-bound part, so no connection is held during it.
    with engine.connect() as connection:
        with Session(bind=connection.execution_options(sqlite_begin="DEFERRED")) as session:
            experiment = session.get(Experiment, experiment_id)
            if experiment is None:
                raise LookupError(f"experiment {experiment_id} no longer exists")
            version = data_version(session, experiment)
            frame = _frame(session, experiment)
    return version, _analyze(frame, by, include_excluded=include_excluded, n_boot=n_boot)


def _frame(session: Session, experiment: Experiment) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        list(iter_response_rows(session, experiment)), columns=list(RESPONSE_COLUMNS)
    )


def _analyze(
    frame: pd.DataFrame,
    by: tuple[str, ...],
    *,
    include_excluded: bool,
    n_boot: int,
) -> AnalysisView:
    from app.analysis import AnalysisInputError, AnalysisInputWarning, analyze
    from app.analysis.plots import draw_plots

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
