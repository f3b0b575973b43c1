"""Pages for people: the unfurl preview (``GET /preview``) and the template gallery
(``GET /templates`` when a browser asks for HTML).

Both are drawn by Jinja2 from the templates beside this file, escaped by default, and are
self-contained: styles and the few lines of script are inline (allowed by a per-response nonce in
the Content-Security-Policy), images come from this server, nothing from a CDN, so they work
offline and make no request to another host.

Who may see them, with signing on (``OGSHOT_SIGNING_KEYS``): the preview signs whatever card a
visitor types, so it would mint signatures for strangers if it were open. It wants the API token
(:mod:`ogshot.access`), which a browser sends as the password of HTTP Basic authentication (any
user name), asked for with a 401; scripts can send it as ``Authorization: Bearer`` or
``X-API-Key``. The gallery signs only its own fixed sample cards, so it stays open.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
import unicodedata
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from PIL import Image

from ..access import bearer_token
from ..card import MAX_SITE, MAX_SUBTITLE, MAX_TITLE, Card, parse_card
from ..contrast import contrast_ratio, hex_rgb
from ..errors import InvalidParameter, LoginRequired, OgshotError
from ..fonts import FontSet
from ..layouts import Layout
from ..meta import image_tags, meta_card, to_html, with_fingerprint
from ..negotiate import prefers
from ..prerender import signed_url
from ..render import resolve_theme
from ..samples import TITLES
from ..service import CardResult, CardService
from ..signing import Signer, check_api_token
from ..weburl import MAX_URL

router = APIRouter()

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

#: What a first visit to /preview shows.
EXAMPLE = {
    "title": "Ship social cards that look right everywhere",
    "subtitle": "Fast 1200×630 previews for every page, in every script",
    "site": "ogshot",
}
#: Thresholds of the warnings (see the README's preview section for their sources).
X_MAX_BYTES = 5 * 1024 * 1024
WHATSAPP_MAX_BYTES = 300 * 1024
#: WCAG 2.1 §1.4.11: graphical objects (the accent bar) want 3:1 against what is around them.
MIN_ACCENT_CONTRAST = 3.0
#: The samples of the gallery: a few scripts that show what a layout does with each.
GALLERY_SAMPLES = ("latin", "arabic", "japanese")


@dataclass(frozen=True)
class Warning_:
    """One thing a card's owner should know before shipping it."""

    kind: str
    text: str


def page_token(request: Request) -> str | None:
    """The API token from HTTP Basic (as the password), ``Authorization: Bearer`` or
    ``X-API-Key``."""
    auth = request.headers.get("authorization", "").strip()
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return bearer_token(request)


def require_login(request: Request) -> None:
    """With signing on, the API token or a 401 that makes a browser ask for it."""
    signer: Signer = request.app.state.signer
    if not signer.enabled:
        return
    token = page_token(request)
    if token is None:
        raise LoginRequired(
            "with signing on, this page wants the API token ('ogshot api-token') as the "
            "password of HTTP Basic authentication"
        )
    check_api_token(signer, token)


def _nonce() -> str:
    return secrets.token_urlsafe(16)


def page_headers(nonce: str) -> dict[str, str]:
    """A page that may load nothing but its own inline styles and script and this server's
    images, and is never cached (it reports cache states)."""
    csp = (
        f"default-src 'none'; img-src 'self' data:; style-src 'nonce-{nonce}'; "
        f"script-src 'nonce-{nonce}'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": csp,
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def image_path(signer: Signer, card: Card) -> str:
    """The card's /og.png URL relative to this server (signed when signing is on)."""
    query = urlencode(signer.signed_params(card))
    return "/og.png" + (f"?{query}" if query else "")


def uncovered(fonts: FontSet, card: Card) -> list[str]:
    """Characters of the card's text that no font of the set has, once each, in order."""
    seen: list[str] = []
    for ch in card.title + card.subtitle + card.site:
        if ch.isspace() or unicodedata.category(ch) in ("Mn", "Me", "Cf") or ch in seen:
            continue
        if not fonts.has_glyph(ch):
            seen.append(ch)
    return seen


def accent_contrast(card: Card, layout: Layout) -> float:
    """Contrast of the card's accent colour against its background (without a capture)."""
    palette = layout.palette(resolve_theme(card, layout, None))
    accent = hex_rgb(card.accent or palette.accent)
    return contrast_ratio(accent, hex_rgb(palette.background))


def warnings_for(
    card: Card, result: CardResult, layout: Layout, fonts: FontSet
) -> list[Warning_]:
    """What could keep the card from showing well, from the platforms' own limits."""
    out: list[Warning_] = []
    size = len(result.entry.body)
    if size > X_MAX_BYTES:
        out.append(Warning_("size", f"{size:,} bytes: X shows no image over 5 MB."))
    elif size > WHATSAPP_MAX_BYTES:
        out.append(
            Warning_("size", f"{size // 1024} KB: WhatsApp shows no thumbnail over about 300 KB.")
        )
    if card.format == "webp":
        out.append(
            Warning_(
                "format",
                "WebP: LinkedIn, Telegram and WhatsApp show no WebP og:image "
                "(the meta tags link the PNG instead).",
            )
        )
    ratio = accent_contrast(card, layout)
    if layout.accent_bar is not None and ratio < MIN_ACCENT_CONTRAST:
        out.append(
            Warning_(
                "contrast",
                f"Low contrast: the accent colour stands at {ratio:.1f}:1 against the "
                f"background (at least {MIN_ACCENT_CONTRAST:.0f}:1 reads well).",
            )
        )
    if result.fallback:
        out.append(
            Warning_(
                "fallback",
                f"Fallback card ({result.fallback}): the capture could not be had, so crawlers "
                "get this card with a short cache lifetime and come back for the real one.",
            )
        )
    missing = uncovered(fonts, card)
    if missing:
        shown = " ".join(f"{ch} (U+{ord(ch):04X})" for ch in missing[:12])
        out.append(Warning_("glyphs", f"No installed font draws: {shown}."))
    return out


def _form_values(request: Request) -> dict[str, str]:
    params = {k: v for k, v in request.query_params.items() if v != ""}
    return params or dict(EXAMPLE)


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    nonce = _nonce()
    html = _ENV.get_template(name).render(nonce=nonce, **context)
    return HTMLResponse(html, status_code=status, headers=page_headers(nonce))


@router.get(
    "/preview",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {}}, "description": "The preview page"},
        401: {"description": "Signing is on and the API token was not given"},
        422: {"content": {"text/html": {}}, "description": "The page, naming the bad parameter"},
    },
)
async def preview(request: Request) -> HTMLResponse:
    """The card as X, Facebook, LinkedIn, Slack and Discord would show it, with the meta tags
    that ``/meta`` answers, its size, type, ETag, render time and cache state, and warnings."""
    require_login(request)
    values = _form_values(request)
    svc: CardService = request.app.state.service
    signer: Signer = request.app.state.signer
    base: dict[str, Any] = {
        "values": values,
        "layouts": list(svc.layouts),
        "limits": {"title": MAX_TITLE, "subtitle": MAX_SUBTITLE, "site": MAX_SITE, "url": MAX_URL},
    }
    try:
        card = parse_card(values)
        layout = svc.layouts.get(card.template)
        started = time.perf_counter()
        result = await svc.card(card)
        elapsed_ms = (time.perf_counter() - started) * 1000
    except InvalidParameter as exc:
        return _render("preview.html", 422, error=exc.detail, **base)
    except OgshotError as exc:
        if exc.status >= 500 and exc.status != 503:
            raise
        return _render("preview.html", exc.status, error=exc.detail, **base)
    with Image.open(BytesIO(result.entry.body)) as img:
        width, height = img.size
    linked, notes = meta_card(card)
    linked = with_fingerprint(svc, linked)
    snippet = to_html(image_tags(signed_url(request, signer, linked), linked))
    info = {
        "bytes": len(result.entry.body),
        "width": width,
        "height": height,
        "type": result.entry.media_type,
        "etag": result.entry.etag,
        "ms": elapsed_ms,
        "source": result.source,
        "fallback": result.fallback,
    }
    return _render(
        "preview.html",
        card=card,
        image=image_path(signer, card),
        info=info,
        snippet=snippet,
        notes=notes,
        warnings=warnings_for(card, result, layout, svc.fonts),
        domain=card.host or card.site_label or "example.com",
        accent=card.accent or layout.palette(resolve_theme(card, layout, None)).accent,
        **base,
    )


def prefers_html(accept: str | None) -> bool:
    """True when ``Accept`` ranks ``text/html`` above ``application/json`` (a browser)."""
    return prefers(accept, "text/html", over="application/json")


def gallery(request: Request) -> HTMLResponse:
    """Every layout with sample titles in several scripts, light and dark, linked to /preview."""
    svc: CardService = request.app.state.service
    signer: Signer = request.app.state.signer
    titles = dict(TITLES)
    sections = []
    for layout in svc.layouts:
        cards = []
        for sample in GALLERY_SAMPLES:
            for theme in ("light", "dark"):
                params = {
                    "title": titles[sample],
                    "site": "ogshot",
                    "template": layout.name,
                    "theme": theme,
                }
                card = parse_card(params)
                cards.append(
                    {
                        "image": image_path(signer, card),
                        "preview": "/preview?" + urlencode(params),
                        "alt": f"{layout.name}, {theme}: {card.title}",
                        "label": f"{sample}, {theme}",
                    }
                )
        sections.append({"layout": layout, "cards": cards})
    return _render("gallery.html", sections=sections)
