"""``POST /hooks/ghost``: Ghost calls it when a post is published or edited; the post's card is
made into the cache before anyone shares the link.

Ghost signs each webhook call with the secret set on the webhook (Ghost Admin → Settings →
Integrations → a custom integration → Add webhook)::

    X-Ghost-Signature: sha256=<hex HMAC-SHA256(secret, raw body + t)>, t=<Unix milliseconds>

The body is ``{"post": {"current": {...}, "previous": {...}}}`` (``"page"`` for pages). The
card is the post's ``title`` and ``custom_excerpt``, with ``site``, ``template``, ``theme`` and
``accent`` from the webhook URL's query (``/hooks/ghost?site=My%20Blog``), so that it is the very
card the theme's ``og:image`` URL asks for. A call without a valid signature, or older than
:data:`MAX_AGE_SECONDS`, is refused and makes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .card import parse_card
from .errors import Forbidden, InvalidParameter, NotFound
from .prerender import read_body, signed_url, signer_of
from .service import CardService
from .settings import Settings

router = APIRouter()

#: Largest webhook body read: a post arrives with its HTML and editor document, which can be
#: several hundred kilobytes for a long post.
MAX_BODY = 8 * 1024 * 1024
#: This module's request body cap, above the server's default (see ogshot/protocol.py).
BODY_LIMITS = {"/hooks/ghost": MAX_BODY}
#: Calls signed longer ago than this (or this far in the future) are refused as replays.
MAX_AGE_SECONDS = 300
#: Ghost gives up on a webhook call after 2 s; answer before that, warming on if need be.
ANSWER_WITHIN = 1.5
#: Card fields the webhook URL's query may fix for every post.
QUERY_FIELDS = ("site", "template", "theme", "accent", "format")

_HEADER = re.compile(r"^\s*sha256=([0-9a-fA-F]{64})\s*,\s*t=([0-9]{1,16})\s*$")


class BadWebhookSignature(Forbidden):
    code = "bad_webhook_signature"


def ghost_signature(secret: bytes, body: bytes, timestamp: str) -> str:
    """The header value Ghost sends for ``body`` at ``timestamp`` (Unix ms, as text)."""
    mac = hmac.new(secret, body + timestamp.encode("ascii"), hashlib.sha256).hexdigest()
    return f"sha256={mac}, t={timestamp}"


def verify(secret: bytes, body: bytes, header: str | None, *, now: float) -> None:
    """Raise :class:`BadWebhookSignature` unless ``header`` signs ``body`` recently."""
    if not header:
        raise BadWebhookSignature("the X-Ghost-Signature header is missing")
    m = _HEADER.match(header)
    if m is None:
        raise BadWebhookSignature("X-Ghost-Signature is not 'sha256=<hex>, t=<milliseconds>'")
    given, timestamp = m.group(1).lower(), m.group(2)
    expected = hmac.new(secret, body + timestamp.encode("ascii"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.encode("ascii"), expected.encode("ascii")):
        raise BadWebhookSignature("X-Ghost-Signature does not match this body and secret")
    if abs(now - int(timestamp) / 1000) > MAX_AGE_SECONDS:
        raise BadWebhookSignature(
            f"X-Ghost-Signature is more than {MAX_AGE_SECONDS} seconds old (or from the future)"
        )


def post_card_params(payload: Any, query: dict[str, str]) -> dict[str, str]:
    """The card parameters of a webhook body's post (or page)."""
    if not isinstance(payload, dict):
        raise InvalidParameter("the body must be a Ghost webhook payload (a JSON object)")
    holder = payload.get("post") or payload.get("page")
    current = holder.get("current") if isinstance(holder, dict) else None
    if not isinstance(current, dict):
        raise InvalidParameter("the body has no post.current (or page.current)")
    title = current.get("title")
    if not isinstance(title, str) or not title.strip():
        raise InvalidParameter("the post has no title")
    params = {name: query[name] for name in QUERY_FIELDS if query.get(name)}
    params["title"] = title
    excerpt = current.get("custom_excerpt")
    if isinstance(excerpt, str) and excerpt.strip():
        params["subtitle"] = excerpt
    return params


@router.post("/hooks/ghost")
async def ghost_webhook(request: Request) -> JSONResponse:
    """Ghost's ``post.published`` / ``post.published.edited`` (and page) webhooks: verify
    ``X-Ghost-Signature`` with ``OGSHOT_GHOST_SECRET`` and make the post's card."""
    settings: Settings = request.app.state.settings
    secret = settings.ghost_secret.get_secret_value().encode("utf-8")
    if not secret:
        raise NotFound("the Ghost webhook is off: set OGSHOT_GHOST_SECRET to turn it on")
    body = await read_body(request, MAX_BODY)
    verify(secret, body, request.headers.get("x-ghost-signature"), now=time.time())
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidParameter("the body is not JSON") from None
    card = parse_card(post_card_params(payload, dict(request.query_params)))
    svc: CardService = request.app.state.service
    url = signed_url(request, signer_of(request), card)
    # Made in a task of its own: Ghost hangs up after 2 s, and the card is finished anyway.
    task = asyncio.ensure_future(svc.card(card))
    task.add_done_callback(_retrieve)
    done, _ = await asyncio.wait({task}, timeout=ANSWER_WITHIN)
    if not done:
        return JSONResponse({"status": "warming", "url": url}, status_code=202)
    result = task.result()
    return JSONResponse({"status": "ok", "url": url, "etag": result.entry.etag})


def _retrieve(task: asyncio.Future[Any]) -> None:
    # A card that fails after the answer was sent is logged by the service; nothing waits on it.
    if not task.cancelled():
        task.exception()
