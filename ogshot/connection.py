"""The connection protocol ``ogshot serve`` runs: uvicorn's h11 protocol with two deadlines.

uvicorn bounds only the idle time between requests. A client that sends one header byte every
few seconds, or declares a body and never sends it, holds a connection (and, for a body, a
request task) for as long as it likes. Here each request gets:

- ``header_timeout``: from the first byte of a request (or the end of the previous answer) to
  the end of its headers. Past it the client gets a 408 when it had started a request, and the
  connection is closed.
- ``body_timeout``: from the end of the headers to the end of the body, whether or not the app
  reads it. Past it the connection is closed (the app sees a disconnect); a 408 goes out first
  when no answer has started.

Both are totals, not gaps between bytes: dripping bytes does not extend them.

It also paces clients that were refused (see ``pacing.py``): when a request's first bytes come
from a client told to come back later (429/503 with ``Retry-After``) before that time, the
connection stops reading for what is left of it, at most ``OGSHOT_REFUSAL_PAUSE`` seconds, and
then serves the request as any other. Neither deadline runs while a request is held.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from .errors import RequestTimeout
from .pacing import PACER, Pacer

_TIMEOUT = RequestTimeout("the request did not arrive in time")
_TIMEOUT_BODY = json.dumps({"error": _TIMEOUT.code, "detail": _TIMEOUT.detail}).encode()
_TIMEOUT_REPLY = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: application/json\r\n"
    b"cache-control: no-store\r\n"
    b"connection: close\r\n"
    b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY
)


class _HeadWithBody:
    """A card answer's view of the connection: its head waits for the first piece of its body,
    and both leave in one write.

    uvicorn writes a response's head as soon as the app starts the response, then the body: on
    a cold card, two sends, each waking the client, a fifth of a millisecond apart. Only for
    ``GET|HEAD /og.png``, whose answers are one head and one body, never a stream, and whose
    requests carry no body (so no ``100 Continue`` to hold back either).
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        if not self._started:
            self._started = True
            self._head = data
            return
        if self._head is not None:
            data, self._head = self._head + data, None
        self._transport.write(data)

    def close(self) -> None:
        if self._head is not None:  # a head whose body never came still goes out
            self._transport.write(self._head)
            self._head = None
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class DeadlineH11Protocol(H11Protocol):
    """One connection; see the module docstring. Built by uvicorn for each accepted socket."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        header_timeout: float,
        body_timeout: float,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: str | None = None
        pacer = app_state.get(PACER)
        self._pacer: Pacer | None = pacer if isinstance(pacer, Pacer) else None
        #: A request's first bytes held back while its client is paced, and the timer that ends it.
        self._held: list[bytes] | None = None
        self._release: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._follow()

    def data_received(self, data: bytes) -> None:
        if self._held is not None:
            self._held.append(data)  # already on its way when reading paused: it waits too
            return
        if self._pacer is not None and self._at_request_start():
            peer = self.client[0] if self.client else None
            pause = self._pacer.hold_for(peer, data)
            if pause > 0:
                self._hold(data, pause)
                return
        super().data_received(data)
        self._join_head_and_body()
        self._follow()

    def _join_head_and_body(self) -> None:
        """Give a new ``GET|HEAD /og.png`` cycle the one-write view of the connection."""
        cycle = self.cycle
        if (
            cycle is not None
            and not cycle.response_started
            and cycle.scope["path"] == "/og.png"
            and cycle.scope["method"] in ("GET", "HEAD")
            and not isinstance(cycle.transport, _HeadWithBody)
        ):
            cycle.transport = _HeadWithBody(self.transport)  # type: ignore[assignment]

    def _at_request_start(self) -> bool:
        """Between two requests: the last answer is out and nothing of the next one is read."""
        return (
            self.conn.their_state is h11.IDLE
            and not self.conn.trailing_data[0]
            and (self.cycle is None or self.cycle.response_complete)
        )

    def _hold(self, data: bytes, pause: float) -> None:
        self._held = [data]
        self.transport.pause_reading()
        self._unset_keepalive_if_required()
        self._arm(None)
        self._release = self.loop.call_later(pause, self._resume)

    def _resume(self) -> None:
        self._release = None
        held, self._held = self._held, None
        if held is None or self.transport.is_closing():
            return
        self.transport.resume_reading()
        super().data_received(b"".join(held))
        self._join_head_and_body()
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start the next, pipelined request's cycle
        self._join_head_and_body()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._arm(None)
        if self._release is not None:
            self._release.cancel()
            self._release = None
        self._held = None
        super().connection_lost(exc)

    def _follow(self) -> None:
        """Keep the one deadline in step with what the peer owes us now."""
        if self.transport.is_closing():
            self._arm(None)
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            self._arm("headers")
        elif state is h11.SEND_BODY:
            self._arm("body")
        else:
            self._arm(None)

    def _arm(self, waiting_for: str | None) -> None:
        if waiting_for == self._waiting_for:
            return  # already counting down for this part: more bytes do not extend it
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._waiting_for = waiting_for
        if waiting_for is not None:
            delay = self.header_timeout if waiting_for == "headers" else self.body_timeout
            self._deadline = self.loop.call_later(delay, self._expired)

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        answering = cycle is not None and not cycle.response_complete
        if self._waiting_for == "headers":
            started = bool(self.conn.trailing_data[0])
            if started and not answering:
                self.transport.write(_TIMEOUT_REPLY)
        elif cycle is not None and not cycle.response_started:
            self.transport.write(_TIMEOUT_REPLY)
        if answering:
            # The app may still be reading or writing: it sees a disconnect and sends nothing more.
            cycle.disconnected = True
            cycle.message_event.set()
        self._waiting_for = None
        self.transport.close()
