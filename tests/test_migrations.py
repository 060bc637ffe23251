"""Migrations: upgrade, `alembic check` (models and migrations agree), downgrade, upgrade again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect

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


def test_upgrade_keeps_existing_rows(fresh_engine: Engine) -> None:
    """Later revisions run on a database that already holds an experiment and a participant
    (SQLite batch migrations copy tables; foreign keys must survive)."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import MetaData, insert, select

    from app.migrate import alembic_config

    first = ScriptDirectory.from_config(alembic_config()).get_base()
    upgrade(fresh_engine, first)
    meta = MetaData()
    meta.reflect(fresh_engine)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with fresh_engine.begin() as conn:
        conn.execute(
            insert(meta.tables["stimulus_set"]).values(
                id=1,
                slug="s",
                title="s",
                schema_version=1,
                source_format="v1",
                manifest={},
                image_count=0,
                imported_at=now,
            )
        )
        conn.execute(
            insert(meta.tables["experiment"]).values(
                id=1,
                slug="e",
                title="e",
                stimulus_set_id=1,
                design_name="demo",
                design_toml="",
                enrolled_count=1,
                created_at=now,
            )
        )
        conn.execute(
            insert(meta.tables["experiment_session"]).values(
                id=1,
                experiment_id=1,
                link_code="l",
                label="",
                platform="lab",
                status="open",
                outcomes={},
                mturk_sandbox=False,
                created_at=now,
            )
        )
        conn.execute(
            insert(meta.tables["participant"]).values(
                id=1,
                token="t",
                experiment_id=1,
                experiment_session_id=1,
                participant_number=1,
                platform="lab",
                platform_data={},
                seed="x",
                status="enrolled",
                test_mode=False,
                n_trials=0,
                blocks=[],
                excluded=False,
                exclusion_reasons=[],
                created_at=now,
            )
        )
        conn.execute(
            insert(meta.tables["participant"]).values(
                id=2,
                token="t2",
                experiment_id=1,
                experiment_session_id=1,
                participant_number=2,
                platform="lab",
                platform_data={},
                seed="y",
                status="in_progress",
                test_mode=False,
                n_trials=0,
                blocks=[],
                excluded=False,
                exclusion_reasons=[],
                created_at=now,
                consented_at=now,
                instructions_done_at=now,
            )
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
