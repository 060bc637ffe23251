"""Migrations: upgrade, `alembic check` (models and migrations agree), downgrade, upgrade again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Connection, Engine, MetaData, insert, inspect, select

from app.db import make_engine
from app.errors import SchemaOutOfDate
from app.migrate import (
    alembic_config,
    assert_schema_current,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from tests.conftest import create_database, drop_database


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
        yield eng
        eng.dispose()
        return
    server = request.getfixturevalue("postgres_server_url")
    url = create_database(server)
    eng = make_engine(url, pool_size=1)
    yield eng
    eng.dispose()
    drop_database(server, url)


def test_upgrade_check_downgrade_upgrade(fresh_engine: Engine) -> None:
    with pytest.raises(SchemaOutOfDate, match="psychvis db upgrade"):
        assert_schema_current(fresh_engine)
    upgrade(fresh_engine)
    assert current_revision(fresh_engine) == head_revision()
    assert_schema_current(fresh_engine)
    with fresh_engine.begin() as conn:
        command.check(alembic_config(conn))  # raises when models and migrations differ
    assert "trial_response" in inspect(fresh_engine).get_table_names()
    downgrade(fresh_engine, "base")
    assert current_revision(fresh_engine) is None
    assert "trial_response" not in inspect(fresh_engine).get_table_names()
    upgrade(fresh_engine)
    assert current_revision(fresh_engine) == head_revision()


def _insert_study(conn: Connection, meta: MetaData, now: datetime) -> None:
    """Stimulus set 1, experiment 1 on it and its lab session 1, with the columns every
    revision has."""
    conn.execute(
        insert(meta.tables["stimulus_set"]).values(
            id=1, slug="s", title="s", schema_version=1, source_format="v1", manifest={},
            image_count=0, imported_at=now,
        )
    )  # fmt: skip
    conn.execute(
        insert(meta.tables["experiment"]).values(
            id=1, slug="e", title="e", stimulus_set_id=1, design_name="paper-exp1",
            design_toml="", enrolled_count=1, created_at=now,
        )
    )  # fmt: skip
    conn.execute(
        insert(meta.tables["experiment_session"]).values(
            id=1, experiment_id=1, link_code="l", label="", platform="lab", status="open",
            outcomes={}, mturk_sandbox=False, created_at=now,
        )
    )  # fmt: skip


def _insert_participant(conn: Connection, meta: MetaData, now: datetime, **values: Any) -> None:
    """A participant of session 1 (`values`: id, token, seed, status and what differs)."""
    row = {
        "experiment_id": 1, "experiment_session_id": 1, "participant_number": values["id"],
        "platform": "lab", "platform_data": {}, "test_mode": False, "n_trials": 0, "blocks": [],
        "excluded": False, "exclusion_reasons": [], "created_at": now,
    }  # fmt: skip
    conn.execute(insert(meta.tables["participant"]).values(**(row | values)))


def test_upgrade_keeps_existing_rows(fresh_engine: Engine) -> None:
    """Later revisions run on a database that already holds an experiment and a participant
    (SQLite batch migrations copy tables; foreign keys must survive)."""
    from alembic.script import ScriptDirectory

    from app.migrate import alembic_config

    first = ScriptDirectory.from_config(alembic_config()).get_base()
    upgrade(fresh_engine, first)
    meta = MetaData()
    meta.reflect(fresh_engine)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with fresh_engine.begin() as conn:
        _insert_study(conn, meta, now)
        _insert_participant(conn, meta, now, id=1, token="t", seed="x", status="enrolled")
        _insert_participant(
            conn,
            meta,
            now,
            id=2,
            token="t2",
            seed="y",
            status="in_progress",
            consented_at=now,
            instructions_done_at=now,
        )
        conn.execute(
            insert(meta.tables["scheduled_trial"]).values(
                id=1,
                participant_id=1,
                trial_index=0,
                block_index=0,
                trial_kind="main",
                condition="c",
                reference_type="natural",
                n_references=9,
                grid_mode="min_max",
                query_order="max_upper",
                feedback=True,
                display={},
                skipped=False,
            )
        )
        conn.execute(
            insert(meta.tables["trial_response"]).values(
                id=1,
                participant_id=1,
                scheduled_trial_id=1,
                trial_index=0,
                response_uuid="u",
                response="upper",
                confidence=3,
                correct=True,
                rt_ms=500.0,
                focus_lost=False,
                fullscreen_exited=False,
                via_beacon=False,
                received_at=now,
            )
        )
    upgrade(fresh_engine)
    meta = MetaData()
    meta.reflect(fresh_engine)
    with fresh_engine.connect() as conn:
        participant = meta.tables["participant"]
        assert conn.execute(
            select(participant.c.token).order_by(participant.c.id)
        ).scalars().all() == ["t", "t2"]
        # Participants past the instructions had been served the task page: their answers go
        # on being taken; the one still at consent has not.
        shown = dict(conn.execute(select(participant.c.token, participant.c.task_page_at)).all())
        assert shown["t"] is None
        at = shown["t2"]
        assert at is not None and (at if at.tzinfo else at.replace(tzinfo=UTC)) == now
        # Answers hang off participants (ON DELETE CASCADE): a table copy must not delete them.
        assert conn.execute(
            select(meta.tables["trial_response"].c.response_uuid)
        ).scalars().all() == ["u"]
        assert conn.execute(select(meta.tables["scheduled_trial"].c.id)).scalars().all() == [1]
        assert conn.execute(select(meta.tables["experiment"].c.slug)).scalars().all() == ["e"]
        # The 2-AFC columns of an answer became its generic `answer`; the trial got its type
        # and its solution from query_order.
        trial = meta.tables["scheduled_trial"]
        assert conn.execute(select(trial.c.task, trial.c.solution)).one() == (
            "afc2",
            {"response": "upper"},
        )
        response = meta.tables["trial_response"]
        assert conn.execute(select(response.c.answer, response.c.correct)).one() == (
            {"response": "upper", "confidence": 3},
            True,
        )
    # Back to the revision before generic answers: the old columns hold the same values.
    downgrade(fresh_engine, "e5a91c3f7d20")
    meta = MetaData()
    meta.reflect(fresh_engine)
    with fresh_engine.connect() as conn:
        response = meta.tables["trial_response"]
        assert conn.execute(
            select(response.c.response, response.c.confidence, response.c.correct)
        ).one() == ("upper", 3, True)
    downgrade(fresh_engine, "base")


def test_ratings_become_rating_trials_and_back(fresh_engine: Engine) -> None:
    """The revision that makes intuitiveness ratings trials: a participant with two start
    ratings (both given) and one end rating (not yet given) gets rating trials around the
    2-AFC ones, every later index shifts by two (trials, answers, events, repeat references,
    blocks), the given ratings become answers; the downgrade restores the old rows exactly."""
    before = "9d4e2b7a6f31"
    upgrade(fresh_engine, before)
    meta = MetaData()
    meta.reflect(fresh_engine)
    t = meta.tables
    now = datetime(2026, 1, 1, tzinfo=UTC)
    paths = {
        "u1": (["s/a.png", "s/b.png"], ["n/a.png"]),
        "u2": (["s/c.png"], ["n/b.png", "n/c.png"]),
    }
    main_block = {
        "block_index": 0,
        "kind": "main",
        "condition": "natural",
        "title": "Next",
        "n_trials": 2,
        "block_feedback": True,
        "break_after": False,
        "repeat_until_correct": False,
        "max_attempts": 1,
        "attempt": 1,
        "n_least_confident": 0,
    }
    specs = [
        {"rating_index": 0, "position": "start", "unit_id": "u2"},
        {"rating_index": 1, "position": "start", "unit_id": "u1"},
        {"rating_index": 2, "position": "end", "unit_id": "u1"},
    ]
    with fresh_engine.begin() as conn:
        _insert_study(conn, meta, now)
        for i, (key, (syn, nat)) in enumerate(paths.items(), start=1):
            data = {
                "synthetic": {"max_references": [{"path": p} for p in syn]},
                "natural": {
                    "batches": [{"batch": 0, "max_references": [{"path": p} for p in nat]}]
                },
            }
            conn.execute(
                insert(t["stimulus_unit"]).values(
                    id=i, stimulus_set_id=1, unit_key=key, layer="l", channel=i, label="",
                    hand_picked=False, roles=["intuitiveness"], data=data,
                )
            )  # fmt: skip
        for path in (p for syn, nat in paths.values() for p in (*syn, *nat)):
            sha = path.replace("/", "").replace(".png", "")
            conn.execute(
                insert(t["stimulus_image"]).values(
                    stimulus_set_id=1, path=path, source_sha256="x", lossless_sha256=sha,
                    lossy_sha256="lossy" + sha, png_sha256="png" + sha,
                )
            )  # fmt: skip
        _insert_participant(
            conn, meta, now, id=1, token="t", seed="x", status="in_progress", n_trials=2,
            blocks=[main_block], rating_specs=specs, task_page_at=now,
        )  # fmt: skip
        for index in (0, 1):
            conn.execute(
                insert(t["scheduled_trial"]).values(
                    id=index + 101, participant_id=1, trial_index=index, block_index=0, task="afc2",
                    trial_kind="main", condition="natural", reference_type="natural",
                    n_references=9, grid_mode="min_max", query_order="max_upper", feedback=True,
                    display={"min": [], "max": [], "upper": "a", "lower": "b"},
                    solution={"response": "upper"}, skipped=False,
                    repeat_of_trial_index=0 if index == 1 else None,
                )
            )  # fmt: skip
        conn.execute(
            insert(t["trial_response"]).values(
                id=101, participant_id=1, scheduled_trial_id=101, trial_index=0, response_uuid="u",
                answer={"response": "upper", "confidence": 3}, correct=True, rt_ms=500.0,
                focus_lost=False, fullscreen_exited=False, via_beacon=False, received_at=now,
            )
        )  # fmt: skip
        for index in (0, 1, None):
            conn.execute(
                insert(t["participant_event"]).values(
                    participant_id=1, kind="blur", trial_index=index, data={}, received_at=now
                )
            )
        for rating_index, value in ((0, -40), (1, 75)):
            conn.execute(
                insert(t["participant_rating"]).values(
                    participant_id=1, rating_index=rating_index, position="start",
                    unit_key=specs[rating_index]["unit_id"], value=value, rt_ms=None,
                    received_at=now,
                )
            )  # fmt: skip

    upgrade(fresh_engine)
    meta = MetaData()
    meta.reflect(fresh_engine)
    t = meta.tables
    assert "participant_rating" not in t and "rating_specs" not in t["participant"].c
    trial, response = t["scheduled_trial"], t["trial_response"]
    with fresh_engine.connect() as conn:
        trials = conn.execute(
            select(
                trial.c.trial_index, trial.c.block_index, trial.c.task, trial.c.condition,
                trial.c.stimulus_unit_id, trial.c.display, trial.c.repeat_of_trial_index,
            ).order_by(trial.c.trial_index)
        ).all()  # fmt: skip
        assert [(r[0], r[1], r[2], r[3], r[4]) for r in trials] == [
            (0, 0, "rating", "start", 2),
            (1, 0, "rating", "start", 1),
            (2, 1, "afc2", "natural", None),
            (3, 1, "afc2", "natural", None),
            (4, 2, "rating", "end", 1),
        ]
        # The images as the server names them (lossless WebP of an experiment without a key).
        assert trials[0].display == {"synthetic": ["sc.webp"], "natural": ["nb.webp", "nc.webp"]}
        assert trials[4].display == {"synthetic": ["sa.webp", "sb.webp"], "natural": ["na.webp"]}
        assert trials[3].repeat_of_trial_index == 2
        answers = conn.execute(
            select(response.c.trial_index, response.c.answer, response.c.correct, response.c.rt_ms)
            .order_by(response.c.trial_index)
        ).all()  # fmt: skip
        assert [tuple(a) for a in answers] == [
            (0, {"value": -40}, None, None),
            (1, {"value": 75}, None, None),
            (2, {"response": "upper", "confidence": 3}, True, 500.0),
        ]
        events = conn.execute(select(t["participant_event"].c.trial_index)).scalars().all()
        assert sorted(events, key=lambda i: -1 if i is None else i) == [None, 2, 3]
        n_trials, blocks = conn.execute(
            select(t["participant"].c.n_trials, t["participant"].c.blocks)
        ).one()
        assert n_trials == 5
        assert [(b["block_index"], b["kind"], b["n_trials"]) for b in blocks] == [
            (0, "task", 2),
            (1, "main", 2),
            (2, "task", 1),
        ]
        assert [b["before_instructions"] for b in blocks] == [True, False, False]

    downgrade(fresh_engine, before)
    meta = MetaData()
    meta.reflect(fresh_engine)
    t = meta.tables
    with fresh_engine.connect() as conn:
        assert conn.execute(
            select(t["participant"].c.n_trials, t["participant"].c.blocks, t["participant"].c.rating_specs)
        ).one() == (2, [main_block], specs)  # fmt: skip
        assert conn.execute(
            select(t["participant_rating"].c.rating_index, t["participant_rating"].c.value)
            .order_by(t["participant_rating"].c.rating_index)
        ).all() == [(0, -40), (1, 75)]  # fmt: skip
        trial = t["scheduled_trial"]
        assert conn.execute(
            select(trial.c.trial_index, trial.c.repeat_of_trial_index).order_by(trial.c.trial_index)
        ).all() == [(0, None), (1, 0)]  # fmt: skip
        assert conn.execute(select(t["trial_response"].c.trial_index)).scalars().all() == [0]
        events = conn.execute(select(t["participant_event"].c.trial_index)).scalars().all()
        assert sorted(events, key=lambda i: -1 if i is None else i) == [None, 0, 1]
    downgrade(fresh_engine, "base")
