"""The one in-process cache helper: a bounded LRU on `functools.lru_cache`, keyed by what
identifies a result rather than by the arguments that compute it; imports nothing from app."""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Call:
    """An `lru_cache` argument that hashes and compares by `key` alone. It carries the
    computation to the first (missing) call and drops it afterwards, so the cache holds keys
    and results only, never the sessions or ORM rows a computation closes over."""

    __slots__ = ("compute", "key")

    def __init__(self, key: Hashable, compute: Callable[[], Any] | None) -> None:
        self.key = key
        self.compute = compute

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Call) and other.key == self.key


def _run(call: _Call) -> Any:
    assert call.compute is not None  # only a missing key is computed, and that call carries it
    return call.compute()


class LruCache(Generic[K, V]):
    """At most `maxsize` results, least recently used dropped first; thread-safe.

    Two threads that miss the same key at once may both compute it (the first result stored
    wins), and a computation that raises stores nothing; both are what `lru_cache` does.
    """

    def __init__(self, maxsize: int) -> None:
        self._cached = functools.lru_cache(maxsize=maxsize)(_run)

    def get(self, key: K, compute: Callable[[], V]) -> V:
        """The result stored under `key`, or `compute()`'s, stored under `key` first.

        Args:
            key: Everything the result depends on (equal keys must mean equal results).
            compute: Called only when `key` is missing.

        Returns:
            The cached or freshly computed result.
        """
        call = _Call(key, compute)
        try:
            result: V = self._cached(call)
        finally:
            call.compute = None
        return result

    def clear(self) -> None:
        """Forget every result."""
        self._cached.cache_clear()

    def info(self) -> tuple[int, int, int | None, int]:
        """(hits, misses, maxsize, current size), as `lru_cache`'s `cache_info()` names them."""
        return self._cached.cache_info()
