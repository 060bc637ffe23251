"""One socket write per response (app.http_protocol), through uvicorn's real protocol code."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.http_protocol import FLUSH_AT_BYTES, CoalescingHttpToolsProtocol

REQUEST = b"GET /x HTTP/1.1\r\nHost: example.org\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    """Records every write that would reach the socket."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def small_app(chunks: list[bytes], *, pause_between: bool = False) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        length = str(sum(len(c) for c in chunks)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", length)],
            }
        )
        for i, chunk in enumerate(chunks):
            if pause_between and i:
                await asyncio.sleep(0.01)
            await send(
                {"type": "http.response.body", "body": chunk, "more_body": i < len(chunks) - 1}
            )

    return app


async def serve(
    protocol_class: type[HttpToolsProtocol], app: Any, requests: bytes
) -> RecordingTransport:
    config = Config(app=app, access_log=False, lifespan="off", log_level="warning")
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(requests)
    for _ in range(50):
        await asyncio.sleep(0.005)
    protocol.connection_lost(None)
    return transport


def test_uvicorns_own_protocol_writes_a_response_twice() -> None:
    """The reason for the module: start and body are two writes (two syscalls) in uvicorn."""
    transport = asyncio.run(serve(HttpToolsProtocol, small_app([b"ok"]), REQUEST))
    assert len(transport.writes) == 2


def test_a_response_goes_out_in_one_write() -> None:
    transport = asyncio.run(serve(CoalescingHttpToolsProtocol, small_app([b"ok"]), REQUEST))
    assert len(transport.writes) == 1
    head, body = transport.writes[0].split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 2" in head
    assert body == b"ok"


def test_keep_alive_responses_each_complete_and_in_order() -> None:
    transport = asyncio.run(
        serve(CoalescingHttpToolsProtocol, small_app([b"one", b"two"]), REQUEST * 3)
    )
    sent = b"".join(transport.writes)
    assert sent.count(b"HTTP/1.1 200 OK") == 3
    assert sent.count(b"\r\n\r\nonetwo") == 3
    assert len(transport.writes) == 3  # one per response: the pipelined ones too


def test_a_streamed_response_is_not_held_back() -> None:
    """Chunks produced over time leave as they come (one write per event-loop step)."""
    app = small_app([b"first", b"second"], pause_between=True)
    transport = asyncio.run(serve(CoalescingHttpToolsProtocol, app, REQUEST))
    assert len(transport.writes) == 2
    assert transport.writes[0].endswith(b"\r\n\r\nfirst") and transport.writes[1] == b"second"


@pytest.mark.parametrize("size", [FLUSH_AT_BYTES, 3 * FLUSH_AT_BYTES])
def test_a_large_body_is_written_at_once(size: int) -> None:
    body = b"x" * size
    transport = asyncio.run(serve(CoalescingHttpToolsProtocol, small_app([body]), REQUEST))
    assert b"".join(transport.writes).endswith(body)
    assert len(transport.writes) == 1


def test_close_sends_what_was_gathered_first() -> None:
    """`Connection: close` makes uvicorn close right after the body: the response still leaves."""
    request = b"GET /x HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n"
    transport = asyncio.run(serve(CoalescingHttpToolsProtocol, small_app([b"bye"]), request))
    assert transport.closed
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"\r\n\r\nbye")
