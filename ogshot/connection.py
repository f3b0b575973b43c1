"""The connection protocol ``ogshot serve`` runs: uvicorn's httptools protocol, with bounds.

uvicorn parses requests with llhttp (``httptools``) and bounds only the idle time between
requests. A client that sends one header byte every few seconds, streams headers without end,
or declares a body and never sends it, holds a connection (and, for a body, a request task) for
as long as it likes, and an endless head grows in memory all that time. Here each request gets:

- ``header_timeout``: from the first byte of a request (or the end of the previous answer) to
  the end of its headers. Past it the client gets a 408 when it had started a request, and the
  connection is closed.
- ``body_timeout``: from the end of the headers to the end of the body, whether or not the app
  reads it. Past it the connection is closed (the app sees a disconnect); a 408 goes out first
  when no answer has started.
- ``max_head``: the bytes of its head (request line and headers). Past it, or when the parser
  rejects the request (bad syntax, ``Transfer-Encoding`` with ``Content-Length``, a NUL in the
  target...), the client gets a 400 and the connection is closed, after the answers to the
  requests before it on the connection: a rejected request never cuts into them.

Both deadlines are totals, not gaps between bytes: dripping bytes does not extend them.

A connection left idle after an answer (no byte of a next request) is closed quietly after
uvicorn's keep-alive timeout (``timeout_keep_alive``, 5 s), kept here on the same timer as the
deadlines: one timer per connection, set again only when it must ring sooner.

Pipelined requests: the parser reads every request it is given at once, answered or not. Once a
request waits behind another's answer, the rest of what was read waits unparsed and the socket
is not read until the answers before it are out: a client cannot queue requests faster than
they are answered.

It also paces clients that were refused (see ``pacing.py``): when a request's first bytes come
from a client told to come back later (429/503 with ``Retry-After``) before that time, the
connection stops reading for what is left of it, at most ``OGSHOT_REFUSAL_PAUSE`` seconds, and
then serves the request as any other. Neither deadline runs while a request is held.

There is no protocol switch: a request asking to upgrade (WebSocket, ``h2c``) is answered as
plain HTTP and the connection closes after its answer.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from .errors import BadRequest, OgshotError, RequestTimeout
from .pacing import PACER, Pacer


def _reply(error: OgshotError) -> bytes:
    """A whole JSON error answer that closes the connection."""
    body = json.dumps({"error": error.code, "detail": error.detail}).encode()
    return (
        b"HTTP/1.1 %d %s\r\n"
        b"content-type: application/json\r\n"
        b"cache-control: no-store\r\n"
        b"connection: close\r\n"
        b"content-length: %d\r\n\r\n%s" % (error.status, _REASONS[error.status], len(body), body)
    )


_REASONS = {400: b"Bad Request", 408: b"Request Timeout"}
_TIMEOUT_REPLY = _reply(RequestTimeout("the request did not arrive in time"))
_MALFORMED_REPLY = _reply(BadRequest("the request is not valid HTTP/1.1"))
_HEAD_TOO_LARGE_REPLY = _reply(BadRequest("the request line and headers are too large"))

#: How early the timer may ring for a deadline and still end it (the loop's clock and the
#: timer's may differ by a hair).
_EARLY = 0.001

#: Bytes given to the parser at once (see ``DeadlineProtocol._feed``).
_PIECE = 4096

#: Where the parser is in the request it reads now.
_IDLE, _HEAD, _BODY = "idle", "head", "body"


class _Rejected(Exception):
    """Raised inside a parser callback to stop it at a request that is refused."""


class _HeadWithBody:
    """A card answer's view of the connection: its head waits for the first piece of its body,
    and both leave in one write.

    uvicorn writes a response's head as soon as the app starts the response, then the body: on
    a cold card, two sends, each waking the client, a fifth of a millisecond apart. Only for
    ``GET /og.png``, whose answers are one head and one body (empty for a 304), never a stream,
    and whose requests carry no body (so no ``100 Continue`` to hold back either). A ``HEAD``
    answer is its head alone, already one write, and no body write would ever release it.
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


class DeadlineProtocol(HttpToolsProtocol):
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
        max_head: int,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_head = max_head
        #: What the peer owes now ("headers", "body" or None) and the loop time it is due by.
        self._waiting_for: str | None = None
        self._due: float | None = None
        #: When a connection left idle after an answer is closed (uvicorn's keep-alive
        #: timeout), or None once the next request has begun.
        self._idle_due: float | None = None
        #: The connection's one timer (see ``_ring``).
        self._alarm: asyncio.TimerHandle | None = None
        self._phase = _IDLE
        #: Bytes of the current head read so far (see ``_feed``).
        self._head_bytes = 0
        #: Whether ``_head_bytes`` counts whole pieces: false for a head that began after another
        #: request ended within the same piece, until that piece is counted.
        self._whole_pieces = True
        self._ended_in_piece = False
        #: Bytes read but not parsed yet, because a request waits behind another's answer.
        self._unparsed = bytearray()
        #: The answer to a request the parser (or a check of ours) rejects.
        self._rejection = _MALFORMED_REPLY
        #: The answer owed once the answers before it are out: the connection reads no more.
        self._refusal: bytes | None = None
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
        if self._refusal is not None:
            return  # nothing after a rejected request is read
        if self._pacer is not None and self._at_request_start():
            peer = self.client[0] if self.client else None
            pause = self._pacer.hold_for(peer, data)
            if pause > 0:
                self._hold(data, pause)
                return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        """Parse ``data``, a piece at a time, until a request waits behind another's answer.

        The parser reads every request it is given at once, however many answers are owed
        before them: fed a flood of pipelined requests, it would queue them without end. So
        once one waits, the rest of the bytes wait unparsed (and the socket unread) until the
        answers before it are out.
        """
        self._idle_due = None  # the next request has begun: the connection is no longer idle
        if self._unparsed:
            self._unparsed += data
            self.flow.pause_reading()
            return
        if len(data) <= _PIECE:
            self._parse(data)
        else:
            view = memoryview(data)
            for start in range(0, len(data), _PIECE):
                if not self._parse(view[start : start + _PIECE]):
                    break
                if self.pipeline and start + _PIECE < len(data):
                    self._unparsed = bytearray(view[start + _PIECE :])
                    self.flow.pause_reading()
                    break
        self._follow()

    def _parse(self, piece: bytes | memoryview) -> bool:
        """Feed one piece to the parser; False when the connection reads no more."""
        self._ended_in_piece = False
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserUpgrade:
            # No protocol switch: the request is answered as plain HTTP, then the connection
            # closes (the parser reads nothing after an upgrade request).
            self._refuse(None)
            return False
        except httptools.HttpParserError:
            self._refuse(self._rejection)
            return False
        if self._phase == _HEAD:  # a head still incomplete at the end of this piece
            if self._whole_pieces:
                self._head_bytes += len(piece)
            else:  # it began mid-piece, after another request: count what it holds so far
                self._head_bytes = self._head_size()
                self._whole_pieces = True
            if self._head_bytes > self.max_head:
                self._refuse(_HEAD_TOO_LARGE_REPLY)
                return False
        return True

    def _head_size(self) -> int:
        """Bytes of the head parsed so far: target, header names and values, separators."""
        size = len(self.url) + 16  # the request line's method, spaces, version and line end
        for name, value in self.headers:
            size += len(name) + len(value) + 4
        return size

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEAD
        self._head_bytes = 0
        self._whole_pieces = not self._ended_in_piece

    def on_headers_complete(self) -> None:
        if self._head_size() > self.max_head:  # a head that came in whole reads is counted here
            self._rejection = _HEAD_TOO_LARGE_REPLY
            raise _Rejected  # stops the parser
        hosts = sum(name == b"host" for name, _ in self.headers)
        if hosts != 1 and self.parser.get_http_version() == "1.1":
            raise _Rejected  # HTTP/1.1 asks for exactly one Host (RFC 9112, section 3.2)
        self._phase = _BODY
        self._arm(None)  # the head is in: its deadline is done
        super().on_headers_complete()
        cycle = self.cycle
        if (
            cycle is not None
            and cycle.scope is self.scope
            and self.scope["path"] == "/og.png"
            and self.scope["method"] == "GET"
        ):
            cycle.transport = _HeadWithBody(self.transport)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        self._ended_in_piece = True
        self._arm(None)  # the body is in: its deadline is done
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self.pipeline or self.transport.is_closing():
            super().on_response_complete()  # starts the next, pipelined request's cycle
        else:
            # uvicorn's own steps here, without its idle timer: the alarm keeps that time.
            self.server_state.total_requests += 1
            self.flow.resume_reading()
            self._idle_due = self.loop.time() + self.timeout_keep_alive
            self._ring_by(self._idle_due)
        if self.transport.is_closing():
            return
        if self._refusal is not None:
            if not self._answering():
                self.transport.write(self._refusal)
                self.transport.close()
        elif self.pipeline:
            self.flow.pause_reading()  # uvicorn reads on after each answer; not while some wait
        elif self._unparsed:
            unparsed, self._unparsed = bytes(self._unparsed), bytearray()
            self.flow.resume_reading()
            self._feed(unparsed)
        self._follow()

    def _answering(self) -> bool:
        """Whether an answer is owed or on its way for a request read before."""
        return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    def _refuse(self, reply: bytes | None) -> None:
        """Read no more; send ``reply`` (if any) and close once the answers before it are out."""
        self._arm(None)
        cycle = self.cycle
        if self._phase == _BODY and cycle is not None and not cycle.response_complete:
            # The bad part is the body of a request already handed to the app.
            if self.pipeline and self.pipeline[0][0] is cycle:
                self.pipeline.popleft()  # still queued behind other answers: it never runs
            else:
                # Running: it sees a disconnect, and its answer gives way to this one.
                cycle.disconnected = True
                cycle.message_event.set()
                if reply is not None and not cycle.response_started:
                    self.transport.write(reply)
                self.transport.close()
                return
        if not self._answering():
            if reply is not None:
                self.transport.write(reply)
            self.transport.close()
            return
        self._refusal = reply if reply is not None else b""
        self._unparsed = bytearray()
        self.transport.pause_reading()

    # Pacing

    def _at_request_start(self) -> bool:
        """Between two requests: the last answer is out and nothing of the next one is read."""
        return self._phase == _IDLE and not self._answering() and not self._unparsed

    def _hold(self, data: bytes, pause: float) -> None:
        self._held = [data]
        self.transport.pause_reading()
        self._idle_due = None
        self._arm(None)
        self._release = self.loop.call_later(pause, self._resume)

    def _resume(self) -> None:
        self._release = None
        held, self._held = self._held, None
        if held is None or self.transport.is_closing():
            return
        self.transport.resume_reading()
        self._feed(b"".join(held))

    def connection_lost(self, exc: Exception | None) -> None:
        self._arm(None)
        self._idle_due = None
        if self._alarm is not None:
            self._alarm.cancel()
            self._alarm = None
        if self._release is not None:
            self._release.cancel()
            self._release = None
        self._held = None
        super().connection_lost(exc)

    # Deadlines

    def _follow(self) -> None:
        """Keep the one deadline in step with what the peer owes us now."""
        if self.transport.is_closing() or self._refusal is not None or self.pipeline:
            # Requests queued behind an answer are not read on until it is out: nothing is owed.
            self._arm(None)
        elif self._phase == _BODY:
            self._arm("body")
        elif self.cycle is None or self.cycle.response_complete:
            self._arm("headers")
        else:
            self._arm(None)  # answering: the next request's time starts when the answer is out

    def _arm(self, waiting_for: str | None) -> None:
        """Count down for ``waiting_for`` (None: nothing is owed), unless already counting down
        for it: more bytes do not extend a deadline.

        Arming writes down when the deadline falls due, and moves the connection's one timer
        only when it would ring too late for it; a deadline disarmed leaves the timer set, to
        find nothing due when it rings. A keep-alive connection answering request after request
        sets a timer every few seconds, rather than two per request (this deadline and
        uvicorn's idle timer, each made and cancelled again) on a cold card's path.
        """
        if waiting_for == self._waiting_for:
            return
        self._waiting_for = waiting_for
        if waiting_for is None:
            self._due = None
            return
        delay = self.header_timeout if waiting_for == "headers" else self.body_timeout
        self._due = self.loop.time() + delay
        self._ring_by(self._due)

    def _ring_by(self, when: float) -> None:
        """Have the timer ring at ``when`` at the latest."""
        alarm = self._alarm
        if alarm is not None:
            if alarm.when() <= when:
                return
            alarm.cancel()
        self._alarm = self.loop.call_at(when, self._ring)

    def _ring(self) -> None:
        """The timer: end what is due by now, else set it again for what is due next."""
        self._alarm = None
        if self.transport.is_closing():
            return
        now = self.loop.time() + _EARLY
        if self._idle_due is not None and self._idle_due <= now:
            self._idle_due = None
            if self._at_request_start():
                self.transport.close()  # idle since its last answer: it ends without a word
                return
        if self._due is not None and self._due <= now:
            self._expired()
            return
        later = [due for due in (self._due, self._idle_due) if due is not None]
        if later:
            self._ring_by(min(later))

    def _expired(self) -> None:
        cycle = self.cycle
        answering = cycle is not None and not cycle.response_complete
        if self._waiting_for == "headers":
            if self._phase == _HEAD and not answering:
                self.transport.write(_TIMEOUT_REPLY)
        elif cycle is not None and not cycle.response_started:
            self.transport.write(_TIMEOUT_REPLY)
        if answering:
            # The app may still be reading or writing: it sees a disconnect and sends nothing more.
            cycle.disconnected = True
            cycle.message_event.set()
        self._waiting_for = self._due = None
        self.transport.close()
