"""Every PostgreSQL connection of the app runs without JIT; the answer pools plan once.

JIT compiled the answer statement on every execution once the planner's estimates passed
`jit_above_cost` (27 ms instead of 0.4 ms; docs/benchmarks.md, session 4).
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import pytest
from sqlalchemy import text

from app.db import make_engine
from app.fast_lane import AnswerLanePool


def _settings(url: str, *, generic_plans: bool = False) -> dict[str, str]:
    engine = make_engine(url, pool_size=1, generic_plans=generic_plans)
    try:
        with engine.connect() as connection:
            return {
                name: connection.execute(text(f"SHOW {name}")).scalar_one()
                for name in ("jit", "plan_cache_mode", "statement_timeout")
            }
    finally:
        engine.dispose()


def test_the_main_engine_runs_without_jit(postgres_server_url: str) -> None:
    found = _settings(postgres_server_url)
    assert found["jit"] == "off"
    assert found["plan_cache_mode"] == "auto"


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
    }


def test_the_fast_lanes_pool_runs_without_jit_and_plans_once(postgres_server_url: str) -> None:
    async def show() -> tuple[str, str]:
        lane = AnswerLanePool(postgres_server_url, 1)
        try:
            pool = await lane.get()
            async with pool.connection() as conn:
                jit = await (await conn.execute("SHOW jit")).fetchone()
                mode = await (await conn.execute("SHOW plan_cache_mode")).fetchone()
                return jit[0], mode[0]
        finally:
            await lane.close()

    assert asyncio.run(show()) == ("off", "force_generic_plan")
