"""The admission limit: no more requests inside the app than the database pool has connections."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from app.config import Settings
from app.main import AdmissionLimitMiddleware, create_app


class SlowApp:
    """An ASGI app that records how many requests are inside it at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most_inside = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        await asyncio.sleep(0.01)
        self.inside -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def _fire(app: AdmissionLimitMiddleware, path: str, n: int) -> list[int]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        responses = await asyncio.gather(*(client.get(path) for _ in range(n)))
    return [r.status_code for r in responses]


def test_admission_limit_queues_requests_beyond_the_pool_and_serves_them_all() -> None:
    inner = SlowApp()
    statuses = asyncio.run(_fire(AdmissionLimitMiddleware(inner, limit=4), "/api/p/x/next", 40))
    assert statuses == [200] * 40
    assert inner.most_inside == 4


def test_static_files_and_images_bypass_the_admission_limit() -> None:
    inner = SlowApp()
    statuses = asyncio.run(_fire(AdmissionLimitMiddleware(inner, limit=2), "/img/a.webp", 20))
    assert statuses == [200] * 20
    assert inner.most_inside > 2


def test_participant_requests_have_their_own_smaller_limit() -> None:
    inner = SlowApp()
    app = AdmissionLimitMiddleware(inner, limit=6, participant_limit=2)
    statuses = asyncio.run(_fire(app, "/api/p/x/responses", 20))
    assert statuses == [200] * 20
    assert inner.most_inside == 2
    inner.most_inside = 0
    assert asyncio.run(_fire(app, "/dashboard/experiments", 20)) == [200] * 20
    assert inner.most_inside == 6


def test_participant_limit_never_exceeds_the_pool_limit() -> None:
    assert AdmissionLimitMiddleware(SlowApp(), limit=4, participant_limit=50).participant_limit == 4


@pytest.mark.parametrize("pool_size", [3, 10])
def test_create_app_admits_as_many_requests_as_the_pool_has_connections(pool_size: int) -> None:
    settings = Settings(
        env="test",
        database_url="sqlite://",
        secret_key="test-" + "x" * 40,
        db_pool_size=pool_size,
        check_schema=False,
    )
    app = create_app(settings)
    limits = [
        (m.kwargs["limit"], m.kwargs["participant_limit"])
        for m in app.user_middleware
        if m.cls is AdmissionLimitMiddleware
    ]
    assert limits == [(2 * pool_size, settings.participant_concurrency)]
