"""The answer fast lane: `POST /api/p/{token}/responses` answered from the event loop.

An ASGI middleware (PostgreSQL only) in front of FastAPI. For the request every participant
sends every few seconds it parses the body, runs the one answer statement
(`app.services.fast_answer.ANSWER_SQL`) on an autocommit connection of its own async pool and
writes the acknowledgement: no routing, dependency injection, thread-pool hop or ORM. Anything
it does not finish — a block end, a retry, an answer out of order, bad input, a database error —
goes on to the FastAPI route unchanged (the body replayed), which gives the same answers and
errors as without the lane; `request.state.answer_stored` (a `StoredAnswer`, else None) tells
the route that the lane stored the answer already, and what it stored. Measured in
docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

from pydantic import ValidationError
from sqlalchemy.engine import make_url
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db import pg_connect_args
from app.schemas import ResponseSubmit
from app.services.fast_answer import (
    ANSWER_SQL,
    StoredAnswer,
    ack_from_row,
    cached_timing,
    load_timing,
    statement_params,
    stored_of,
)

logger = logging.getLogger(__name__)

ANSWER_PATH = re.compile(r"/api/p/([A-Za-z0-9_-]{1,64})/responses")
ACCEPTED_TYPES = ("application/json", "text/plain", "")


def libpq_conninfo(database_url: str) -> str:
    """`postgresql+psycopg://...` (SQLAlchemy) -> `postgresql://...` (libpq)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class AnswerLanePool:
    """The lane's connections: a psycopg async pool, opened lazily in the serving event loop.

    A pool belongs to the loop that opened it; a worker serves from one loop for its life (a
    new loop, as in some test clients, gets a new pool). Connections are autocommit: the one
    statement is its own transaction.
    """

    def __init__(self, database_url: str, size: int) -> None:
        self.conninfo = libpq_conninfo(database_url)
        self.connect_args = pg_connect_args(database_url, generic_plans=True)
        self.size = max(1, size)
        self._pool: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def get(self) -> Any:
        from psycopg_pool import AsyncConnectionPool

        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop:
            pool = AsyncConnectionPool(
                self.conninfo,
                min_size=1,
                max_size=self.size,
                # Prepared on first use, planned once per connection, no JIT (pg_connect_args).
                kwargs={"autocommit": True, **self.connect_args},
                open=False,
                name="answer-lane",
            )
            await pool.open(wait=False)
            self._pool, self._loop = pool, loop
        return self._pool

    async def close(self) -> None:
        if self._pool is not None and self._loop is asyncio.get_running_loop():
            await self._pool.close()
        self._pool = None

    async def fetch(self, params: dict[str, Any]) -> Any:
        """The statement's row; once more on a new connection after a dropped one."""
        import psycopg

        for attempt in (1, 2):
            pool = await self.get()
            try:
                async with pool.connection() as conn:
                    cursor = await conn.execute(ANSWER_SQL, params)
                    return await cursor.fetchone()
            except psycopg.OperationalError:
                # The pool drops a broken connection when it comes back; the statement stores
                # nothing twice (unique keys), so running it again is safe.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class AnswerFastLane:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp, pool: AnswerLanePool, ahead: int, sessionmaker: Any) -> None:
        self.app = app
        self.pool = pool
        self.ahead = ahead
        self.sessionmaker = sessionmaker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = ANSWER_PATH.fullmatch(scope["path"])
        content_type = b""
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value
        kind = content_type.split(b";")[0].strip().lower().decode("latin-1")
        if match is None or kind not in ACCEPTED_TYPES:
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive)
        stored: StoredAnswer | None = None
        try:
            submit = ResponseSubmit.model_validate_json(body or b"")
        except ValidationError:
            submit = None  # the route explains what is wrong
        if submit is not None and not more:
            try:
                params = statement_params(
                    match.group(1), submit, via_beacon=kind == "text/plain", ahead=self.ahead
                )
                row = await self.pool.fetch(params)
                if row is not None:
                    stored = stored_of(row, submit)
                    if cached_timing(row[3]) is None:
                        await run_in_threadpool(self._load_timing, row[3])
                outcome = ack_from_row(row, submit, cached_timing)
                if outcome.ack is not None:
                    ack = json.dumps(outcome.ack, separators=(",", ":")).encode()
                    await send_json(send, ack)
                    return
            except Exception:  # noqa: BLE001 - the route answers instead, with its own errors
                logger.warning("answer fast lane fell back to the route", exc_info=True)
        scope.setdefault("state", {})["answer_stored"] = stored
        await self.app(scope, _replay(body, more, receive), send)

    def _load_timing(self, experiment_id: int) -> None:
        with self.sessionmaker() as session:
            load_timing(session, experiment_id)


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole body (BodyLimitMiddleware, outside, caps it); `more` if the client left."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """A receive that gives the downstream app the body already read, then the real stream."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay


async def send_json(send: Send, data: bytes, status: int = 200) -> None:
    """A complete JSON response written straight to ASGI (no Starlette Response object)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
