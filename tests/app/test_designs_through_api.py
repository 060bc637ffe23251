"""Presets through the real server: enrol simulated participants, check the stored schedules,
run a paper-exp1 participant to its repeated trials, and balanced assignment under concurrency."""

from __future__ import annotations

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app import designs
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.migrate import upgrade
from app.models import Participant, ScheduledTrial, StimulusUnit, TrialResponse
from app.services.blobs import BlobStore
from app.services.participants import enrol as enrol_service
from app.services.stimuli import catalog_of, import_stimulus_set
from tests.conftest import create_database, drop_database
from tests.factories import make_experiment, make_launch, write_structural_set

EXPECTED_TRIALS = {"paper-exp1": 186, "paper-exp2": 216, "demo": 13}


def _import(db_session: Session, settings: Settings, tmp_path: Path, preset: str):  # type: ignore[no-untyped-def]
    root = write_structural_set(tmp_path / preset, designs.load_design(preset))
    stimulus_set = import_stimulus_set(
        db_session,
        root,
        BlobStore(settings.stimuli_dir / "blobs"),
        set_id=f"s-{uuid.uuid4().hex[:8]}",
    )
    db_session.commit()
    return stimulus_set


def _enrol(client: TestClient, link: str, pid: str) -> str:
    response = client.post(f"/s/{link}/start", data={"PROLIFIC_PID": pid}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return response.headers["location"].removeprefix("/p/")


@pytest.mark.parametrize("preset", ["paper-exp1", "paper-exp2", "imi", "demo"])
def test_enrolled_schedules_match_the_design(
    preset: str, client: TestClient, db_session: Session, settings: Settings, tmp_path: Path
) -> None:
    stimulus_set = _import(db_session, settings, tmp_path, preset)
    experiment = make_experiment(db_session, stimulus_set, design=preset)
    launched = make_launch(db_session, experiment)
    db_session.commit()
    design = designs.load_design(preset)
    catalog = catalog_of(stimulus_set)
    unit_key = {
        u.id: u.unit_key
        for u in db_session.scalars(
            select(StimulusUnit).where(StimulusUnit.stimulus_set_id == stimulus_set.id)
        )
    }
    # The landing page (with its time estimate) answers for every preset, arms included.
    landing = client.get(f"/s/{launched.link_code}?PROLIFIC_PID=pid-{preset}-0")
    assert landing.status_code == 200, landing.text
    assert f'action="/s/{launched.link_code}/start"' in landing.text
    first_conditions = []
    for n in range(1, 9):
        token = _enrol(client, launched.link_code, f"pid-{preset}-{n}")
        participant = db_session.scalar(select(Participant).where(Participant.token == token))
        assert participant is not None and participant.participant_number == n
        rows = db_session.scalars(
            select(ScheduledTrial)
            .where(ScheduledTrial.participant_id == participant.id)
            .order_by(ScheduledTrial.trial_index)
        ).all()
        # The stored schedule is the design's schedule for this participant, unit by unit.
        expected = designs.generate_schedule(design, catalog, n, arm=participant.arm)
        assert [r.trial_index for r in rows] == list(range(len(expected.trials)))
        for row, spec in zip(rows, expected.trials, strict=True):
            assert (row.trial_kind, row.condition, row.batch, row.query_order) == (
                spec.trial_kind,
                spec.condition,
                spec.batch,
                spec.query_order,
            )
            assert (
                unit_key[row.stimulus_unit_id] if row.stimulus_unit_id else None
            ) == spec.unit_id
        if preset in EXPECTED_TRIALS:
            assert len([r for r in rows if r.task == "afc2"]) == EXPECTED_TRIALS[preset]
        kinds = Counter(r.trial_kind for r in rows if r.task == "afc2")
        for row in rows:
            if row.trial_kind == "catch" and row.catch_query_indices is not None:
                # Identical-image catch trials: the queries are displayed references.
                shown = {*row.display["max"], *row.display["min"]}
                assert row.display["upper"] in shown or row.display["lower"] in shown
            if row.trial_kind == "repeated":
                assert row.stimulus_unit_id is None  # chosen at run time
            if row.trial_kind in ("practice", "catch") and preset.startswith("paper"):
                assert row.batch in (0, None)  # batch 0 is reserved for practice and catch
        # A participant never sees the same natural query twice in main trials: each (unit,
        # batch) pair appears once, and batch 0 is kept for practice and catch trials.
        pairs = [(r.stimulus_unit_id, r.batch) for r in rows if r.trial_kind == "main"]
        assert len(pairs) == len(set(pairs))
        if preset.startswith("paper"):
            assert all(batch != 0 for _, batch in pairs)
        first_conditions.append(
            next(r.condition for r in rows if r.trial_kind == "main" and r.condition != "none")
        )
        if preset == "paper-exp1":
            assert kinds == {"practice": 15, "main": 135, "catch": 18, "repeated": 18}
            for condition in ("none", "natural", "synthetic"):
                units = [
                    r.stimulus_unit_id
                    for r in rows
                    if r.trial_kind == "main" and r.condition == condition
                ]
                assert len(units) == len(set(units)) == 45
            rated = [(r.trial_index, r.condition) for r in rows if r.task == "rating"]
            assert rated == [(0, "start"), (1, "start"), (2, "start")]
    if preset == "paper-exp1":
        # Odd participants start with synthetic, even ones with natural.
        assert first_conditions == ["synthetic", "natural"] * 4
    if preset == "imi":
        arms = Counter(
            db_session.scalars(
                select(Participant.arm).where(Participant.experiment_session_id == launched.id)
            )
        )
        assert (
            set(arms) == {"natural", "synthetic"} and max(arms.values()) - min(arms.values()) <= 1
        )


def test_paper_exp1_participant_rates_and_gets_repeated_trials_from_own_answers(
    client: TestClient, db_session: Session, settings: Settings, tmp_path: Path
) -> None:
    stimulus_set = _import(db_session, settings, tmp_path, "paper-exp1")
    launched = make_launch(
        db_session, make_experiment(db_session, stimulus_set, design="paper-exp1")
    )
    db_session.commit()
    token = _enrol(client, launched.link_code, "pid-full")
    client.post(f"/p/{token}/consent", data={"decision": "agree"})
    # The start ratings are rating trials on the task page, before the instructions.
    assert 'data-task-type="rating"' in client.get(f"/p/{token}").text
    step = client.get(f"/api/p/{token}/next").json()
    for index in range(3):
        trial = step["trial"]
        assert (step["step"], trial["task"], trial["trial_index"]) == ("trial", "rating", index)
        assert trial["position"] == "start" and len(trial["images"]["synthetic"]) == 9
        assert trial["progress"] == {"index": index, "total": 3}  # "Rating 1 of 3"
        # Neither the instructions nor a 2-AFC answer can skip them.
        assert client.post(f"/p/{token}/instructions").status_code == 409
        afc2 = _body(index, {"task": "afc2", "response": "upper", "confidence": 1})
        assert client.post(f"/api/p/{token}/responses", json=afc2).status_code == 422
        ack = client.post(
            f"/api/p/{token}/responses",
            json=_body(index, {"task": "rating", "value": 10 * index - 50}),
        )
        assert ack.status_code == 200, ack.text
        assert ack.json()["correct"] is None and ack.json()["solution"] is None
        step = ack.json()["next"]
    # Then the instructions page, a page the task page does not show; no 2-AFC answer before it.
    assert step["step"] == "page"
    early = _body(3, {"task": "afc2", "response": "upper", "confidence": 1})
    assert client.post(f"/api/p/{token}/responses", json=early).status_code == 409
    assert "How the task works" in client.get(f"/p/{token}").text
    client.post(f"/p/{token}/instructions")
    participant = db_session.scalar(select(Participant).where(Participant.token == token))
    assert participant is not None
    values = db_session.scalars(
        select(TrialResponse.answer)
        .where(TrialResponse.participant_id == participant.id)
        .order_by(TrialResponse.trial_index)
    ).all()
    assert values == [{"value": -50}, {"value": -40}, {"value": -30}]

    confidence_of: dict[int, int] = {}
    step = client.get(f"/api/p/{token}/next").json()
    # The 2-AFC trials count among themselves: the first is "Trial 1 of 186".
    assert step["trial"]["progress"] == {"index": 0, "total": 186}
    while step["step"] == "trial":
        index = step["trial"]["trial_index"]
        if step["trial"]["task"] == "rating":
            answer: dict[str, object] = {"task": "rating", "value": 0}
        else:
            confidence = 1 + (index * 7) % 3
            confidence_of[index] = confidence
            answer = {"task": "afc2", "response": "upper", "confidence": confidence}
        ack = client.post(f"/api/p/{token}/responses", json=_body(index, answer))
        assert ack.status_code == 200, ack.text
        step = ack.json()["next"]
    assert step["step"] == "done"
    assert client.post(f"/api/p/{token}/complete").json()["outcome"] in (
        "completed",
        "failed_checks",
    )

    rows = db_session.scalars(
        select(ScheduledTrial).where(ScheduledTrial.participant_id == participant.id)
    ).all()
    by_index = {r.trial_index: r for r in rows}
    repeated = [r for r in rows if r.trial_kind == "repeated"]
    assert len(repeated) == 18
    for row in repeated:
        original = by_index[row.repeat_of_trial_index]
        assert original.trial_kind == "main"
        assert (original.stimulus_unit_id, original.condition) == (
            row.stimulus_unit_id,
            row.condition,
        )
    for condition in ("none", "natural", "synthetic"):
        picked = [by_index[r.repeat_of_trial_index] for r in repeated if r.condition == condition]
        assert len(picked) == 6
        mains = sorted(
            confidence_of[r.trial_index]
            for r in rows
            if r.trial_kind == "main" and r.condition == condition
        )
        assert sorted(confidence_of[p.trial_index] for p in picked) == sorted(
            mains[:3] + mains[-3:]
        )


@pytest.fixture()
def committed_engine(postgres_server_url: str) -> Engine:
    url = create_database(postgres_server_url)
    eng = make_engine(url, pool_size=20)
    upgrade(eng)
    yield eng  # type: ignore[misc]
    eng.dispose()
    drop_database(postgres_server_url, url)


@pytest.mark.postgres
def test_sixty_parallel_enrolments_stay_balanced(committed_engine: Engine, tmp_path: Path) -> None:
    factory = make_sessionmaker(committed_engine)
    root = write_structural_set(tmp_path / "imi", designs.load_design("imi"))
    with factory() as session:
        stimulus_set = import_stimulus_set(session, root, BlobStore(tmp_path / "blobs"))
        launched = make_launch(session, make_experiment(session, stimulus_set, design="imi"))
        session.commit()
        launched_id = launched.id

    def one(n: int) -> str | None:
        with factory() as session:
            from app.models import ExperimentSession

            launch = session.get(ExperimentSession, launched_id)
            participant, _ = enrol_service(session, launch, {"PROLIFIC_PID": f"parallel-{n}"})
            session.commit()
            return participant.arm

    with ThreadPoolExecutor(max_workers=16) as pool:
        arms = list(pool.map(one, range(60)))
    counts = Counter(arms)
    assert sum(counts.values()) == 60
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    with factory() as session:
        numbers = sorted(session.scalars(select(Participant.participant_number)))
    assert numbers == list(range(1, 61))


def _body(index: int, answer: dict[str, object]) -> dict[str, object]:
    return {
        "response_uuid": str(uuid.uuid4()),
        "trial_index": index,
        "answer": answer,
        "rt_ms": 500.0,
    }


def _answer_current(
    client: TestClient, db_session: Session, token: str, participant_id: int, correct: bool
) -> dict:  # type: ignore[type-arg]
    step = client.get(f"/api/p/{token}/next").json()
    index = step["trial"]["trial_index"]
    row = db_session.scalar(
        select(ScheduledTrial).where(
            ScheduledTrial.participant_id == participant_id, ScheduledTrial.trial_index == index
        )
    )
    assert row is not None
    right = "upper" if row.query_order == "max_upper" else "lower"
    wrong = "lower" if right == "upper" else "upper"
    body = {
        "response_uuid": str(uuid.uuid4()),
        "trial_index": index,
        "response": right if correct else wrong,
        "confidence": 2,
        "rt_ms": 900.0,
    }
    ack = client.post(f"/api/p/{token}/responses", json=body)
    assert ack.status_code == 200, ack.text
    return {"index": index, "block": row.block_index, **ack.json()}


def test_imi_practice_repeats_until_all_correct_then_skips_spare_attempts(
    client: TestClient, db_session: Session, settings: Settings, tmp_path: Path
) -> None:
    stimulus_set = _import(db_session, settings, tmp_path, "imi")
    launched = make_launch(db_session, make_experiment(db_session, stimulus_set, design="imi"))
    db_session.commit()
    token = _enrol(client, launched.link_code, "imi-worker")
    client.post(f"/p/{token}/consent", data={"decision": "agree"})
    client.post(f"/p/{token}/instructions")
    participant = db_session.scalar(select(Participant).where(Participant.token == token))
    assert participant is not None
    practice = participant.blocks[0]
    assert practice["repeat_until_correct"] and practice["n_trials"] == 5
    # Attempt 1: one mistake -> attempt 2 follows.
    results = [
        _answer_current(client, db_session, token, participant.id, correct=i != 2) for i in range(5)
    ]
    assert results[-1]["block_end"] == {"block_index": 0, "n_correct": 4, "n_trials": 5}
    # Attempt 2: all correct -> the remaining reserved attempts are skipped, main trials next.
    results = [
        _answer_current(client, db_session, token, participant.id, correct=True) for _ in range(5)
    ]
    assert {r["block"] for r in results} == {1}
    nxt = results[-1]["next"]["trial"]
    assert participant.blocks[nxt["block"]["block_index"]]["kind"] == "main"
    skipped = db_session.scalars(
        select(ScheduledTrial.block_index).where(
            ScheduledTrial.participant_id == participant.id, ScheduledTrial.skipped.is_(True)
        )
    ).all()
    assert set(skipped) == {2, 3, 4}
    # Exclusions are evaluated live at block ends: this scripted participant skipped through
    # the instructions in well under IMI's 15 s, and nothing else is wrong yet.
    db_session.refresh(participant)
    assert participant.excluded is True
    assert len(participant.exclusion_reasons) == 1
    assert participant.exclusion_reasons[0].startswith("instruction time")


def test_timed_out_and_test_mode_participants_free_their_arm(
    db_session: Session, settings: Settings, tmp_path: Path
) -> None:
    from datetime import timedelta

    from app.db import utc_now

    stimulus_set = _import(db_session, settings, tmp_path, "imi")
    launched = make_launch(db_session, make_experiment(db_session, stimulus_set, design="imi"))
    people = [
        enrol_service(db_session, launched, {"PROLIFIC_PID": f"w{n}"}, inactive_after_s=1800)[0]
        for n in range(4)
    ]
    arms = Counter(p.arm for p in people)
    assert arms == {"natural": 2, "synthetic": 2}
    gone = [p for p in people if p.arm == "natural"]
    for person in gone:  # timed out: silent for longer than the inactivity limit
        person.last_seen_at = utc_now() - timedelta(hours=2)
    db_session.flush()
    tester, _ = enrol_service(
        db_session, launched, {"PROLIFIC_PID": "t"}, test_mode=True, inactive_after_s=1800
    )
    later = [
        enrol_service(db_session, launched, {"PROLIFIC_PID": f"x{n}"}, inactive_after_s=1800)[0]
        for n in range(2)
    ]
    # natural holds nobody now (the test-mode participant does not count either), synthetic 2;
    # counting the silent ones would make it a tie and send one of the two to synthetic.
    assert tester.test_mode
    assert [p.arm for p in later] == ["natural", "natural"]
