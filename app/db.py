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


def pg_connect_args(url: str, *, generic_plans: bool = False) -> dict[str, Any]:
    """psycopg connection arguments of the app's PostgreSQL connections.

    JIT off: PostgreSQL compiles a query to machine code when its estimated cost passes
    `jit_above_cost` (100,000), which a millisecond query reaches once its tables hold a few
    million rows or their statistics are missing. In the benchmark database (1.5 million
    scheduled trials, no statistics) the answer statement then spent 27 ms compiling on every
    execution instead of 0.4 ms running: answers/s fell from ~630 to ~50 (bench/NOTES.md). None of this app's queries runs long enough to gain from it.

    `generic_plans=True`: every statement is prepared on first use and planned once per
    connection (`plan_cache_mode=auto` kept re-planning the answer statement, doubling its
    CPU), and sequential scans are ruled out wherever an index can serve (`enable_seqscan`
    off). The answer path's statements all look rows up by indexed keys; a plan made while the
    planner's statistics said "empty" (a fresh database, autovacuum off) would otherwise scan
    whole tables, and a prepared plan is kept for the connection's life: answers slowed from
    milliseconds to seconds within ten minutes of a study (docs/benchmarks.md). Options in the
    URL (`?options=-c ...`) are kept, ours appended.
    """
    options = [str(o) for o in _url_options(url)]
    options.append("-c jit=off")
    args: dict[str, Any] = {}
    if generic_plans:
        options.append("-c plan_cache_mode=force_generic_plan")
        options.append("-c enable_seqscan=off")
        args["prepare_threshold"] = 0
    args["options"] = " ".join(options)
    return args


def _url_options(url: str) -> list[str]:
    value = make_url(normalize_url(url)).query.get("options")
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


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
    execution, which doubled its CPU (0.74 vs 0.34 ms, docs/benchmarks.md). PostgreSQL
    connections run without JIT (`pg_connect_args`).
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
    return create_engine(
        url,
        echo=echo,
        connect_args=pg_connect_args(url, generic_plans=generic_plans),
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


def autovacuum_warning(engine: Engine) -> str | None:
    """A warning when the PostgreSQL server runs without autovacuum, else None.

    Without it nothing refreshes the planner's statistics or cleans dead rows: the answer path
    is planned to stay on its indexes regardless (`pg_connect_args`), but other queries (the
    console's, block ends) can slow down as a study grows. SQLite: None.
    """
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        setting = conn.exec_driver_sql("SHOW autovacuum").scalar()
    if str(setting).lower() in ("on", "true", "1"):
        return None
    return (
        "PostgreSQL runs with autovacuum off: planner statistics go stale and dead rows pile "
        "up as a study grows; turn it on (postgresql.conf: autovacuum = on) or run ANALYZE "
        "regularly (docs/deploy.md)"
    )
