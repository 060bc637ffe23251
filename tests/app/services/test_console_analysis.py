"""The console's analysis is computed once per data version: a reload reuses it, and a new
answer, a deleted participant or a changed exclusion computes it afresh. A session bound to a
connection (a transaction a background worker could not see) is computed in the caller.
The background computation itself: tests/app/routes/test_dashboard_analysis.py."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.models import StimulusSet
from app.services.analysis import analysis_view, data_version
from app.services.participants import enrol
from tests.factories import answer_main_trials, make_experiment, make_launch

N_BOOT = 20


def test_analysis_is_reused_until_the_data_change(
    db_session: Session, demo_set: StimulusSet
) -> None:
    experiment = make_experiment(db_session, demo_set)
    launched = make_launch(db_session, experiment)
    first, _ = enrol(db_session, launched, {"PROLIFIC_PID": "a"})
    second, _ = enrol(db_session, launched, {"PROLIFIC_PID": "b"})
    tester, _ = enrol(db_session, launched, {}, test_mode=True)
    by = ("condition",)

    empty = analysis_view(db_session, experiment, by, n_boot=N_BOOT).view
    assert empty is not None and empty.error == "no answers yet" and empty.analysis is None

    answer_main_trials(db_session, first, 2)
    answer_main_trials(db_session, second, 2)
    shown = analysis_view(db_session, experiment, by, n_boot=N_BOOT)
    assert shown.current and not shown.updating and shown.answers == shown.answers_now == 4
    view = shown.view
    assert view is not None and view.error is None and view.analysis is not None and view.plots
    assert analysis_view(db_session, experiment, by, n_boot=N_BOOT).view is view  # a reload
    assert analysis_view(db_session, experiment, (), n_boot=N_BOOT).view is not view

    # Test-mode answers are not analysed, so they leave the version alone.
    version = data_version(db_session, experiment)
    answer_main_trials(db_session, tester, 1)
    assert data_version(db_session, experiment) == version

    second.excluded = True
    db_session.flush()
    excluded = analysis_view(db_session, experiment, by, n_boot=N_BOOT).view
    assert excluded is not view and excluded is not None and excluded.analysis is not None
    assert excluded.analysis.summary["n_excluded_participants"] == 1

    answer_main_trials(db_session, first, 1, offset=2)
    assert data_version(db_session, experiment)[0] == version[0] + 1
    # Asked for in the background, but this session's transaction is invisible to any other
    # session: computed here, at once.
    latest = analysis_view(db_session, experiment, by, n_boot=N_BOOT, background=True)
    assert latest.current and not latest.updating and latest.answers == 5
    assert latest.view is not excluded and latest.view is not None

    before_delete = data_version(db_session, experiment)
    db_session.delete(second)
    db_session.flush()
    assert data_version(db_session, experiment) != before_delete
