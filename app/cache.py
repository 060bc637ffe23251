"""The in-process cache helpers; import nothing from app.

`LruCache`: a bounded LRU on `functools.lru_cache`, keyed by what identifies a result rather
than by the arguments that compute it. `StaleWhileRevalidate`: per key the newest result of a
computation over changing data, recomputed on a background executor while callers get the
older one (docs/architecture_console.md, "The analysis cache").
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

logger = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Computed(Generic[V]):
    """A finished computation: the data version it read, its value, and `read_at`, the clock
    time it started (its data were read at or after it)."""

    version: Hashable
    value: V
    read_at: float


@dataclass(frozen=True)
class Latest(Generic[V]):
    """What `StaleWhileRevalidate.get` has for a key.

    newest: the newest finished computation (None: none yet).
    updating: a computation the caller waits for is queued or running; ask again later.
    failure: why the newest attempt failed (or that it is still running after
        `give_up_after_s`); None otherwise. Never together with `updating`.
    wanted_since: the `wanted_since` that `get` applied (at most the time of the call).
    """

    newest: Computed[V] | None
    wanted_since: float
    updating: bool = False
    failure: str | None = None


@dataclass
class _Entry(Generic[V]):
    newest: Computed[V] | None = None
    running_since: float | None = None
    failed_at: float | None = None
    failure: str | None = None


class StaleWhileRevalidate(Generic[K, V]):
    """Per key, the newest result of a computation over data that keep changing, recomputed in
    the background: a caller never waits for it, it gets the newest result there is.

    A key names what is computed without the data version (e.g. an experiment and a grouping);
    the caller passes the current version. When the newest result is of another version and no
    computation runs for the key, `get` submits one to `executor` (single-flight: at most one
    per key queued or running) and returns the older result meanwhile. The computation reads
    its version itself, before its data, since by the time it runs the data may have moved on.

    A failed computation is logged and reported by `get` for `retry_after_s` (no new attempt
    before then); one running longer than `give_up_after_s` is reported as failed. At most
    `maxsize` keys are kept, least recently used dropped first (never one whose computation
    runs). Thread-safe.
    """

    def __init__(
        self,
        maxsize: int,
        executor: Executor,
        *,
        retry_after_s: float = 30.0,
        give_up_after_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._maxsize = maxsize
        self._executor = executor
        self._retry_after_s = retry_after_s
        self._give_up_after_s = give_up_after_s
        self.clock = clock
        """The time source of `Computed.read_at` and `wanted_since` (default: Unix seconds)."""
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self,
        key: K,
        version: Hashable,
        compute: Callable[[], tuple[Hashable, V]],
        *,
        wanted_since: float | None = None,
    ) -> Latest[V]:
        """The newest result for `key`; starts computing the current one when it is missing.

        Args:
            key: What is computed, without the data version.
            version: The current data version.
            compute: Run on the executor: returns (the version it read, its value).
            wanted_since: A result whose data were read at or after this clock time is as new
                as the caller wants even if the data have changed since (a page that reloads
                itself until the analysis it asked for is ready, not for ever while data keep
                arriving). Default: now, i.e. only `version` will do. Later than now counts as
                now.

        Returns:
            The newest result with `updating` while one the caller wants is computed, or the
            failure of the last attempt.
        """
        now = self.clock()
        wanted = now if wanted_since is None else min(wanted_since, now)
        with self._lock:
            entry = self._entry(key)
            newest = entry.newest
            if newest is not None and (newest.version == version or newest.read_at >= wanted):
                return Latest(newest, wanted)
            if entry.running_since is not None:
                if now - entry.running_since > self._give_up_after_s:
                    failure = f"still computing after {self._give_up_after_s:.0f} s"
                    return Latest(newest, wanted, failure=failure)
                return Latest(newest, wanted, updating=True)
            if entry.failed_at is not None and (
                entry.failed_at >= wanted or now - entry.failed_at < self._retry_after_s
            ):
                return Latest(newest, wanted, failure=entry.failure)
            entry.running_since = now
            try:
                self._executor.submit(self._run, key, entry, compute)
            except RuntimeError as exc:  # the executor was shut down
                entry.running_since = None
                entry.failed_at, entry.failure = now, f"not started: {exc}"
                return Latest(newest, wanted, failure=entry.failure)
            return Latest(newest, wanted, updating=True)

    def current(self, key: K, version: Hashable) -> Computed[V] | None:
        """The key's newest result if it is of `version`, else None; computes nothing."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.newest is None or entry.newest.version != version:
                return None
            self._entries.move_to_end(key)
            return entry.newest

    def put(self, key: K, computed: Computed[V]) -> None:
        """Store a result computed by the caller itself (it becomes the key's newest)."""
        with self._lock:
            entry = self._entry(key)
            entry.newest = computed
            entry.failed_at = entry.failure = None

    def clear(self) -> None:
        """Forget every result (computations still running store theirs in a dropped entry)."""
        with self._lock:
            self._entries.clear()

    def _entry(self, key: K) -> _Entry[V]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
            idle = [k for k, e in self._entries.items() if e.running_since is None and k != key]
            for old in idle[: max(len(self._entries) - self._maxsize, 0)]:
                del self._entries[old]
        else:
            self._entries.move_to_end(key)
        return entry

    def _run(self, key: K, entry: _Entry[V], compute: Callable[[], tuple[Hashable, V]]) -> None:
        read_at = self.clock()
        try:
            version, value = compute()
        except Exception as exc:
            logger.exception("background computation for %r failed", key)
            with self._lock:
                entry.running_since = None
                entry.failed_at, entry.failure = self.clock(), _describe(exc)
            return
        except BaseException:
            with self._lock:
                entry.running_since = None
            raise
        with self._lock:
            entry.newest = Computed(version, value, read_at)
            entry.running_since = None
            entry.failed_at = entry.failure = None


def _describe(exc: BaseException) -> str:
    """The exception's type and first line, at most 300 characters (the log has the rest)."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "…"
