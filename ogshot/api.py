"""The FastAPI app: parse requests, apply HTTP semantics, call the service.

``create_app()`` is the factory that ``ogshot serve`` (and any ASGI server) runs. Settings are read
once, here, unless a test passes its own.
"""

from __future__ import annotations

import gc
import logging
import time
from codecs import escape_decode
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote

from cachetools import LRUCache
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from . import __version__, ghost, metrics, openapi, ops, pages, prerender, robots, screenshots
from . import card as card_limits
from .access import warn_if_open
from .card import check_raw_lengths, parse_card
from .clients import ClientRule, parse_networks
from .conditional import byte_range, none_match
from .errors import OgshotError, UriTooLong
from .front import ACCESS_LINES, Front, Reply
from .headers import Conditions
from .pacing import PACER, Pacer
from .protocol import BodyLimit, allowed_methods
from .service import CardResult, CardService
from .settings import Settings, load_settings
from .signing import Signer

log = logging.getLogger("ogshot")

#: Longest query string accepted: every card within the documented limits fits, however it is
#: escaped (derived from the limits in card.py).
MAX_QUERY_BYTES = card_limits.MAX_QUERY_BYTES

_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    414: "uri_too_long",
    422: "invalid_parameter",
}


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The one shape of every error: JSON, never cached."""
    return JSONResponse(
        {"error": code, "detail": detail},
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def error_of(exc: OgshotError) -> JSONResponse:
    """The answer to one of ogshot's own errors."""
    return error_response(exc.status, exc.code, exc.detail, exc.headers())


def unexpected_error(path: str) -> JSONResponse:
    """The answer to a fault nobody expected, logged with its traceback (call it from the
    ``except`` block that caught it)."""
    log.exception("unexpected error on %s", path)
    return error_response(500, "internal", "an unexpected error occurred")


class QueryLimit:
    """Refuse over-long query strings before any parsing happens."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_QUERY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(scope.get("query_string", b"")) > self.max_bytes:
            exc = UriTooLong(f"the query string is longer than {self.max_bytes} bytes")
            await error_of(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None, *, service: CardService | None = None) -> FastAPI:
    """Build the ASGI app. Tests pass their own settings or a ready service."""
    settings = settings or load_settings()
    client_rule = ClientRule(parse_networks(settings.trusted_proxies))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        svc = service or CardService.from_settings(settings)
        app.state.service = hits.service = svc
        # Everything loaded so far (fonts, layouts, the framework) lives as long as the process:
        # keep it out of the collector's sweeps, which otherwise slow every request a little.
        gc.freeze()
        try:
            async with ops.running(settings, svc):
                # The server hands this state to each connection (connection.py reads the pacer).
                yield {PACER: pacer_for(app, svc, client_rule, settings.refusal_pause)}
        finally:
            try:
                await svc.aclose()
            finally:
                ACCESS_LINES.flush()  # the last answers' lines, before the process goes

    # FastAPIOffline: FastAPI whose /docs and /redoc load their scripts from the app, not a CDN.
    app = FastAPIOffline(
        title="ogshot",
        version=__version__,
        summary="Social preview images: page captures with the title set over them.",
        lifespan=lifespan,
        # `/og.png/` is not `/og.png`: a redirect would build its Location from the client's Host.
        redirect_slashes=False,
        # ogshot reports through its own metrics; FastAPI's OpenTelemetry hooks would look up
        # global providers on every request, even unconfigured, which costs more than a cache hit.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.signer = Signer.from_settings(settings)
    # The clock signed URLs' `exp` is checked against (a seam: tests move it, not the wall).
    app.state.clock = time.time
    warn_if_open(settings, app.state.signer)
    app.state.card_keys = LRUCache(maxsize=KEY_MEMO_ENTRIES)
    hits = CardHits(app.state)
    _install_error_handlers(app)
    _install_routes(app)
    app.include_router(screenshots.router)
    app.include_router(prerender.router)
    app.include_router(ghost.router)
    app.include_router(ops.probes)
    if settings.metrics_port is None:
        app.include_router(ops.metrics_router)  # else on its own port, served by `ogshot serve`
    app.add_middleware(ops.RouteNote)
    app.include_router(robots.router)
    app.include_router(pages.router)
    openapi.install(app)
    app.add_middleware(QueryLimit)
    # Every route, present and future, gets the body cap.
    app.add_middleware(
        BodyLimit,
        default=settings.body_max_bytes,
        per_path={
            **screenshots.BODY_LIMITS,
            **prerender.body_limits(settings),
            **ghost.BODY_LIMITS,
        },
    )
    # Outermost of all, outside the framework's own layers too (its 500s are answers like any
    # other): who the client is, the request id, HEAD and the target forms, the metrics and log
    # line of every answer; and a card fresh in memory, answered there, meeting no other layer.
    # FastAPIOffline makes a plain FastAPI object, hence the stack's builder wrapped here.
    build_stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: Front(  # type: ignore[method-assign]
        build_stack(), client_rule, hits
    )
    return app


def pacer_for(app: FastAPI, svc: CardService, rule: ClientRule, pause: float) -> Pacer:
    """The connections' pacer: refused clients as the service's admission remembers them, and a
    repeat query of a card fresh in memory (the front layer's hit) never held."""
    memo: LRUCache[bytes, str] = app.state.card_keys

    def fresh_hit(method: bytes, target: bytes) -> bool:
        path, _, query = target.partition(b"?")
        if path != b"/og.png" or method not in (b"GET", b"HEAD"):
            return False
        key = memo.get(query)
        return key is not None and svc.fresh_entry(key) is not None

    return Pacer(svc.admission.refused, rule, pause, fresh_hit, on_hold=metrics.request_paced)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OgshotError)
    async def ogshot_error(request: Request, exc: OgshotError) -> JSONResponse:
        return error_of(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "body")]
        name = ".".join(loc) or "request"
        detail = f"'{name}' {str(err.get('msg', 'is invalid')).removeprefix('Value error, ')}"
        return error_response(422, "invalid_parameter", detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _ERROR_CODES.get(exc.status_code, "error")
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        headers = dict(exc.headers or {})
        if exc.status_code == 404:
            detail = f"no such endpoint: {request.url.path}"
        elif exc.status_code == 405:
            allow = allowed_methods(request.app.routes, request.url.path)
            headers["Allow"] = ", ".join(allow)
            detail = f"{request.url.path} answers {', '.join(allow)}"
        return error_response(exc.status_code, code, detail, headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return unexpected_error(request.url.path)


def _install_routes(app: FastAPI) -> None:
    @app.get(
        "/og.png",
        response_class=Response,
        responses={
            200: {
                "description": "The card: image/png, image/jpeg or image/webp as `format` asks",
                "content": openapi.image_content("image/png"),
            },
            206: {
                "description": "One byte range of the card (a single satisfiable `Range`)",
                "content": openapi.image_content("image/png"),
            },
            304: {"description": "Not modified: `If-None-Match` matched the ETag"},
            **openapi.error_responses(403, 404, 429, 503),
        },
        openapi_extra=openapi.card_query(),
    )
    async def og_image(request: Request) -> Response:
        """A 1200×630 social card. ``Card`` validates the parameters all at once, so every bad
        value gets the same error shape."""
        # The front layer answers GET and HEAD without a body itself (CardHits); this is the
        # same road, for the requests that reach the router all the same (those with a body).
        result = await card_for_query(request.app.state, request.scope["query_string"])
        return card_response(request, result)

    @app.get(
        "/templates",
        responses={200: {"content": {"application/json": {}, "text/html": {}}}},
    )
    async def templates(request: Request) -> Any:
        """The layouts this server knows: JSON, or a gallery page of sample cards when the
        client prefers HTML (a browser)."""
        if pages.prefers_html(request.headers.get("accept")):
            return pages.gallery(request)
        svc: CardService = request.app.state.service
        return {
            "templates": [
                {
                    "name": layout.name,
                    "description": layout.description,
                    "version": layout.version,
                    "capture": layout.capture is not None,
                }
                for layout in svc.layouts
            ]
        }



async def card_for_query(state: Any, query: bytes) -> CardResult:
    """The card a raw query string asks for: parsed, verified, keyed, then made or found.

    The parameters are declared for the description only (openapi.card_query): ``Card``
    validates them all at once, so every bad value gets the same error shape.
    """
    params = query_params(query)
    check_raw_lengths(params)
    card = parse_card(params)
    state.signer.verify(card, params.get("exp"), params.get("sig"), now=state.clock())
    svc: CardService = state.service
    key = svc.key(card)
    if len(query) <= KEY_MEMO_QUERY_MAX and "exp" not in params:
        # The same query string means the same key (and, verified once, the same verdict on
        # its signature) for the life of this process. A URL that expires is checked anew
        # each time, so it is never memoised.
        state.card_keys[query] = key
    return await svc.card_for_key(key, card)


def query_params(query: bytes) -> dict[str, str]:
    """A raw query string's parameters, the last of a repeated name winning: what starlette's
    ``dict(QueryParams(query))`` gives (``parse_qsl`` with blank values kept), without its
    multidict, and without ``parse_qsl``'s general machinery: a cold card waits for this, and
    most of its pairs need no unescaping at all."""
    params: dict[str, str] = {}
    for pair in query.decode("latin-1").split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "+" in pair:
            name, value = name.replace("+", " "), value.replace("+", " ")
        if "%" in pair:
            name, value = _unquote(name), _unquote(value)
        params[name] = value
    return params


def _unquote(text: str) -> str:
    """``urllib.parse.unquote(text)``, in C for the common case: ASCII text in which every
    ``%`` starts an escape of two hex digits.

    Each ``%`` becomes ``\\x`` (every backslash doubled first), which ``codecs.escape_decode``
    turns into its byte; anything else (a stray ``%``, a raw non-ASCII character) raises, and
    ``unquote`` reads the text as it always would. 0.8 us for a title instead of 5.
    """
    if "%" not in text:
        return text
    try:
        escaped = text.replace("\\", "\\\\").replace("%", "\\x").encode("ascii")
        raw: bytes = escape_decode(escaped)[0]
    except (UnicodeEncodeError, ValueError):
        return unquote(text)
    return raw.decode("utf-8", "replace")


def card_reply(
    method: str, conditions: Conditions, result: CardResult
) -> tuple[int, dict[str, str], bytes]:
    """HTTP semantics for a card: ETag, 304, HEAD, Range, Cache-Control.

    The one place both roads to a card (the route and :class:`CardHits`) take their answer
    from, given the same :class:`~ogshot.headers.Conditions` read from the same raw headers.

    Returns the status, the headers (``Content-Type`` and ``Content-Length`` included, except on a
    304) and the body to send (empty for HEAD and 304).
    """
    entry = result.entry
    headers = {
        "ETag": entry.etag,
        "Cache-Control": result.cache_control,
        "X-Content-Type-Options": "nosniff",
        "X-Ogshot-Cache": result.source,
    }
    if result.fallback:
        headers["X-Ogshot-Fallback"] = result.fallback
    if none_match(conditions.if_none_match, entry.etag):
        return 304, headers, b""
    headers["Accept-Ranges"] = "bytes"
    size = len(entry.body)
    span = byte_range(conditions.range, conditions.if_range, entry.etag, size)
    body = entry.body
    status = 200
    if span is not None:
        start, end = span
        body = body[start : end + 1]
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Type"] = entry.media_type
    headers["Content-Length"] = str(len(body))
    return status, headers, (b"" if method == "HEAD" else body)


def card_response(request: Request, result: CardResult) -> Response:
    """The :func:`card_reply` for a request, as a response object."""
    conditions = Conditions.read(request.scope["headers"])
    status, headers, body = card_reply(request.method, conditions, result)
    return Response(body, status_code=status, headers=headers)


#: The memo from raw query strings to cache keys: entries, and the longest query it keeps
#: (longer ones, rare in practice, take the normal road every time). At most ~10 MB.
KEY_MEMO_ENTRIES = 8192
KEY_MEMO_QUERY_MAX = 1024


#: Encoded header blocks of recent plain (no Range) replies. The ETag stands for the bytes (so
#: their type and length); the rest of the key is every other input of the headers.
_HeaderKey = tuple[str, str, str | None, str, int]
_RAW_HEADERS: LRUCache[_HeaderKey, list[tuple[bytes, bytes]]] = LRUCache(maxsize=1024)


class CardHits:
    """The front layer's road for ``GET|HEAD /og.png`` (``front.py``): a card fresh in memory
    for a query seen before (:meth:`hit`), else the card found or made (:meth:`made`).

    Holds the memo, the app's state and, once the app has started, the service, so that a hit
    reads neither through the app's state object.
    """

    def __init__(self, state: Any) -> None:
        self.state = state
        self.memo: LRUCache[bytes, str] = state.card_keys
        self.service: CardService | None = None

    def hit(self, scope: Scope) -> Reply | None:
        """The reply when the query was seen before and its card is fresh in memory, or None."""
        service = self.service
        key = self.memo.get(scope["query_string"])
        if key is None or service is None:
            return None
        result = service.fresh_hit(key)
        if result is None:
            return None
        return _card_reply_raw(scope, result)

    async def made(self, scope: Scope) -> Reply | None:
        """The reply to any other card query: the card from the cache or made now
        (:func:`card_for_query`), or the JSON error; None leaves the request to the app (a
        query over its length limit, which the app refuses, or a service not started yet).

        The app's layers between the front and the card (the framework's handler of the
        unexpected, the body and query limits, the router) would add a tenth of a millisecond
        to every card made while its crawler waits, for nothing this request needs: it has no
        body, and its faults get the same answers here.
        """
        query = scope["query_string"]
        if self.service is None or len(query) > MAX_QUERY_BYTES:
            return None
        try:
            return _card_reply_raw(scope, await card_for_query(self.state, query))
        except OgshotError as exc:
            return _reply_of(error_of(exc))
        except Exception:
            # As the app's own handler of the unexpected answers it (_install_error_handlers).
            return _reply_of(unexpected_error(scope["path"]))


def _reply_of(response: Response) -> Reply:
    return response.status_code, response.raw_headers, bytes(response.body)


def _card_reply_raw(scope: Scope, result: CardResult) -> Reply:
    """:func:`card_reply` with its headers encoded; for a hit, the header block is reused."""
    conditions = Conditions.read(scope["headers"])
    memo_key: _HeaderKey | None = None
    # Only hits repeat: a card just made has an ETag no reply has carried yet.
    if conditions.range is None and result.source == "hit":
        # Without Range the reply is 200 or 304 and its headers depend on nothing else.
        status = 304 if none_match(conditions.if_none_match, result.entry.etag) else 200
        memo_key = (result.entry.etag, result.cache_control, result.fallback, result.source, status)
        raw = _RAW_HEADERS.get(memo_key)
        if raw is not None:
            body = b"" if status == 304 or scope["method"] == "HEAD" else result.entry.body
            return status, raw, body
    status, headers, body = card_reply(scope["method"], conditions, result)
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if memo_key is not None:
        _RAW_HEADERS[memo_key] = raw
    return status, raw, body
