"""uvicorn's httptools protocol with one socket write per response instead of two.

uvicorn writes each ASGI message to the transport as it comes: the status line and headers
(`http.response.start`), then the body. uvloop sends each write at once, so a small response —
every answer acknowledgement — cost two `send` syscalls and reached the client as two TCP
segments (two wake-ups of the client's event loop). Under load those two writes were 11 % of the
server's Python CPU (py-spy, docs/benchmarks.md, session 4).

`CoalescingHttpToolsProtocol` gives uvicorn a transport that gathers the writes of one event-loop
step and sends them together at the end of that step: start and body of a response sent in one
go (every non-streaming response) become one write. A streamed response still goes out as it is
produced: each chunk at the end of the step that wrote it. Closing sends what is gathered first.
Everything else is the real transport's.

`psychvis serve` runs uvicorn with it (`HTTP_PROTOCOL`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HTTP_PROTOCOL = "app.http_protocol:CoalescingHttpToolsProtocol"
"""The import string `uvicorn.run(http=...)` takes."""
FLUSH_AT_BYTES = 64 * 1024
"""Writes gathered up to this size are sent at once, without waiting for the step's end."""


class CoalescingTransport:
    """A transport whose writes within one event-loop step go out as one write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))
        self._pending_bytes += len(data)
        if self._pending_bytes >= FLUSH_AT_BYTES:
            # A large body gains nothing from waiting, and the real transport's flow control
            # (pause_writing when its buffer is full) must see it.
            self.flush()

    def flush(self) -> None:
        """Send what this step wrote (one write); nothing once the connection is closing."""
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._pending_bytes

    def __getattr__(self, name: str) -> Any:
        # is_closing, abort, pause_reading, resume_reading, get_extra_info, ...
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a `CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped: Any = CoalescingTransport(transport, self.loop)
        super().connection_made(wrapped)
