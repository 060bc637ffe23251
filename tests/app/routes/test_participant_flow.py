"""A scripted participant through the pages and the JSON API: enrol, consent, reload, duplicate
and out-of-order answers, completion; then the rows in the database."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Participant, ScheduledTrial, StimulusSet, TrialResponse
from tests.factories import make_experiment, make_launch

PROLIFIC = {"PROLIFIC_PID": "5f0c0ffee", "STUDY_ID": "study1", "SESSION_ID": "sess1"}


def answer(
    trial_index: int, response: str = "upper", confidence: int = 2, **extra: Any
) -> dict[str, Any]:
    return {
        "response_uuid": str(uuid.uuid4()),
        "trial_index": trial_index,
        "response": response,
        "confidence": confidence,
        "rt_ms": 812.5,
        "onset_ms": 1000.0,
        "answer_ms": 1812.5,
        "frame_interval_mean_ms": 16.7,
        "frame_interval_max_ms": 18.0,
        "viewport_w_px": 1280,
        "viewport_h_px": 800,
        "device_pixel_ratio": 2.0,
        "focus_lost": False,
        "fullscreen_exited": False,
        "input": "mouse",
        **extra,
    }


def enrol(client: TestClient, link: str, params: dict[str, str]) -> str:
    response = client.post(f"/s/{link}/start", data=params, follow_redirects=False)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("/p/")
    return location.removeprefix("/p/")


def start_task(client: TestClient, token: str) -> dict[str, Any]:
    """Consent and instructions; returns the task page's #trial-config."""
    assert "I agree" in client.get(f"/p/{token}").text
    assert (
        client.post(
            f"/p/{token}/consent", data={"decision": "agree"}, follow_redirects=False
        ).status_code
        == 303
    )
    assert "How the task works" in client.get(f"/p/{token}").text
    assert client.post(f"/p/{token}/instructions", follow_redirects=False).status_code == 303
    page = client.get(f"/p/{token}")
    assert page.headers["cache-control"] == "no-store"
    return task_config(page.text)


def give_start_ratings(client: TestClient, token: str, value: int = 0) -> str:
    """After consent: answer the start ratings (rating trials on the task page) if the design
    has them; returns the page that follows (the instructions)."""
    page = client.get(f"/p/{token}").text
    while 'data-task-type="rating"' in page and "How the task works" not in page:
        step = task_config(page)["step"]
        while step["step"] == "trial":
            assert step["trial"]["task"] == "rating"
            body = {
                "response_uuid": str(uuid.uuid4()),
                "trial_index": step["trial"]["trial_index"],
                "answer": {"task": "rating", "value": value},
                "rt_ms": 2000.0,
            }
            ack = client.post(f"/api/p/{token}/responses", json=body)
            assert ack.status_code == 200, ack.text
            step = ack.json()["next"]
        assert step["step"] == "page"
        page = client.get(f"/p/{token}").text
    return page


def task_config(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="trial-config">(.*?)</script>', page)
    assert found is not None, "not the task page"
    config: dict[str, Any] = json.loads(found.group(1))
    return config


def test_landing_page_enrols_nobody(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    launched = make_launch(db_session, make_experiment(db_session, demo_set))
    db_session.commit()
    page = client.get(f"/s/{launched.link_code}", params=PROLIFIC)
    assert page.status_code == 200
    assert 'name="PROLIFIC_PID" value="5f0c0ffee"' in page.text
    assert (
        db_session.scalar(
            select(func.count())
            .select_from(Participant)
            .where(Participant.experiment_session_id == launched.id)
        )
        == 0
    )
    preview = client.get(
        f"/s/{launched.link_code}",
        params={"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "workerId": "w"},
    )
    assert "data-start" not in preview.text
    assert client.get("/s/no-such-link").status_code == 404


def test_scripted_participant_runs_the_whole_session(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    launched = make_launch(db_session, make_experiment(db_session, demo_set))
    db_session.commit()
    token = enrol(client, launched.link_code, PROLIFIC)
    # Answering before consent and instructions is refused and stores nothing.
    early = client.post(f"/api/p/{token}/responses", json=answer(0))
    assert early.status_code == 409
    config = start_task(client, token)

    first = client.get(f"/api/p/{token}/next").json()
    assert first["step"] == "trial" and first["trial"]["trial_index"] == 0
    # The task page carries the same step, so the script need not ask for it.
    assert config["step"] == first
    n_trials = first["n_trials"]
    assert n_trials >= 5
    trial = first["trial"]
    assert set(trial["queries"]) == {"upper", "lower"}
    for url in [*trial["references"]["max"], trial["queries"]["upper"]]:
        assert re.fullmatch(r"/img/[0-9a-f]{64}\.webp", url)
    assert "max" not in trial["queries"]["upper"]
    # The page's head hints the first trial's images, so the browser fetches them at once.
    hinted = re.findall(
        r'<link rel="preload" as="image" href="([^"]+)">', client.get(f"/p/{token}").text
    )
    shown = [*trial["references"]["max"], *trial["references"]["min"], *trial["queries"].values()]
    assert sorted(hinted) == sorted(set(shown))

    stored: dict[int, dict[str, Any]] = {}
    index = 0
    while index < n_trials:
        if index == 3:
            # Reload mid-way: the server resumes at the first unanswered trial.
            again = client.get(f"/api/p/{token}/next").json()
            assert again["trial"]["trial_index"] == 3
            assert task_config(client.get(f"/p/{token}").text)["step"] == again
            # Re-enrolling with the same Prolific id resumes the same participant.
            assert enrol(client, launched.link_code, PROLIFIC) == token
        body = answer(index, response="upper" if index % 2 else "lower", confidence=1 + index % 3)
        ack = client.post(f"/api/p/{token}/responses", json=body)
        assert ack.status_code == 200, ack.text
        data = ack.json()
        assert data["trial_index"] == index and data["duplicate"] is False
        assert data["correct"] == (data["solution"]["response"] == body["response"])
        stored[index] = {"ack": data, "body": body}
        if index == 1:
            # The same answer again (a retry): acknowledged, not stored twice.
            retry = client.post(f"/api/p/{token}/responses", json=body)
            assert retry.status_code == 200 and retry.json()["duplicate"] is True
            assert retry.json()["correct"] == data["correct"]
            # Another answer to an answered trial, or one from the future: 409.
            assert client.post(f"/api/p/{token}/responses", json=answer(1)).status_code == 409
            assert client.post(f"/api/p/{token}/responses", json=answer(5)).status_code == 409
            assert client.post(f"/api/p/{token}/complete").status_code == 409
        index += 1

    assert data["next"]["step"] == "done"
    completion = client.post(f"/api/p/{token}/complete").json()
    assert completion["completion_code"] == "C0DE1234"
    assert completion["redirect_url"] == "https://app.prolific.com/submissions/complete?cc=C0DE1234"
    done = client.get(f"/p/{token}").text
    assert "C0DE1234" in done
    assert client.post(f"/api/p/{token}/responses", json=answer(n_trials - 1)).status_code == 409

    participant = db_session.scalar(select(Participant).where(Participant.token == token))
    assert participant is not None and participant.status == "completed"
    assert participant.platform_id == "5f0c0ffee"
    rows = db_session.scalars(
        select(TrialResponse)
        .where(TrialResponse.participant_id == participant.id)
        .order_by(TrialResponse.trial_index)
    ).all()
    assert [r.trial_index for r in rows] == list(range(n_trials))
    for row in rows:
        sent = stored[row.trial_index]["body"]
        assert row.response_uuid == sent["response_uuid"]
        assert row.answer == {"response": sent["response"], "confidence": sent["confidence"]}
        assert row.correct == stored[row.trial_index]["ack"]["correct"]
        assert row.rt_ms == 812.5 and row.device_pixel_ratio == 2.0 and row.viewport_w_px == 1280
        assert row.received_at is not None


def test_an_answer_carries_its_trial_types_fields(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    """`answer` holds the type's fields and its name; the flat 2-AFC form (answers queued by an
    older page) is stored the same way; an answer for another trial type is refused."""
    launched = make_launch(db_session, make_experiment(db_session, demo_set))
    db_session.commit()
    token = enrol(client, launched.link_code, {"PROLIFIC_PID": "typed"})
    start_task(client, token)
    url = f"/api/p/{token}/responses"
    flat = answer(0, response="lower", confidence=3)
    nested = {k: v for k, v in flat.items() if k not in ("response", "confidence")}
    nested["answer"] = {"task": "afc2", "response": "lower", "confidence": 3}
    for bad, message in (
        ({**nested, "answer": {"task": "rating", "value": 3}}, "answer"),
        (
            {**nested, "answer": {"task": "afc2", "response": "lower", "confidence": 4}},
            "answer.afc2.confidence",
        ),
        ({**nested, "response": "lower"}, "response"),  # both forms at once
    ):
        refused = client.post(url, json=bad)
        assert refused.status_code == 422, refused.text
        assert message in refused.json()["detail"]
    participant = db_session.scalars(select(Participant).where(Participant.token == token)).one()
    # A trial of another type: the afc2 answer is refused with a clear message, nothing stored.
    trial = db_session.scalars(
        select(ScheduledTrial).where(
            ScheduledTrial.participant_id == participant.id, ScheduledTrial.trial_index == 0
        )
    ).one()
    trial.task = "rating"
    db_session.commit()
    refused = client.post(url, json=nested)
    assert refused.status_code == 422 and "rating trial" in refused.json()["detail"]
    trial.task = "afc2"
    db_session.commit()

    ack = client.post(url, json=nested).json()
    assert ack["solution"] == trial.solution and ack["correct"] == (
        trial.solution == {"response": "lower"}
    )
    assert client.post(url, json=answer(1, response="upper", confidence=1)).status_code == 200
    db_session.expire_all()
    rows = db_session.scalars(
        select(TrialResponse)
        .where(TrialResponse.participant_id == participant.id)
        .order_by(TrialResponse.trial_index)
    ).all()
    assert [(r.answer, r.correct is not None) for r in rows] == [
        ({"response": "lower", "confidence": 3}, True),
        ({"response": "upper", "confidence": 1}, True),
    ]


def test_declining_consent_ends_with_its_own_outcome(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    launched = make_launch(db_session, make_experiment(db_session, demo_set))
    db_session.commit()
    token = enrol(client, launched.link_code, {"PROLIFIC_PID": "decliner"})
    client.post(f"/p/{token}/consent", data={"decision": "decline"})
    page = client.get(f"/p/{token}").text
    assert "chose not to take part" in page
    assert client.post(f"/api/p/{token}/responses", json=answer(0)).status_code == 409
    assert client.post(f"/api/p/{token}/complete").json()["outcome"] == "no_consent"


def test_bad_input_gets_clear_4xx_and_changes_nothing(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    launched = make_launch(db_session, make_experiment(db_session, demo_set))
    db_session.commit()
    token = enrol(client, launched.link_code, {"PROLIFIC_PID": "hostile"})
    start_task(client, token)
    url = f"/api/p/{token}/responses"
    cases = [
        (client.post(url, content=b"{not json", headers={"content-type": "application/json"}), 422),
        (client.post(url, json={**answer(0), "confidence": 4}), 422),
        (client.post(url, json={**answer(0), "response": "left"}), 422),
        (client.post(url, json={**answer(0), "rt_ms": -5}), 422),
        (client.post(url, json={**answer(0), "rt_ms": 1e12}), 422),
        (client.post(url, json={**answer(0), "response_uuid": "not-a-uuid"}), 422),
        (client.post(url, json={**answer(0), "extra": 1}), 422),
        (client.post(url, json=answer(0), headers={"content-type": "application/xml"}), 415),
        (
            client.post(url, content=b"x" * 100_000, headers={"content-type": "application/json"}),
            413,
        ),
        (client.post("/api/p/forged-token/responses", json=answer(0)), 404),
        (client.get("/api/p/" + "x" * 500 + "/next"), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, (status, response.text)
        assert response.json()["code"]
    assert (
        db_session.scalar(
            select(func.count())
            .select_from(TrialResponse)
            .join(Participant)
            .where(Participant.token == token)
        )
        == 0
    )

    # A paused session refuses answers (410) and new enrolments, and stores nothing.
    launched.status = "paused"
    db_session.commit()
    assert client.post(url, json=answer(0)).status_code == 410
    assert (
        client.post(f"/s/{launched.link_code}/start", data={"PROLIFIC_PID": "new"}).status_code
        == 410
    )


def test_beacon_text_plain_answer_is_stored_once(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    import json

    launched = make_launch(db_session, make_experiment(db_session, demo_set))
    db_session.commit()
    token = enrol(client, launched.link_code, {"PROLIFIC_PID": "beacon"})
    start_task(client, token)
    body = answer(0)
    beacon = client.post(
        f"/api/p/{token}/responses",
        content=json.dumps(body),
        headers={"content-type": "text/plain;charset=UTF-8"},
    )
    assert beacon.status_code == 200
    fetch = client.post(f"/api/p/{token}/responses", json=body)
    assert fetch.json()["duplicate"] is True
    row = db_session.scalar(
        select(TrialResponse).where(TrialResponse.response_uuid == body["response_uuid"])
    )
    assert row is not None and row.via_beacon is True


def _finish(client: TestClient, token: str) -> None:
    start_task(client, token)
    step = client.get(f"/api/p/{token}/next").json()
    while step["step"] == "trial":
        ack = client.post(f"/api/p/{token}/responses", json=answer(step["trial"]["trial_index"]))
        assert ack.status_code == 200, ack.text
        step = ack.json()["next"]


def test_mturk_worker_submits_to_the_hosts_own_external_submit(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    launched = make_launch(
        db_session, make_experiment(db_session, demo_set), platform="mturk", mturk_sandbox=True
    )
    db_session.commit()
    params = {
        "workerId": "W1",
        "assignmentId": "A1",
        "hitId": "H1",
        "turkSubmitTo": "https://workersandbox.mturk.com",
    }
    token = enrol(client, launched.link_code, params)
    _finish(client, token)
    info = client.post(f"/api/p/{token}/complete").json()
    assert info["mturk"] == {
        "submit_url": "https://workersandbox.mturk.com/mturk/externalSubmit",
        "assignmentId": "A1",
    }
    assert info["redirect_url"] is None
    page = client.get(f"/p/{token}").text
    assert 'action="https://workersandbox.mturk.com/mturk/externalSubmit"' in page
    assert 'name="assignmentId" value="A1"' in page
    # A forged turkSubmitTo never becomes a redirect target.
    evil = enrol(
        client,
        launched.link_code,
        {**params, "workerId": "W2", "turkSubmitTo": "https://evil.example"},
    )
    _finish(client, evil)
    assert (
        client.post(f"/api/p/{evil}/complete")
        .json()["mturk"]["submit_url"]
        .startswith("https://workersandbox.mturk.com/")
    )
    # The same worker cannot take a second slot: the link resumes their enrolment.
    assert enrol(client, launched.link_code, {**params, "assignmentId": "A9"}) == token


def test_instruction_time_runs_from_the_page_and_is_zero_when_it_was_never_loaded(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    """The instructions are timed from the first time their page is served; a client that
    finishes them without loading the page gets 0 s (which an instruction-time criterion
    judges), not an unknown time."""
    launched = make_launch(db_session, make_experiment(db_session, demo_set))
    db_session.commit()
    for pid, load_page in (("reader", True), ("script", False)):
        token = enrol(client, launched.link_code, {"PROLIFIC_PID": pid})
        # No redirects followed: only the reader loads the instructions page.
        client.post(f"/p/{token}/consent", data={"decision": "agree"}, follow_redirects=False)
        if load_page:
            assert "How the task works" in client.get(f"/p/{token}").text
        client.post(f"/p/{token}/instructions", follow_redirects=False)
        participant = db_session.scalars(
            select(Participant).where(Participant.token == token)
        ).one()
        db_session.refresh(participant)
        shown, done = participant.instructions_shown_at, participant.instructions_done_at
        assert shown is not None and done is not None
        assert (shown < done) if load_page else (shown == done), (pid, shown, done)
