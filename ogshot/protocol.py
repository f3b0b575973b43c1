"""The HTTP layer under every route: request targets, methods, message framing, body size.

Applied outside everything else in the app, so that a route added later gets all of it
without doing anything:

- by the front layer (``front.py``), through :func:`origin_form` and :data:`CLOSE`:
    - an absolute-form request target (``GET http://host/og.png?… HTTP/1.1``, RFC 9112 §3.2.2)
      is served as the origin-form path it names, and its authority replaces ``Host``;
    - ``HEAD`` is answered by the ``GET`` route with the body left out (RFC 9110 §9.3.2), so
      every GET route answers HEAD;
    - a request carrying both ``Transfer-Encoding`` and ``Content-Length`` is answered and its
      connection closed (RFC 9112 §6.3: such a message may be an attempt at request smuggling).
- :class:`BodyLimit`: a request body larger than its cap gets a 413 JSON error: at once when
  ``Content-Length`` says so, while streaming otherwise (chunked bodies are counted as they
  come, never buffered past the cap). One default cap, with overrides per path.

:func:`allowed_methods` gives a 405's ``Allow`` header from the routes themselves.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import PayloadTooLarge
from .headers import digits, field_value

log = logging.getLogger("ogshot")

#: ``scheme://authority`` then the path, in an absolute-form request target.
_ABSOLUTE_FORM = re.compile(rb"[A-Za-z][A-Za-z0-9+.\-]*://([^/?#]*)([^?#]*)")

#: The order ``Allow`` lists methods in.
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

#: Sent with an answer after which the connection cannot carry another request.
CLOSE = (b"connection", b"close")


def origin_form(scope: Scope) -> Scope:
    """The scope of an absolute-form request target as its origin-form path, the authority as
    its ``Host``; any other scope as it is."""
    raw_path: bytes | None = scope.get("raw_path")
    if not raw_path:  # optional in ASGI: then the decoded path, any character in it
        decoded: str = scope["path"]
        if decoded.startswith("/"):
            return scope
        raw_path = decoded.encode("utf-8", "surrogateescape")
    if raw_path.startswith(b"/"):
        return scope
    m = _ABSOLUTE_FORM.fullmatch(raw_path)
    if m is None:
        return scope
    authority = m.group(1).rpartition(b"@")[2]
    path = m.group(2) or b"/"
    headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
    if authority:
        headers.insert(0, (b"host", authority))
    return {
        **scope,
        "raw_path": path,
        "path": unquote(path.decode("latin-1")),
        "headers": headers,
    }


def allowed_methods(routes: Iterable[BaseRoute], path: str) -> list[str]:
    """The methods some route serves at ``path``, HEAD wherever GET is, in a fixed order.

    Asks the routes themselves (the router's own matching), so included routers and mounts
    count as they do when a request comes in.
    """
    routes = list(routes)
    allowed: list[str] = []
    for method in _METHOD_ORDER:
        scope: Scope = {
            "type": "http",
            "method": method,
            "path": path,
            "root_path": "",
            "query_string": b"",
            "headers": [],
        }
        if method == "HEAD" and "GET" in allowed:
            allowed.append(method)
        elif any(route.matches(scope)[0] is Match.FULL for route in routes):
            allowed.append(method)
    return allowed


class BodyLimit:
    """A cap on every request body: ``default`` bytes, or ``per_path[path]`` where given."""

    def __init__(self, app: ASGIApp, default: int, per_path: Mapping[str, int] | None = None):
        self.app = app
        self.default = default
        self.per_path = dict(per_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.per_path.get(scope["path"], self.default)
        declared = field_value(scope["headers"], b"content-length")
        length = digits(declared) if declared is not None else None
        if length is not None and length > cap:
            await _too_large(send, cap)
            return

        received = 0
        answered = False

        async def capped_receive() -> Message:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    if not started:
                        answered = True
                        await _too_large(send, cap)
                    return {"type": "http.disconnect"}
            return message

        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the 413 has gone out: whatever the app says now is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, guarded_send)
        except Exception:
            if not answered:
                raise
            # The app stumbled on the disconnect it was given after the 413: nothing to report.
            log.debug("request body over the cap on %s", scope["path"], exc_info=True)


async def _too_large(send: Send, cap: int) -> None:
    exc = PayloadTooLarge(f"the request body is larger than {cap} bytes")
    body = json.dumps({"error": exc.code, "detail": exc.detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": exc.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                # The rest of the body is not read: the connection cannot carry another request.
                CLOSE,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
