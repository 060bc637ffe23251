"""Two requests enrolling one new platform id at once: one participant, the other resumes it.

The resume check runs before the experiment's row lock (app.services.participants.enrol), so
the later of two simultaneous enrolments passes it and must be stopped by the unique key.
Real concurrency on PostgreSQL: the second enrolment waits on the lock the first one holds.
"""

from __future__ import annotations

import threading
import time

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text

from app.db import make_sessionmaker
from app.errors import Conflict
from app.models import Experiment, Participant
from app.services.experiments import get_session_by_link
from app.services.participants import enrol


def _wait_until_blocked_on_a_lock(engine: Engine, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    with engine.connect() as connection:
        while time.monotonic() < deadline:
            waiting = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("the second enrolment never waited for the experiment's lock")


def test_simultaneous_enrolments_of_one_id_store_one_participant(
    committed_app: tuple[TestClient, str, Engine],
) -> None:
    _, link, engine = committed_app
    sessions = make_sessionmaker(engine)
    params = {"PROLIFIC_PID": "two-tabs", "STUDY_ID": "s", "SESSION_ID": "x"}
    with sessions() as session:
        before = session.scalar(select(Experiment.enrolled_count))
    outcome: dict[str, object] = {}

    def second_tab() -> None:
        with sessions() as session:
            launched = get_session_by_link(session, link)
            try:
                enrol(session, launched, params)
                session.commit()
                outcome["second"] = "enrolled"
            except Conflict:
                outcome["conflict"] = True
                session.rollback()
                participant, created = enrol(session, launched, params)
                session.commit()
                outcome["second"] = (participant.token, created)

    with sessions() as first:
        launched = get_session_by_link(first, link)
        participant, created = enrol(first, launched, params)
        assert created
        token = participant.token
        tab = threading.Thread(target=second_tab)
        tab.start()
        try:
            _wait_until_blocked_on_a_lock(engine)
        finally:
            first.commit()
            tab.join(timeout=30)
    assert not tab.is_alive()
    # The second request hit the unique key, stored nothing, and resumed the first enrolment.
    assert outcome == {"conflict": True, "second": (token, False)}
    with sessions() as session:
        rows = session.scalar(select(func.count()).where(Participant.platform_id == "two-tabs"))
        assert rows == 1
        assert session.scalar(select(Experiment.enrolled_count)) == before + 1


def test_the_start_route_resumes_an_id_enrolled_already(
    committed_app: tuple[TestClient, str, Engine],
) -> None:
    client, link, engine = committed_app
    data = {"PROLIFIC_PID": "again"}
    first = client.post(f"/s/{link}/start", data=data, follow_redirects=False)
    second = client.post(f"/s/{link}/start", data=data, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    with make_sessionmaker(engine)() as session:
        assert session.scalar(select(func.count()).where(Participant.platform_id == "again")) == 1
