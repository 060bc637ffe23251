"""A counting semaphore with two classes of waiters: urgent ones get a freed slot first.

`app.main.AdmissionLimitMiddleware` admits a few participant requests at a time. When many
participants arrive at once (a large Prolific study), their landing pages, enrolments and
instructions fill the queue; an answer waiting behind them held up the participant's next trial
for seconds. Answers are urgent: they wait only for the slots already taken, not for the queue
(measured in bench/NOTES.md).
Within each class the order is first come, first served.
"""

from __future__ import annotations

import asyncio
from collections import deque


class PrioritySemaphore:
    """`value` slots; `acquire(urgent=True)` waiters are served before the others.

    For one event loop (as asyncio.Semaphore). A slot freed while someone waits goes to that
    waiter directly, so a newcomer cannot take it first.
    """

    def __init__(self, value: int) -> None:
        if value < 1:
            raise ValueError("a semaphore needs at least one slot")
        self._free = value
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot."""
        return sum(1 for f in (*self._urgent, *self._normal) if not f.done())

    async def acquire(self, *, urgent: bool = False) -> None:
        if self._free > 0:  # then nobody waits: a release hands its slot to a waiter
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._urgent if urgent else self._normal
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot as it was cancelled: pass it on
            else:
                queue.remove(waiter)
            raise

    def release(self) -> None:
        for queue in (self._urgent, self._normal):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the slot goes to this waiter
                    return
        self._free += 1
