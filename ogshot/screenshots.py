"""The raw capture proxy: ``GET|HEAD /screenshot`` and ``POST /screenshots/batch``.

Both go through the service's :class:`~ogshot.capture.store.CaptureStore`, so they share the URL
policy, the cache, the coalescing and every resilience gate with the cards. Upstream failures
become JSON errors: upstream 4xx → the same 4xx, 5xx → 502, timeout → 504, breaker open or too
many captures in flight → 503, capture switched off → 503 ``capture_off``.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .access import require_api_token
from .capture import CaptureError, CaptureRequest
from .capture.store import CaptureStore
from .card import Card, invalid_from_validation
from .conditional import none_match
from .errors import InvalidParameter, OgshotError
from .headers import field_value
from .openapi import error_responses, image_content
from .service import CardService

# With signing on, both endpoints need the API token (see ogshot/access.py).
router = APIRouter(dependencies=[Depends(require_api_token)])

#: The seed's batch limits.
BATCH_MAX_URLS = 10
BATCH_CONCURRENCY = 5

Format = Literal["png", "jpeg", "webp"]
Width = Annotated[int, Field(ge=1, le=3840)]
Height = Annotated[int, Field(ge=1, le=2160)]
Delay = Annotated[int, Field(ge=0, le=10000)]


def page_url(value: str) -> str:
    """Validate a page URL exactly as a card's ``url`` is validated, and normalise it."""
    if not value.strip():
        raise InvalidParameter("'url' is required", param="url")
    try:
        return Card(url=value).url
    except ValidationError as exc:
        raise invalid_from_validation(exc) from None


def _store(request: Request) -> CaptureStore:
    service: CardService = request.app.state.service
    return service.captures


@router.get(
    "/screenshot",
    response_class=Response,
    responses={
        200: {
            "description": "The capture: image/webp, image/png or image/jpeg as `format` asks",
            "content": image_content("image/webp"),
        },
        304: {"description": "Not modified: `If-None-Match` matched the ETag"},
        **error_responses(403, "4XX", 429, 502, 503, 504),
    },
)
async def screenshot(
    request: Request,
    url: Annotated[str, Query(description="Page to capture (http/https)")],
    width: Annotated[int, Query(ge=1, le=3840, description="Viewport width")] = 1280,
    height: Annotated[int, Query(ge=1, le=2160, description="Viewport height")] = 800,
    format: Annotated[Format, Query(description="png, jpeg or webp")] = "webp",
    full_page: Annotated[bool, Query(description="Capture the whole page")] = False,
    delay: Annotated[int, Query(ge=0, le=10000, description="Wait (ms) before capturing")] = 0,
) -> Response:
    """A capture of the page from the upstream screenshot API, cached."""
    capture = CaptureRequest(page_url(url), width, height, format, full_page, delay)
    entry = await _store(request).get(capture)
    headers = {
        "ETag": entry.etag,
        "Cache-Control": request.app.state.settings.card_cache_control(),
        "Content-Length": str(len(entry.body)),
        "X-Content-Type-Options": "nosniff",
    }
    if none_match(field_value(request.scope["headers"], b"if-none-match"), entry.etag):
        del headers["Content-Length"]
        return Response(status_code=304, headers=headers)
    body = b"" if request.method == "HEAD" else entry.body
    return Response(body, headers=headers, media_type=entry.media_type)


#: Request body caps of this module's routes, tighter than the server's default: ten URLs fit.
BODY_LIMITS = {"/screenshots/batch": 64 * 1024}


class BatchBody(BaseModel):
    # Strict: the JSON types the description states, so `"delay": false` or `"width": "800"`
    # are refused rather than read as numbers.
    model_config = ConfigDict(extra="forbid", strict=True)

    urls: list[str] = Field(min_length=1, max_length=BATCH_MAX_URLS)
    width: Width = 1280
    height: Height = 800
    format: Format = "webp"
    full_page: bool = False
    delay: Delay = 0


@router.post("/screenshots/batch", responses=error_responses(403, 429, 503))
async def screenshots_batch(request: Request, body: BatchBody) -> dict[str, Any]:
    """Up to ten captures, at most five at a time; one failure never fails the others."""
    store = _store(request)
    if not store.enabled:
        raise CaptureError("capture_off", "captures are switched off on this server", status=503)
    slots = asyncio.Semaphore(BATCH_CONCURRENCY)

    async def one(raw: str) -> dict[str, Any]:
        async with slots:
            try:
                url = page_url(raw)
                capture = CaptureRequest(
                    url, body.width, body.height, body.format, body.full_page, body.delay
                )
                entry = await store.get(capture)
            except OgshotError as exc:
                return {"url": raw, "status": "error", "error": exc.code, "detail": exc.detail}
        return {
            "url": raw,
            "status": "ok",
            "data": base64.b64encode(entry.body).decode("ascii"),
            "contentType": entry.media_type,
        }

    return {"results": list(await asyncio.gather(*(one(u) for u in body.urls)))}
