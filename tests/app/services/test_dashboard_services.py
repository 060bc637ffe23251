"""Services behind the console: password hashing, login throttling, monitoring buckets,
exports (columns, order, neutralisation, pseudonyms, test mode, streaming 100k rows in
bounded memory) and the JSON export's codebook."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.db import utc_now
from app.errors import InvalidInput, TooManyAttempts
from app.export_format import (
    EVENT_COLUMNS,
    PARTICIPANT_COLUMNS,
    RATING_CODEBOOK,
    RATING_COLUMNS,
)
from app.models import (
    Participant,
    ParticipantEvent,
    ScheduledTrial,
    StimulusSet,
    StimulusUnit,
    TrialResponse,
)
from app.services import auth, export, monitor
from app.services.participants import enrol
from tests.factories import add_end_rating, make_experiment, make_launch, make_user

KEY = b"k" * 40


def test_passwords_are_argon2id_hashed_and_verified() -> None:
    hashed = auth.hash_password("a long passphrase")
    assert hashed.startswith("$argon2id$")
    assert "a long passphrase" not in hashed
    assert auth.verify_password(hashed, "a long passphrase")
    assert not auth.verify_password(hashed, "a long passphrasE")
    assert not auth.verify_password("not a hash", "x")
    assert auth.hash_password("a long passphrase") != hashed  # salted
    with pytest.raises(InvalidInput):
        auth.hash_password("short")


def test_throttling_slows_repeated_failures_per_email_and_address(
    db_session: Session, demo_set: StimulusSet
) -> None:
    make_user(db_session, "a@example.org", password="right password")
    policy = auth.ThrottlePolicy(max_failures=3, window_s=600)
    now = utc_now()
    for _i in range(3):
        assert (
            auth.authenticate(
                db_session, "a@example.org", "wrong", "10.0.0.1", policy=policy, now=now
            )
            is None
        )
    with pytest.raises(TooManyAttempts) as raised:
        auth.authenticate(
            db_session, "a@example.org", "right password", "10.0.0.2", policy=policy, now=now
        )
    assert raised.value.retry_after_s == 2
    # Per address too: another account from the same address waits.
    with pytest.raises(TooManyAttempts):
        auth.authenticate(db_session, "b@example.org", "x", "10.0.0.1", policy=policy, now=now)
    later = now + timedelta(seconds=3)
    user = auth.authenticate(
        db_session, "a@example.org", "right password", "10.0.0.2", policy=policy, now=later
    )
    assert user is not None and user.last_login_at == later
    # Each further failure doubles the wait; after the window everything is forgotten.
    auth.authenticate(db_session, "a@example.org", "wrong", "10.0.0.3", policy=policy, now=later)
    assert auth.throttle_wait_s(db_session, "a@example.org", "10.0.0.9", policy, later) == 4
    far = later + timedelta(seconds=601)
    assert auth.throttle_wait_s(db_session, "a@example.org", "10.0.0.1", policy, far) == 0


def _participant(db_session: Session, demo_set: StimulusSet, pid: str, **kw: Any) -> Participant:
    kw.pop("experiment")
    launched = kw.pop("launched")
    participant, _ = enrol(db_session, launched, {"PROLIFIC_PID": pid}, **kw)
    return participant


def test_monitor_buckets_timed_out_and_leaves_out_test_mode(
    db_session: Session, demo_set: StimulusSet
) -> None:
    experiment = make_experiment(db_session, demo_set)
    launched = make_launch(db_session, experiment)
    fresh = _participant(db_session, demo_set, "a", experiment=experiment, launched=launched)
    stale = _participant(db_session, demo_set, "b", experiment=experiment, launched=launched)
    _participant(
        db_session, demo_set, "c", experiment=experiment, launched=launched, test_mode=True
    )
    fresh.status = "in_progress"
    stale.status = "in_progress"
    stale.last_seen_at = utc_now() - timedelta(hours=2)
    db_session.flush()
    summary = monitor.live_summary(db_session, experiment, inactivity_timeout_s=1800)
    assert summary["counts"]["in_progress"] == 1
    assert summary["counts"]["returned"] == 1
    assert summary["total"] == 2 and summary["test_mode"] == 1
    assert [p["participant"] for p in summary["active"]] == [
        export.participant_label(fresh.participant_number)
    ]


def _answer_main_trials(
    db_session: Session, participant: Participant, correct: list[bool]
) -> list[str]:
    """Store answers to the participant's first main trials; returns their conditions."""
    trials = list(
        db_session.scalars(
            select(ScheduledTrial)
            .where(
                ScheduledTrial.participant_id == participant.id,
                ScheduledTrial.trial_kind == "main",
            )
            .order_by(ScheduledTrial.trial_index)
            .limit(len(correct))
        )
    )
    assert len(trials) == len(correct)
    for trial, ok in zip(trials, correct, strict=True):
        db_session.add(
            TrialResponse(
                participant_id=participant.id,
                scheduled_trial_id=trial.id,
                trial_index=trial.trial_index,
                response_uuid=f"{participant.id:08d}-{trial.trial_index:027d}",
                answer={"response": "upper", "confidence": 2},
                correct=ok,
                rt_ms=700.0,
            )
        )
    db_session.flush()
    return [trial.condition for trial in trials]


def test_monitor_accuracy_counts_included_participants_only(
    db_session: Session, demo_set: StimulusSet
) -> None:
    experiment = make_experiment(db_session, demo_set)
    launched = make_launch(db_session, experiment)
    kept = _participant(db_session, demo_set, "kept", experiment=experiment, launched=launched)
    dropped = _participant(db_session, demo_set, "drop", experiment=experiment, launched=launched)
    tester = _participant(
        db_session, demo_set, "test", experiment=experiment, launched=launched, test_mode=True
    )
    conditions = _answer_main_trials(db_session, kept, [True, True, True, False])
    # The excluded and the test participant answer everything wrong: counted, accuracy drops.
    dropped_conditions = _answer_main_trials(db_session, dropped, [False] * 4)
    _answer_main_trials(db_session, tester, [False] * 4)
    dropped.excluded = True
    dropped.exclusion_reasons = ["catch_accuracy"]
    dropped.status = "completed"
    db_session.flush()

    summary = monitor.live_summary(db_session, experiment, inactivity_timeout_s=1800)
    rows = {row["condition"]: row for row in summary["accuracy"]}
    assert set(rows) == set(conditions) | set(dropped_conditions)
    expected: dict[str, list[bool]] = {}
    for condition, ok in zip(conditions, [True, True, True, False], strict=True):
        expected.setdefault(condition, []).append(ok)
    for condition, row in rows.items():
        answers = expected.get(condition, [])
        assert row["n_trials"] == len(answers)
        assert row["n_correct"] == sum(answers)
        assert row["accuracy"] == (pytest.approx(sum(answers) / len(answers)) if answers else None)
        assert row["n_participants"] == (1 if answers else 0)
        excluded_trials = dropped_conditions.count(condition)
        assert row["excluded_trials"] == excluded_trials
        assert row["excluded_participants"] == (1 if excluded_trials else 0)
    assert sum(row["n_trials"] for row in summary["accuracy"]) == 4
    assert sum(row["n_correct"] for row in summary["accuracy"]) == 3
    assert summary["counts"]["excluded"] == 1 and summary["test_mode"] == 1

    # Only excluded participants answered: the condition shows up, without an accuracy.
    kept.excluded = True
    db_session.flush()
    only_excluded = monitor.accuracy_by_condition(db_session, experiment)
    assert {row["accuracy"] for row in only_excluded} == {None}
    assert sum(row["excluded_trials"] for row in only_excluded) == 8
    assert all(row["n_trials"] == 0 for row in only_excluded)


def test_exports_columns_order_neutralisation_and_test_mode(
    db_session: Session, demo_set: StimulusSet
) -> None:
    experiment = make_experiment(db_session, demo_set)
    launched = make_launch(db_session, experiment)
    p1 = _participant(db_session, demo_set, "-1+1", experiment=experiment, launched=launched)
    p2 = _participant(db_session, demo_set, "@sum", experiment=experiment, launched=launched)
    _participant(
        db_session, demo_set, "tester", experiment=experiment, launched=launched, test_mode=True
    )
    p1.feedback_text = "=cmd|' /C calc'!A0"
    db_session.add_all(
        [
            ParticipantEvent(participant_id=p2.id, kind="resize", data={"w": 800, "h": 600}),
            ParticipantEvent(participant_id=p1.id, kind="focus_lost", trial_index=3),
        ]
    )
    # An intuitiveness rating: an answer to a rating trial (ratings.csv, never responses.csv).
    unit = db_session.scalars(
        select(StimulusUnit).where(StimulusUnit.stimulus_set_id == demo_set.id)
    ).first()
    assert unit is not None
    add_end_rating(db_session, p1, -40, rt_ms=1234.5, unit=unit)
    assert [
        r for r in export.iter_response_rows(db_session, experiment) if r["participant"] == "p00001"
    ] == []

    def table(rows: Any, columns: tuple[str, ...], codebook: Any = None) -> list[dict[str, str]]:
        out = io.StringIO()
        if codebook is None:
            export.write_csv(out, rows, columns, {})
        else:
            export.write_csv(out, rows, columns, codebook)
        parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
        assert out.getvalue().splitlines()[0].split(",") == list(columns)
        return parsed

    from app.export_format import EVENT_CODEBOOK, PARTICIPANT_CODEBOOK

    people = table(
        export.iter_participant_rows(db_session, experiment, pseudonym_key=KEY),
        PARTICIPANT_COLUMNS,
        PARTICIPANT_CODEBOOK,
    )
    assert [r["participant"] for r in people] == ["p00001", "p00002"]  # ordered, no tester
    assert people[0]["platform_id"] == export.pseudonymise(KEY, experiment.slug, "-1+1")
    assert people[0]["feedback_text"].startswith("'=cmd")
    assert people[0]["n_trials"] == str(p1.n_trials)
    experiment.platform_id_export = "raw"
    db_session.flush()
    raw = table(
        export.iter_participant_rows(db_session, experiment, pseudonym_key=KEY),
        PARTICIPANT_COLUMNS,
        PARTICIPANT_CODEBOOK,
    )
    assert [r["platform_id"] for r in raw] == ["'-1+1", "'@sum"]
    with_test = list(
        export.iter_participant_rows(db_session, experiment, pseudonym_key=KEY, include_test=True)
    )
    assert [r["test_mode"] for r in with_test] == ["false", "false", "true"]

    events = table(export.iter_event_rows(db_session, experiment), EVENT_COLUMNS, EVENT_CODEBOOK)
    assert [(e["participant"], e["kind"]) for e in events] == [
        ("p00001", "focus_lost"),
        ("p00002", "resize"),
    ]
    assert json.loads(events[1]["data"]) == {"h": 600, "w": 800}
    ratings = table(
        export.iter_rating_rows(db_session, experiment), RATING_COLUMNS, RATING_CODEBOOK
    )
    assert ratings[0]["value"] == "-40"  # numbers are never "neutralised"
    assert (ratings[0]["position"], ratings[0]["unit_key"], ratings[0]["rt_ms"]) == (
        "end",
        unit.unit_key,
        "1234.5",
    )
    assert (ratings[0]["rating_index"], ratings[0]["trial_index"]) == ("0", str(p1.n_trials))

    document = json.loads(
        "".join(export.iter_json_chunks(db_session, experiment, pseudonym_key=KEY))
    )
    assert [c["name"] for c in document["codebook"]["participants"]] == list(PARTICIPANT_COLUMNS)
    for name, columns in (("ratings", RATING_COLUMNS), ("events", EVENT_COLUMNS)):
        assert [c["name"] for c in document["codebook"][name]] == list(columns)
        assert all(c["description"] for c in document["codebook"][name])
    assert document["ratings"][0]["value"] == -40
    assert document["participants"][0]["excluded"] is False
    assert document["participants"][0]["completed_at"] is None


N_ROWS_BY_BACKEND = {"sqlite": 100_000, "postgresql": 20_000}
"""100k rows on SQLite; PostgreSQL (server-side cursor) gets 20k to keep the suite short."""
TRIALS_PER_PARTICIPANT = 1000


class _Sink:
    """A file that only counts what is written (the download's socket)."""

    def __init__(self) -> None:
        self.size = 0
        self.lines = 0

    def write(self, text: str) -> int:
        self.size += len(text)
        self.lines += text.count("\n")
        return len(text)


def test_responses_export_streams_100k_rows_in_bounded_memory(
    db_session: Session, demo_set: StimulusSet
) -> None:
    experiment = make_experiment(db_session, demo_set)
    launched = make_launch(db_session, experiment)
    template = _participant(db_session, demo_set, "t", experiment=experiment, launched=launched)
    first = db_session.scalar(
        select(ScheduledTrial).where(ScheduledTrial.participant_id == template.id).limit(1)
    )
    assert first is not None
    now = utc_now()
    n_rows = N_ROWS_BY_BACKEND[db_session.get_bind().dialect.name]
    n_participants = n_rows // TRIALS_PER_PARTICIPANT
    base = {
        c: getattr(template, c)
        for c in (
            "experiment_id",
            "experiment_session_id",
            "platform",
            "platform_data",
            "seed",
            "status",
            "test_mode",
            "blocks",
            "excluded",
            "exclusion_reasons",
        )
    }
    ids = list(
        db_session.scalars(
            insert(Participant).returning(Participant.id, sort_by_parameter_order=True),
            [
                {
                    **base,
                    "token": f"bulk-{i}",
                    "participant_number": 100 + i,
                    "n_trials": TRIALS_PER_PARTICIPANT,
                    "created_at": now,
                }
                for i in range(n_participants)
            ],
        )
    )
    trial = {
        c: getattr(first, c)
        for c in (
            "block_index",
            "trial_kind",
            "condition",
            "reference_type",
            "n_references",
            "grid_mode",
            "stimulus_unit_id",
            "batch",
            "query_order",
            "feedback",
            "display",
            "solution",
            "skipped",
        )
    }
    for pid in ids:
        trial_ids = list(
            db_session.scalars(
                insert(ScheduledTrial).returning(ScheduledTrial.id, sort_by_parameter_order=True),
                [
                    {**trial, "participant_id": pid, "trial_index": k}
                    for k in range(TRIALS_PER_PARTICIPANT)
                ],
            )
        )
        db_session.execute(
            insert(TrialResponse),
            [
                {
                    "participant_id": pid,
                    "scheduled_trial_id": tid,
                    "trial_index": k,
                    "response_uuid": f"{pid:08d}-{k:027d}",
                    "answer": {"response": "upper", "confidence": 2},
                    "correct": k % 3 != 0,
                    "rt_ms": 700.0 + k,
                    "received_at": now,
                }
                for k, tid in enumerate(trial_ids)
            ],
        )
    db_session.flush()
    db_session.expunge_all()

    sink = _Sink()
    rows = export.iter_response_rows(db_session, experiment)
    chunks = export.iter_csv_chunks(rows)
    # Trace allocations while the query runs and the first fifth of the rows go out: a
    # generator that fetched or built everything first would peak here at the full size.
    tracemalloc.start()
    try:
        for chunk in chunks:
            sink.write(chunk)
            if sink.lines > n_rows // 5:
                break
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    for chunk in chunks:
        sink.write(chunk)
    assert sink.lines == n_rows + 1
    # 100k rows are ~40 MB of text and several times that as row dicts (20k: a fifth);
    # streaming keeps the peak at a few chunks whatever the size.
    assert sink.size > n_rows * 300
    assert peak < 25_000_000, f"peak {peak / 1e6:.1f} MB"


def test_participant_condition_is_the_arm_or_the_order_of_main_conditions() -> None:
    blocks = [
        {"kind": "practice", "condition": "synthetic"},
        {"kind": "main", "condition": "natural"},
        {"kind": "main", "condition": "synthetic"},
        {"kind": "main", "condition": "natural"},
        {"kind": "repeated", "condition": "none"},
    ]
    assert monitor.participant_condition(None, blocks) == "natural → synthetic"
    assert monitor.participant_condition("synthetic", blocks) == "synthetic"
    assert monitor.participant_condition(None, []) == ""
    assert set(monitor.STATUS_LABELS) == set(monitor.STATUS_BUCKETS)
