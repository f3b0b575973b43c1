"""``GET /robots.txt``: crawlers may fetch cards, and nothing else.

Link-preview crawlers fetch ``og:image`` URLs on a page's behalf; some of them honour
robots.txt, so a service that says nothing (a 404) or ``Disallow: /`` loses its previews there.
Everything that is not a card (captures, the docs, the API) is no business of a crawler.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

router = APIRouter()

ROBOTS_TXT = """\
# ogshot serves social preview images: crawlers may fetch cards, and nothing else.
User-agent: *
Allow: /og.png
Disallow: /
"""


@router.get("/robots.txt", response_class=PlainTextResponse, include_in_schema=False)
async def robots_txt() -> PlainTextResponse:
    return PlainTextResponse(ROBOTS_TXT, headers={"Cache-Control": "public, max-age=86400"})
