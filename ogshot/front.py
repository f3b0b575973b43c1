"""The front of the app: what every request goes through first, in one layer.

It sits outside every other layer, the framework's own included, and does in one pass over
the request, with one wrapper around ``send``:

- who the client is (``clients.py``: the peer, or what a trusted proxy says), into
  ``scope["client"]``, ``scope["scheme"]`` and :data:`~ogshot.clients.CLIENT`;
- the request id (``X-Request-Id`` when sane, else a new one), echoed on every answer;
- the HTTP hardening of ``protocol.py``: an absolute-form target served as its path, ``HEAD``
  answered by the ``GET`` route without the body, a request with both ``Transfer-Encoding``
  and ``Content-Length`` answered and its connection closed;
- the request's metrics and its access log line (``ops.py``), for every answer: this layer's
  own and the framework's 500s included.

And a ``GET|HEAD /og.png`` request is answered right here (:class:`CardRoad`, which
:class:`ogshot.api.CardHits` is): a card fresh in memory for a query seen before at once, the
most common request by far; any other card once found or made, with the same answers (errors
included) as the app's route would give. Neither meets another layer. A request that carries a
body (``Content-Length`` or ``Transfer-Encoding``) never takes that road, so the body cap and the
framing rule still see it.
"""

from __future__ import annotations

import atexit
import logging
import time
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import logs, metrics
from .clients import CLIENT, ClientRule
from .ops import QUIET_ROUTES, access_fields, route_of
from .protocol import CLOSE, origin_form

access_log = logging.getLogger("ogshot.access")
#: The access lines, written a moment after their answers (see logs.LaterLines).
ACCESS_LINES = logs.LaterLines(
    access_log, lambda ctx: (logs.access_message(ctx), access_fields(ctx))
)
atexit.register(ACCESS_LINES.flush)
log = logging.getLogger(__name__)

#: A ready answer: status, raw headers (never changed by the caller), body.
Reply = tuple[int, list[tuple[bytes, bytes]], bytes]


class CardRoad(Protocol):
    """Answers ``GET|HEAD /og.png`` requests without a body (``api.CardHits``)."""

    def hit(self, scope: Scope) -> Reply | None:
        """The reply from memory, at once, or None."""

    async def made(self, scope: Scope) -> Reply | None:
        """The reply once the card is found or made, or its error; None lets the app answer."""

_FRAMING_LENGTH = 1
_FRAMING_CHUNKED = 2
_FRAMING_BOTH = _FRAMING_LENGTH | _FRAMING_CHUNKED


class Front:
    """Outermost layer of the app, outside the framework's own; see the module docstring."""

    def __init__(self, app: ASGIApp, rule: ClientRule, cards: CardRoad) -> None:
        self.app = app
        self.rule = rule
        self.cards = cards

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        given_id = None
        framing = 0
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if given_id is None:
                    given_id = value.decode("latin-1")
            elif name == b"content-length":
                framing |= _FRAMING_LENGTH
            elif name == b"transfer-encoding":
                framing |= _FRAMING_CHUNKED
        rid = logs.request_id(given_id)
        ctx = logs.begin(rid)
        rid_header = (b"x-request-id", rid.encode("ascii"))
        method = scope["method"]
        head = method == "HEAD"

        status = 500
        cache: str | None = None
        figures = metrics.FIGURES
        figures.in_progress += 1
        token = None
        try:
            # Inside: a fault here is counted and logged like any other (this layer sits
            # outside the framework's handler of the unexpected).
            scope, address = self.rule.apply(scope)
            token = CLIENT.set(address)
            scope = origin_form(scope)
            if not framing and scope["path"] == "/og.png" and method in ("GET", "HEAD"):
                try:
                    reply = self.cards.hit(scope)
                except Exception:
                    # The card's own road answers instead (and, meeting the same fault, logs it
                    # and answers 500).
                    log.warning("the cache hit's short road failed", exc_info=True)
                    reply = None
                if reply is not None:
                    cache = "hit"
                else:
                    reply = await self.cards.made(scope)
                    if reply is not None:
                        cache = _cache_of(reply[1])
                if reply is not None:
                    status, headers, body = reply
                    await send(
                        {
                            "type": "http.response.start",
                            "status": status,
                            "headers": [*headers, rid_header],
                        }
                    )
                    await send({"type": "http.response.body", "body": b"" if head else body})
                    return

            if head:
                scope = {**scope, "method": "GET"}
            # Both lengths given: a possible smuggling attempt, answered and then closed.
            extra = [CLOSE, rid_header] if framing == _FRAMING_BOTH else [rid_header]

            async def observed_send(message: Message) -> None:
                nonlocal status, cache
                if message["type"] == "http.response.start":
                    status = message["status"]
                    headers = message.get("headers", [])
                    cache = _cache_of(headers)
                    # A new list: the app may hand over header lists it keeps and reuses.
                    message = {**message, "headers": [*headers, *extra]}
                elif head and message["type"] == "http.response.body":
                    message = {**message, "body": b""}
                await send(message)

            await self.app(scope, receive, observed_send)
        finally:
            figures.in_progress -= 1
            if token is not None:
                CLIENT.reset(token)
            elapsed = time.perf_counter() - start
            route = ctx.get("route") or route_of(scope)
            figures.request_done(route, status, elapsed, cache)
            level = logging.DEBUG if route in QUIET_ROUTES else logging.INFO
            if access_log.isEnabledFor(level):
                # Never the query string in the line: it holds signatures.
                ctx.update(
                    method=method,
                    path=scope["path"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    cache=cache,
                )
                ACCESS_LINES.add(level, ctx)


def _cache_of(headers: list[tuple[bytes, bytes]]) -> str | None:
    """How a card was served, from its reply's ``X-Ogshot-Cache`` header (None on an error)."""
    for name, value in headers:
        if name == b"x-ogshot-cache":
            return value.decode("latin-1")
    return None
