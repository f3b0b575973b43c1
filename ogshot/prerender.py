"""Cards before the first share: ``GET /meta`` and ``POST /batch``.

``/meta`` answers the ``<meta>`` tags of a card (HTML, or JSON when the client prefers it), with an
absolute ``og:image`` URL that carries the card's fingerprint as ``v`` and, when signing is on, a
signature. ``/batch`` makes up to ``OGSHOT_BATCH_MAX`` cards into the cache and answers their URLs,
so the crawlers that follow a publish get cache hits.

With signing on, both make signed URLs, so both want the API token of the capture endpoints
(:mod:`ogshot.access`): an open ``/meta`` or ``/batch`` would sign any card for anyone.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from . import openapi
from .access import require_api_token
from .card import Card, check_raw_lengths, parse_card
from .errors import InvalidParameter, OgshotError, PayloadTooLarge
from .meta import image_tags, meta_card, to_html, to_json, with_fingerprint
from .negotiate import prefers
from .service import CardService
from .settings import Settings
from .signing import Signer, card_url

# With signing on, both routes need the API token (``ogshot api-token``; see ogshot/access.py).
router = APIRouter(dependencies=[Depends(require_api_token)])

#: Cards of one batch made at once: enough to keep the render threads busy, few enough that one
#: batch leaves room for the crawlers.
BATCH_CONCURRENCY = 4
#: Bytes of request body allowed per card of a batch: the longest valid card, JSON-escaped,
#: fits in about 7 KiB.
BATCH_BYTES_PER_CARD = 8 * 1024


def body_limits(settings: Settings) -> dict[str, int]:
    """Request body caps of this module's routes (see ogshot/protocol.py): a full batch fits."""
    return {"/batch": settings.batch_max * BATCH_BYTES_PER_CARD + 1024}


#: How long ``/meta`` answers may be kept: they move only with a new font set, layout or renderer.
META_CACHE_CONTROL = "public, max-age=300"


def base_url(request: Request) -> str:
    """Where absolute URLs point: ``OGSHOT_PUBLIC_URL``, else the base this request came to."""
    settings: Settings = request.app.state.settings
    return settings.public_url or str(request.base_url)


def signer_of(request: Request) -> Signer:
    signer: Signer = request.app.state.signer
    return signer


def signed_url(request: Request, signer: Signer, card: Card) -> str:
    return card_url(base_url(request), signer.signed_params(card))


def wants_json(accept: str | None) -> bool:
    """True when ``Accept`` ranks ``application/json`` above ``text/html`` (RFC 9110 §12.5.1)."""
    return prefers(accept, "application/json", over="text/html")


@router.get(
    "/meta",
    response_class=Response,
    responses={200: {"content": {"text/html": {}, "application/json": {}}}},
    openapi_extra=openapi.card_query(
        signed=False,
        descriptions={
            "format": "png or jpeg (webp is linked as png)",
            "v": "Your own cache buster, hashed into v",
        },
    ),
)
async def meta(request: Request) -> Response:
    """The ``<meta>`` tags of a card: ``og:image`` (absolute, fingerprinted, signed when signing
    is on), its size, type and alt text, and X's ``summary_large_image``. JSON when ``Accept``
    prefers ``application/json``."""
    signer = signer_of(request)
    svc: CardService = request.app.state.service
    params = dict(request.query_params)
    check_raw_lengths(params)
    card, notes = meta_card(parse_card(params))
    card = with_fingerprint(svc, card)
    image = signed_url(request, signer, card)
    tags = image_tags(image, card)
    headers = {"Cache-Control": META_CACHE_CONTROL, "Vary": "Accept"}
    if signer.enabled:
        headers["Cache-Control"] = "private, no-store"  # it answered a token holder
    if wants_json(request.headers.get("accept")):
        return JSONResponse(to_json(image, card, tags, notes), headers=headers)
    return Response(to_html(tags), media_type="text/html; charset=utf-8", headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) past ``limit`` bytes without reading further."""
    length = request.headers.get("content-length", "")
    if length.isascii() and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_batch(raw: bytes, batch_max: int) -> tuple[list[Any], bool]:
    """``(cards, inline)`` from a ``/batch`` body; 422 for a body of the wrong shape, 413 for
    too many cards."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidParameter("the body must be JSON: {\"cards\": [...]}") from None
    if not isinstance(body, dict) or not isinstance(body.get("cards"), list):
        raise InvalidParameter("the body must be a JSON object with a 'cards' list", param="cards")
    unknown = sorted(set(body) - {"cards", "inline"})
    if unknown:
        raise InvalidParameter(f"'{unknown[0]}' is not a field of a batch", param=unknown[0])
    inline = body.get("inline", False)
    if not isinstance(inline, bool):
        raise InvalidParameter("'inline' must be true or false", param="inline")
    cards = body["cards"]
    if not cards:
        raise InvalidParameter("'cards' is empty", param="cards")
    if len(cards) > batch_max:
        raise PayloadTooLarge(f"'cards' holds {len(cards)} cards; at most {batch_max} per batch")
    return cards, inline


@router.post(
    "/batch",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["cards"],
                        "properties": {
                            "cards": {"type": "array", "items": {"type": "object"}},
                            "inline": {"type": "boolean", "default": False},
                        },
                    }
                }
            },
        }
    },
)
async def batch(request: Request) -> dict[str, Any]:
    """Make up to ``OGSHOT_BATCH_MAX`` cards into the cache; answer their absolute (signed)
    URLs in input order. One bad card never fails the others."""
    settings: Settings = request.app.state.settings
    signer = signer_of(request)
    limit = body_limits(settings)["/batch"]
    cards, inline = parse_batch(await read_body(request, limit), settings.batch_max)
    svc: CardService = request.app.state.service
    slots = asyncio.Semaphore(BATCH_CONCURRENCY)

    async def one(item: Any) -> dict[str, Any]:
        try:
            if not isinstance(item, dict):
                raise InvalidParameter("each card must be an object of card parameters")
            card = with_fingerprint(svc, parse_card(item))
            async with slots:
                result = await svc.card(card)
        except OgshotError as exc:
            return {"status": "error", "error": exc.code, "detail": exc.detail}
        out: dict[str, Any] = {
            "status": "ok",
            "url": signed_url(request, signer, card),
            "v": card.v,
            "etag": result.entry.etag,
            "bytes": len(result.entry.body),
            "type": result.entry.media_type,
        }
        if result.fallback is not None:
            out["fallback"] = result.fallback
        if inline:
            out["data"] = base64.b64encode(result.entry.body).decode("ascii")
        return out

    results = await asyncio.gather(*(one(item) for item in cards))
    return {"results": list(results)}
