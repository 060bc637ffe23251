"""Every PostgreSQL connection of the app runs without JIT; the answer pools plan once.

JIT compiled the answer statement on every execution once the planner's estimates passed
`jit_above_cost` (27 ms instead of 0.4 ms; bench/NOTES.md).
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from sqlalchemy import text

from app.db import make_engine


def _settings(url: str, *, generic_plans: bool = False) -> dict[str, str]:
    engine = make_engine(url, pool_size=1, generic_plans=generic_plans)
    try:
        with engine.connect() as connection:
            return {
                name: connection.execute(text(f"SHOW {name}")).scalar_one()
                for name in ("jit", "plan_cache_mode", "statement_timeout", "enable_seqscan")
            }
    finally:
        engine.dispose()


def test_the_main_engine_runs_without_jit(postgres_server_url: str) -> None:
    found = _settings(postgres_server_url)
    assert found["jit"] == "off"
    assert found["plan_cache_mode"] == "auto"
    assert found["enable_seqscan"] == "on"


@pytest.mark.parametrize(
    ("url_options", "statement_timeout"),
    [(None, "0"), ("-c statement_timeout=5000", "5s")],
    ids=["plain-url", "url-with-options"],
)
def test_the_answer_engine_runs_without_jit_and_plans_once(
    postgres_server_url: str, url_options: str | None, statement_timeout: str
) -> None:
    """Options already in the database URL are kept, ours appended."""
    url = postgres_server_url
    if url_options is not None:
        url += f"{'&' if '?' in url else '?'}options={quote(url_options)}"
    assert _settings(url, generic_plans=True) == {
        "jit": "off",
        "plan_cache_mode": "force_generic_plan",
        "statement_timeout": statement_timeout,
        "enable_seqscan": "off",
    }


def test_the_answer_statement_stays_on_indexes_with_stale_statistics(
    postgres_server_url: str,
) -> None:
    """The planner's statistics of a fresh database say every table is empty (and stay so with
    autovacuum off): the answer statement's generic plan must still look rows up by index, or
    it scans whole tables for the connection's life as the study grows."""
    from app.migrate import upgrade
    from app.services.fast_answer import ANSWER_SQL
    from tests.conftest import create_database, drop_database

    url = create_database(postgres_server_url)
    try:
        engine = make_engine(url, pool_size=1)
        upgrade(engine)
        engine.dispose()
        answer_engine = make_engine(url, pool_size=1, generic_plans=True)
        try:
            with answer_engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")  # statistics of the empty tables
                names = sorted(set(re.findall(r"%\((\w+)\)s", ANSWER_SQL)))
                sql = ANSWER_SQL
                for i, name in enumerate(names, start=1):
                    sql = sql.replace(f"%({name})s", f"${i}")
                conn.exec_driver_sql(f"PREPARE answer AS {sql}")
                nulls = ", ".join(["NULL"] * len(names))
                plan = "\n".join(
                    row[0] for row in conn.exec_driver_sql(f"EXPLAIN EXECUTE answer({nulls})")
                )
        finally:
            answer_engine.dispose()
    finally:
        drop_database(postgres_server_url, url)
    assert "Seq Scan" not in plan, plan
    assert "Index" in plan


def test_serve_warns_when_autovacuum_is_off(postgres_server_url: str) -> None:
    from app.db import autovacuum_warning

    engine = make_engine(postgres_server_url, pool_size=1)
    try:
        with engine.connect() as conn:
            on = conn.exec_driver_sql("SHOW autovacuum").scalar() == "on"
        warning = autovacuum_warning(engine)
    finally:
        engine.dispose()
    assert (warning is None) == on
    if warning is not None:
        assert "autovacuum" in warning and "ANALYZE" in warning
    sqlite = make_engine("sqlite://", pool_size=1)
    assert autovacuum_warning(sqlite) is None
