"""The cache helpers. LruCache: LRU order, one computation per key, nothing of a call kept.
StaleWhileRevalidate: the older result while the new one computes in the background, one
computation per key at a time, failures reported instead of a wait that never ends."""

from __future__ import annotations

import gc
import logging
import threading
import weakref
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.cache import LruCache, StaleWhileRevalidate


def test_get_computes_once_per_key_and_drops_the_least_recently_used() -> None:
    cache: LruCache[str, int] = LruCache(maxsize=2)
    calls: list[str] = []

    def compute(key: str) -> int:
        calls.append(key)
        return len(calls)

    assert cache.get("a", lambda: compute("a")) == 1
    assert cache.get("a", lambda: compute("a")) == 1
    cache.get("b", lambda: compute("b"))
    cache.get("a", lambda: compute("a"))  # "a" is now the most recently used
    cache.get("c", lambda: compute("c"))  # drops "b"
    assert cache.get("a", lambda: compute("a")) == 1
    cache.get("b", lambda: compute("b"))
    assert calls == ["a", "b", "c", "b"]


def test_get_keeps_no_reference_to_what_the_computation_closed_over() -> None:
    class Row:
        pass

    cache: LruCache[int, int] = LruCache(maxsize=4)

    def fill(row: Row) -> weakref.ref[Row]:
        cache.get(1, lambda: id(row))
        return weakref.ref(row)

    gone = fill(Row())
    gc.collect()
    assert gone() is None


def test_a_computation_that_raises_stores_nothing() -> None:
    cache: LruCache[int, float] = LruCache(maxsize=4)
    with pytest.raises(ZeroDivisionError):
        cache.get(1, lambda: 1 / 0)
    assert cache.get(1, lambda: 2.0) == 2.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def worker() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=1)
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)


def _idle(worker: ThreadPoolExecutor) -> None:
    """Wait until the one worker has finished what was submitted before (it runs in order)."""
    worker.submit(lambda: None).result(timeout=10)


class Gated:
    """A computation that returns (version, value) once its gate is open, counting its runs."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.runs = 0
        self.started = threading.Event()

    def __call__(self, version: Hashable, value: str) -> Callable[[], tuple[Hashable, str]]:
        def compute() -> tuple[Hashable, str]:
            self.runs += 1
            self.started.set()
            assert self.gate.wait(10)
            return version, value

        return compute


def test_the_older_result_is_returned_while_the_current_one_computes(
    worker: ThreadPoolExecutor,
) -> None:
    clock = Clock()
    cache: StaleWhileRevalidate[str, str] = StaleWhileRevalidate(4, worker, clock=clock)
    computation = Gated()
    try:
        first = cache.get("k", 1, computation(1, "one"))
        assert first.newest is None and first.updating  # nothing yet: computing
        assert computation.started.wait(10)
        # Single flight: asking again while it runs starts nothing more.
        assert cache.get("k", 1, computation(1, "other")).updating
        computation.gate.set()
        _idle(worker)
        done = cache.get("k", 1, computation(1, "unused"))
        assert done.newest is not None and done.newest.value == "one" and not done.updating
        assert computation.runs == 1

        computation.gate.clear()
        clock.now += 5
        stale = cache.get("k", 2, computation(2, "two"))
        assert stale.updating and stale.newest is not None and stale.newest.value == "one"
        assert stale.wanted_since == clock.now
        assert cache.get("k", 2, computation(2, "again")).newest.value == "one"  # type: ignore[union-attr]
        computation.gate.set()
        _idle(worker)
        fresh = cache.get("k", 2, computation(2, "unused"))
        assert fresh.newest is not None and fresh.newest.value == "two" and not fresh.updating
        assert fresh.newest.read_at == clock.now
        assert computation.runs == 2
    finally:
        computation.gate.set()


def test_a_result_read_after_the_caller_asked_will_do_though_data_arrived_since(
    worker: ThreadPoolExecutor,
) -> None:
    """A page reloading itself stops once it shows the analysis it asked for."""
    clock = Clock()
    cache: StaleWhileRevalidate[str, str] = StaleWhileRevalidate(4, worker, clock=clock)
    runs: list[int] = []

    def compute(version: int) -> Callable[[], tuple[Hashable, str]]:
        return lambda: (runs.append(version), (version, f"v{version}"))[1]

    asked = cache.get("k", 1, compute(1)).wanted_since
    _idle(worker)
    clock.now += 10  # new data (version 2) arrived after the page was asked for
    later = cache.get("k", 2, compute(2), wanted_since=asked)
    assert later.newest is not None and later.newest.value == "v1" and not later.updating
    assert runs == [1]
    # Without `wanted_since` (a reload by hand) only the current version will do.
    assert cache.get("k", 2, compute(2)).updating
    _idle(worker)
    # A time in the future counts as now.
    assert not cache.get("k", 2, compute(3), wanted_since=clock.now + 99).updating


def test_a_failure_is_reported_and_logged_and_retried_after_a_while(
    worker: ThreadPoolExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    cache: StaleWhileRevalidate[str, str] = StaleWhileRevalidate(
        4, worker, clock=clock, retry_after_s=30
    )
    cache.get("k", 1, lambda: (1, "one"))
    _idle(worker)
    runs: list[int] = []

    def broken() -> tuple[Hashable, str]:
        runs.append(1)
        raise RuntimeError("the database went away\nand more detail")

    clock.now += 1
    with caplog.at_level(logging.ERROR, logger="app.cache"):
        asked = cache.get("k", 2, broken)
        assert asked.updating
        _idle(worker)
    assert "background computation for 'k' failed" in caplog.text
    assert "the database went away" in caplog.text

    # The page waiting for it (and any reload within 30 s) shows the failure and the older
    # result, and is no longer told to wait; nothing is retried yet.
    for wanted_since in (asked.wanted_since, None):
        failed = cache.get("k", 2, broken, wanted_since=wanted_since)
        assert failed.failure == "RuntimeError: the database went away"
        assert not failed.updating and failed.newest is not None and failed.newest.value == "one"
    assert runs == [1]

    clock.now += 31
    assert cache.get("k", 2, lambda: (2, "two")).updating  # tried again
    _idle(worker)
    recovered = cache.get("k", 2, broken)
    assert recovered.failure is None and recovered.newest.value == "two"  # type: ignore[union-attr]


def test_a_computation_that_never_ends_is_reported_after_give_up_after_s(
    worker: ThreadPoolExecutor,
) -> None:
    clock = Clock()
    cache: StaleWhileRevalidate[str, str] = StaleWhileRevalidate(
        4, worker, clock=clock, give_up_after_s=300
    )
    computation = Gated()
    try:
        assert cache.get("k", 1, computation(1, "one")).updating
        clock.now += 301
        stuck = cache.get("k", 1, computation(1, "one"))
        assert stuck.failure == "still computing after 300 s" and not stuck.updating
    finally:
        computation.gate.set()
    _idle(worker)
    assert computation.runs == 1


def test_keys_are_dropped_least_recently_used_first_but_never_while_computing(
    worker: ThreadPoolExecutor,
) -> None:
    cache: StaleWhileRevalidate[str, str] = StaleWhileRevalidate(2, worker)
    computation = Gated()
    assert cache.current("a", 1) is None
    try:
        cache.get("a", 1, lambda: (1, "a"))
        _idle(worker)
        cache.get("running", 1, computation(1, "r"))
        cache.get("b", 1, lambda: (1, "b"))  # over the limit: "a" goes, "running" stays
        computation.gate.set()
        _idle(worker)
    finally:
        computation.gate.set()
    assert cache.current("running", 1) is not None and cache.current("b", 1) is not None
    assert cache.current("a", 1) is None
    assert computation.runs == 1
