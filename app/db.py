"""SQLAlchemy base (with a naming convention), engine/session factories and `get_session`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Engine, Insert, MetaData, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utc_now() -> datetime:
    """The current time, tz-aware UTC (the only clock the models use)."""
    return datetime.now(UTC)


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain `postgresql://` URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


GENERIC_PLAN_ARGS: dict[str, Any] = {
    "prepare_threshold": 0,
    "options": "-c plan_cache_mode=force_generic_plan",
}
"""psycopg connection arguments: prepare every statement on first use, plan it once."""


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    echo: bool = False,
    pre_ping: bool = True,
    generic_plans: bool = False,
) -> Engine:
    """Build an engine; SQLite gets foreign keys, WAL and write-serialising transactions.

    `pre_ping=False` saves a round trip per checkout; its users must retry a statement that
    fails on a dropped connection (SQLAlchemy then discards the pool's older connections).
    `generic_plans=True` (PostgreSQL, for an engine that runs a few fixed statements): every
    statement is prepared on first use and planned once per connection. With the default
    `plan_cache_mode=auto` Postgres kept re-planning the one-statement answer on every
    execution, which doubled its CPU (0.74 vs 0.34 ms, docs/benchmarks.md).
    """
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"timeout": 30, "check_same_thread": False},
        )
        _configure_sqlite(engine)
        return engine
    connect_args: dict[str, Any] = dict(GENERIC_PLAN_ARGS) if generic_plans else {}
    return create_engine(
        url,
        echo=echo,
        connect_args=connect_args,
        pool_pre_ping=pre_ping,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
    )


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling is off; we emit BEGIN IMMEDIATE ourselves so that
    # concurrent writers queue on the busy timeout instead of failing to upgrade a read lock
    # (the SQLAlchemy "serializable isolation / savepoints" recipe).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Read-only users (schema checks, test fixtures) may ask for a deferred BEGIN.
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {'DEFERRED' if mode == 'DEFERRED' else 'IMMEDIATE'}")


def insert_ignoring_conflicts(table: Table, dialect: str) -> Insert:
    """`INSERT ... ON CONFLICT DO NOTHING` for PostgreSQL and SQLite (both support it).

    A unique violation then stores nothing and reports rowcount 0 instead of aborting the
    transaction, so no savepoint (two extra round trips) is needed around the insert.
    """
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"unsupported database {dialect!r}")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)
