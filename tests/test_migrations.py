"""Migrations: upgrade, `alembic check` (models and migrations agree), downgrade, upgrade again."""

from __future__ import annotations

from collections.abc import Iterator
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
