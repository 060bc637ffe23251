"""The admission limit: no more requests inside the app than the database pool has connections."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from app.admission import PrioritySemaphore
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


# --- answers first (app.admission.PrioritySemaphore) ----------------------------------------------


NAMES = ["page 1", "answer 1", "page 2", "answer 2", "page 3"]


def test_urgent_waiters_get_a_freed_slot_before_earlier_normal_ones() -> None:
    async def scenario() -> list[str]:
        semaphore = PrioritySemaphore(1)
        order: list[str] = []
        await semaphore.acquire()

        async def take(name: str, urgent: bool) -> None:
            await semaphore.acquire(urgent=urgent)
            order.append(name)
            await asyncio.sleep(0)
            semaphore.release()

        tasks = [asyncio.create_task(take(n, n.startswith("answer"))) for n in NAMES]
        await asyncio.sleep(0.01)
        assert semaphore.waiting == len(NAMES)
        semaphore.release()
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == ["answer 1", "answer 2", "page 1", "page 2", "page 3"]


def test_a_cancelled_waiter_neither_keeps_nor_loses_a_slot() -> None:
    async def scenario() -> None:
        semaphore = PrioritySemaphore(1)
        await semaphore.acquire()
        # cancelled while waiting: it leaves the queue
        waiting = asyncio.create_task(semaphore.acquire())
        await asyncio.sleep(0.01)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert semaphore.waiting == 0
        # cancelled just after it was handed the slot: the slot goes back
        handed = asyncio.create_task(semaphore.acquire(urgent=True))
        await asyncio.sleep(0.01)
        semaphore.release()
        handed.cancel()
        await asyncio.gather(handed, return_exceptions=True)
        await asyncio.wait_for(semaphore.acquire(), timeout=1)  # the one slot is free again
        semaphore.release()

    asyncio.run(scenario())


def test_answers_reaching_the_routes_overtake_waiting_pages() -> None:
    """A study's arrival fills the participant queue: a block-end answer waits for a slot, not
    for the queue."""
    entered: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        entered.append(scope["path"])
        await asyncio.sleep(0.02)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    admission = AdmissionLimitMiddleware(app, limit=4, participant_limit=1)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=admission)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            first = asyncio.create_task(client.post("/s/study/start"))
            await asyncio.sleep(0.005)
            pages = [asyncio.create_task(client.post("/s/study/start")) for _ in range(5)]
            await asyncio.sleep(0.005)
            answer = asyncio.create_task(client.post("/api/p/tok/responses", content=b"{}"))
            responses = await asyncio.gather(first, *pages, answer)
        assert [r.status_code for r in responses] == [200] * 7

    asyncio.run(scenario())
    assert entered[:2] == ["/s/study/start", "/api/p/tok/responses"]
    assert entered.count("/s/study/start") == 6
