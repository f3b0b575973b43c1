"""``ogshot serve``'s connection protocol driven in process, where what it holds can be counted.

The behaviour seen from a client (deadlines, refusals, framing) is tested over real sockets in
test_serve_protocol.py; here, what a connection keeps in memory.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from ogshot.connection import DeadlineProtocol


class _Transport(asyncio.Transport):
    """A socket's transport that records writes and whether reading is paused."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.reading = True
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def test_one_read_of_many_pipelined_requests_parses_only_a_few_of_them() -> None:
    """Given one read holding thousands of pipelined requests while the first is being
    answered, the connection parses a few pieces' worth and keeps the rest as bytes, reading
    the socket no further: a parsed, queued request costs far more than its bytes."""
    release = asyncio.Event()
    started: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        started.append(scope["path"])
        await release.wait()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def scenario() -> None:
        config = Config(app=app, lifespan="off", log_level="warning")
        config.load()
        state = ServerState()
        protocol = DeadlineProtocol(
            config, state, {}, header_timeout=10, body_timeout=10, max_head=65536
        )
        transport = _Transport()
        protocol.connection_made(transport)
        request = b"GET /%05d HTTP/1.1\r\nHost: x\r\n\r\n"
        protocol.data_received(b"".join(request % i for i in range(10_000)))
        await asyncio.sleep(0)
        assert started == ["/00000"]
        assert 1 <= len(protocol.pipeline) <= 2 * 4096 // len(request % 0)
        assert not transport.reading
        # Answered one by one, every request is served, in order.
        release.set()
        while len(started) < 10_000 and not transport.closed:
            await asyncio.sleep(0)
            assert len(protocol.pipeline) <= 2 * 4096 // len(request % 0)
        assert started == [f"/{i:05d}" for i in range(10_000)]
        assert b"".join(transport.written).count(b"HTTP/1.1 204 ") >= 9_999
        protocol.connection_lost(None)
        for task in list(state.tasks):
            await task

    asyncio.run(scenario())
