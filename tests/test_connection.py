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


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _connection(
    header_timeout: float, keep_alive: float = 5.0
) -> tuple[DeadlineProtocol, _Transport]:
    config = Config(app=_ok, lifespan="off", log_level="warning", timeout_keep_alive=keep_alive)
    config.load()
    protocol = DeadlineProtocol(
        config, ServerState(), {}, header_timeout=header_timeout, body_timeout=10, max_head=65536
    )
    transport = _Transport()
    protocol.connection_made(transport)
    return protocol, transport


async def _answered(transport: _Transport, count: int) -> None:
    for _ in range(1000):
        if sum(w.startswith(b"HTTP/1.1 204") for w in transport.written) >= count:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"no {count} answers: {transport.written!r}")


def test_a_connection_left_idle_after_an_answer_ends_after_the_keep_alive_timeout() -> None:
    async def scenario() -> float:
        protocol, transport = _connection(header_timeout=10, keep_alive=0.2)
        protocol.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        await _answered(transport, 1)
        answered = asyncio.get_running_loop().time()
        while not transport.closed:
            await asyncio.sleep(0.01)
            assert asyncio.get_running_loop().time() - answered < 3, "still open"
        assert b"".join(transport.written[1:]) == b""  # nothing more said: it just ends
        return asyncio.get_running_loop().time() - answered

    assert 0.15 <= asyncio.run(scenario()) < 1.0


def test_a_request_begun_on_an_idle_connection_is_not_cut_by_the_keep_alive_timeout() -> None:
    async def scenario() -> None:
        protocol, transport = _connection(header_timeout=10, keep_alive=0.1)
        protocol.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        await _answered(transport, 1)
        protocol.data_received(b"GET /b HTTP/1.1\r\n")  # begun: the head is on its way
        await asyncio.sleep(0.3)
        assert not transport.closed
        protocol.data_received(b"Host: x\r\n\r\n")
        await _answered(transport, 2)

    asyncio.run(scenario())


def test_quick_requests_in_a_row_outlast_the_header_timeout_and_set_no_timer_each() -> None:
    """Each request's head is due within the header timeout of the answer before it, however
    long the connection has lived; and the connection keeps one timer for that, moved only when
    it must ring sooner, not one made and cancelled per request."""

    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        protocol, transport = _connection(header_timeout=0.2)
        timers = 0
        call_at = loop.call_at

        def counted(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal timers
            timers += getattr(callback, "__self__", None) is protocol  # not this test's sleeps
            return call_at(when, callback, *args, **kwargs)

        loop.call_at = counted  # type: ignore[method-assign]
        try:
            answers = 0
            for i in range(200):  # back to back
                protocol.data_received(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
                answers += 1
                await _answered(transport, answers)
            for i in range(5):  # 0.5 s more, two and a half header timeouts
                await asyncio.sleep(0.1)
                protocol.data_received(b"GET /late%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
                answers += 1
                await _answered(transport, answers)
                assert not transport.closed
            start = loop.time()  # then nothing: the header deadline ends it
            while not transport.closed:
                await asyncio.sleep(0.01)
                assert loop.time() - start < 3, "the header deadline never ended it"
        finally:
            del loop.call_at
        return timers

    # About one per header timeout that passed, not one or two for each of the 205 requests.
    assert asyncio.run(scenario()) <= 10

