"""The one cache helper: LRU order, one computation per key, nothing of a call kept."""

from __future__ import annotations

import gc
import weakref

import pytest

from app.cache import LruCache


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
