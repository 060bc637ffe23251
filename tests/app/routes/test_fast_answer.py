"""The one-statement answer path (PostgreSQL) stores and acknowledges exactly what the general
ORM path would, and leaves every other case to it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import app.services.answers as answer_service
from app.models import Participant, StimulusSet, TrialResponse
from app.schemas import ResponseAck
from app.services import trials as trial_service
from app.services.fast_answer import FastAnswer
from tests.app.routes.test_participant_flow import answer, enrol, start_task
from tests.factories import make_experiment, make_launch


@pytest.fixture()
def fast_outcomes(
    db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[int, FastAnswer]]:
    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("the one-statement path is PostgreSQL's")
    outcomes: list[tuple[int, FastAnswer]] = []
    real = answer_service.answer_in_one_statement

    def spy(session: Session, token: str, submit: Any, **kwargs: Any) -> FastAnswer:
        result = real(session, token, submit, **kwargs)
        outcomes.append((submit.trial_index, result))
        return result

    monkeypatch.setattr(answer_service, "answer_in_one_statement", spy)
    return outcomes


def _on_task_page(client: TestClient, db_session: Session, demo_set: StimulusSet, pid: str) -> str:
    """A participant of a new demo experiment, consented and past the instructions."""
    launched = make_launch(db_session, make_experiment(db_session, demo_set))
    db_session.commit()
    token = enrol(client, launched.link_code, {"PROLIFIC_PID": pid})
    start_task(client, token)
    return token


def test_one_statement_acks_equal_the_general_paths_next_step(
    client: TestClient,
    db_session: Session,
    demo_set: StimulusSet,
    fast_outcomes: list[tuple[int, FastAnswer]],
) -> None:
    token = _on_task_page(client, db_session, demo_set, "fast-path")
    participant = db_session.scalar(select(Participant).where(Participant.token == token))
    assert participant is not None
    step = client.get(f"/api/p/{token}/next").json()
    while step["step"] == "trial":
        body = answer(step["trial"]["trial_index"])
        response = client.post(f"/api/p/{token}/responses", json=body)
        assert response.status_code == 200, response.text
        ack = response.json()
        ResponseAck.model_validate(ack)
        db_session.expire_all()
        expected = trial_service.next_step(db_session, participant, ahead=3)
        assert ack["next"] == json.loads(json.dumps(expected))
        stored = db_session.scalar(
            select(TrialResponse).where(TrialResponse.response_uuid == body["response_uuid"])
        )
        assert stored is not None and stored.trial_index == body["trial_index"]
        assert stored.rt_ms == body["rt_ms"] and stored.answer["confidence"] == body["confidence"]
        assert ack["correct"] == stored.correct and ack["duplicate"] is False
        step = ack["next"]
    n_trials = participant.n_trials
    handled = [i for i, outcome in fast_outcomes if outcome.ack is not None]
    left = [i for i, outcome in fast_outcomes if outcome.ack is None]
    assert len(fast_outcomes) == n_trials
    # every block's last answer (feedback, exclusions) went to the general path, stored once
    block_ends = {
        sum(b["n_trials"] for b in participant.blocks[: k + 1]) - 1
        for k in range(len(participant.blocks))
    }
    assert set(left) == block_ends
    assert all(outcome.stored for _, outcome in fast_outcomes)
    assert len(handled) == n_trials - len(block_ends) > 0
    rows = db_session.scalars(
        select(TrialResponse.trial_index).where(TrialResponse.participant_id == participant.id)
    ).all()
    assert sorted(rows) == list(range(n_trials))
    assert participant.last_seen_at is not None


def test_retries_and_answers_out_of_order_go_to_the_general_path(
    client: TestClient,
    db_session: Session,
    demo_set: StimulusSet,
    fast_outcomes: list[tuple[int, FastAnswer]],
) -> None:
    token = _on_task_page(client, db_session, demo_set, "fast-path-retry")
    first = answer(0)
    ack = client.post(f"/api/p/{token}/responses", json=first).json()
    again = client.post(f"/api/p/{token}/responses", json=first)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["next"] == ack["next"]
    skipped_ahead = client.post(f"/api/p/{token}/responses", json=answer(5))
    assert skipped_ahead.status_code == 409
    assert [(i, o.stored) for i, o in fast_outcomes] == [(0, True), (0, False), (5, False)]
    count = db_session.scalars(
        select(TrialResponse.id).join(Participant).where(Participant.token == token)
    ).all()
    assert len(count) == 1


def _whole_session_dropping_connections(
    client: TestClient, engine: Engine, link: str, pid: str
) -> tuple[str, list[dict[str, Any]]]:
    """Answer every trial of a new participant while the database drops every connection twice
    (a restart, a failover); every acknowledged answer is stored exactly once, in order.

    Returns the token and the acknowledgements; the session is completed at the end.
    """
    token = enrol(client, link, {"PROLIFIC_PID": pid})
    start_task(client, token)
    step = client.get(f"/api/p/{token}/next").json()
    acked: list[str] = []
    acks: list[dict[str, Any]] = []
    while step["step"] == "trial":
        if len(acked) in (2, 5):
            # Pooled connections are now dead; the next answer must still be stored once.
            with engine.connect() as conn:
                conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
        body = answer(step["trial"]["trial_index"])
        response = client.post(f"/api/p/{token}/responses", json=body)
        assert response.status_code == 200, response.text
        ack = response.json()
        ResponseAck.model_validate(ack)
        assert ack["duplicate"] is False
        acked.append(body["response_uuid"])
        acks.append(ack)
        step = ack["next"]
    with engine.connect() as conn:
        stored = conn.exec_driver_sql(
            "SELECT r.response_uuid FROM trial_response r JOIN participant p "
            "ON p.id = r.participant_id WHERE p.token = %(t)s ORDER BY r.trial_index",
            {"t": token},
        ).scalars()
        assert list(stored) == acked
    finish = client.post(f"/api/p/{token}/complete")
    assert finish.status_code == 200 and finish.json()["outcome"] in ("completed", "pending")
    return token, acks


def test_production_wiring_keeps_the_rules_for_retries_bad_input_and_beacons(
    committed_app: tuple[TestClient, str, Engine],
) -> None:
    client, link, engine = committed_app
    token = enrol(client, link, {"PROLIFIC_PID": "wired-rules"})
    start_task(client, token)
    url = f"/api/p/{token}/responses"
    first = answer(0)
    ack = client.post(url, json=first).json()
    again = client.post(url, json=first)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["next"] == ack["next"]
    assert client.post(url, json=answer(5)).status_code == 409
    assert client.post(url, content=b"{not json", headers=JSON).status_code == 422
    wrong_type = client.post(url, content=json.dumps(answer(1)), headers=XML)
    assert wrong_type.status_code == 415
    assert client.post("/api/p/nobody/responses", json=answer(1)).status_code == 404
    beacon = answer(1)
    sent = client.post(url, content=json.dumps(beacon), headers=TEXT)
    assert sent.status_code == 200 and sent.json()["trial_index"] == 1
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT r.trial_index, r.via_beacon FROM trial_response r JOIN participant p "
            "ON p.id = r.participant_id WHERE p.token = %(t)s ORDER BY r.trial_index",
            {"t": token},
        ).all()
    assert [tuple(r) for r in rows] == [(0, False), (1, True)]


def test_the_route_stores_in_one_autocommit_statement_and_survives_dropped_connections(
    committed_app: tuple[TestClient, str, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, link, engine = committed_app
    outcomes: list[FastAnswer] = []
    real = answer_service.answer_in_one_statement

    def spy(*args: Any, **kwargs: Any) -> FastAnswer:
        assert kwargs["autocommit_engine"] is not None
        result = real(*args, **kwargs)
        outcomes.append(result)
        return result

    monkeypatch.setattr(answer_service, "answer_in_one_statement", spy)
    _, acks = _whole_session_dropping_connections(client, engine, link, "fast-autocommit")
    assert sum(1 for o in outcomes if o.ack is not None) > len(acks) // 2


JSON = {"content-type": "application/json"}
XML = {"content-type": "application/xml"}
TEXT = {"content-type": "text/plain;charset=UTF-8"}
