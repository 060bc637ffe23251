"""Every participant request does its database work in at most one thread-pool hop.

A hop (a worker thread woken for a sync function, the event loop woken for its result) cost
~0.5 ms of CPU on the benchmark machine, more than a request's own SQL; a sync route with sync
dependencies (session, participant, settings, endpoint, teardown) took four or five
(bench/NOTES.md). This pins the count in the production wiring.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.app.routes.test_participant_flow import answer


@pytest.fixture()
def hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Thread-pool hops by the function they ran (FastAPI and Starlette use this call)."""
    counted: Counter[str] = Counter()
    real = anyio.to_thread.run_sync

    async def run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        counted[getattr(func, "__qualname__", repr(func))] += 1
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", run_sync)
    yield counted


def test_each_participant_request_takes_at_most_one_hop(
    committed_app: tuple[TestClient, str, Engine], hops: Counter[str]
) -> None:
    client, link, _ = committed_app
    per_request: dict[str, int] = {}

    def request(name: str, method: str, url: str, **kwargs: Any) -> Any:
        hops.clear()
        response = client.request(method, url, follow_redirects=False, **kwargs)
        assert response.status_code in (200, 303), (name, response.text)
        per_request[name] = max(per_request.get(name, 0), sum(hops.values()))
        return response

    request("landing", "GET", f"/s/{link}?PROLIFIC_PID=hops")
    token = (
        request("enrol", "POST", f"/s/{link}/start", data={"PROLIFIC_PID": "hops"})
        .headers["location"]
        .removeprefix("/p/")
    )
    request("consent page", "GET", f"/p/{token}")
    request("consent", "POST", f"/p/{token}/consent", data={"decision": "agree"})
    request("instructions page", "GET", f"/p/{token}")
    request("instructions", "POST", f"/p/{token}/instructions")
    request("task page", "GET", f"/p/{token}")
    step = request("next", "GET", f"/api/p/{token}/next").json()
    request("events", "POST", f"/api/p/{token}/events", json={"events": []})
    block_ends = 0
    while step["step"] == "trial":
        body = answer(step["trial"]["trial_index"])
        hops.clear()
        ack = client.post(f"/api/p/{token}/responses", json=body).json()
        name = "answer" if ack["block_end"] is None else "block end"
        block_ends += ack["block_end"] is not None
        per_request[name] = max(per_request.get(name, 0), sum(hops.values()))
        step = ack["next"]
    request("finish page", "GET", f"/p/{token}")
    request("finish", "POST", f"/p/{token}/finish")
    request("done page", "GET", f"/p/{token}")
    assert block_ends > 0
    assert per_request == dict.fromkeys(per_request, 1), per_request
