"""The ``<meta>`` tags that put a card in front of crawlers, and the card's fingerprint.

Crawlers and CDNs cache an image by its URL (Facebook for about a month, Telegram for good), so
a card that changes must change its URL. :func:`fingerprint` is a short hash of everything that
determines the card's bytes (the service's cache key material: the card, its layout's version and
digest, renderer, encoder, font set, capture backend); it goes into the URL as ``v``. Same inputs,
same ``v`` on every machine; any change that could move a pixel, a new ``v``.

Tags are built as data (:class:`Tag`) and written out by :func:`to_html`, which escapes every
value for an HTML attribute; titles in any script and emoji are written as themselves (UTF-8).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html import escape
from typing import Any, Protocol

from .card import MEDIA_TYPES, Card

WIDTH, HEIGHT = 1200, 630
#: Hex digits of the fingerprint: 64 bits, far from any collision in one site's cards.
FINGERPRINT_LENGTH = 16
#: Formats a meta tag may point at. LinkedIn, Telegram and WhatsApp show no WebP og:image, so a
#: card asked for as WebP is linked as PNG (the JSON answer says so).
META_FORMATS = ("png", "jpeg")


class KeyMaterial(Protocol):
    def key_material(self, card: Card) -> Mapping[str, object]: ...


def fingerprint(service: KeyMaterial, card: Card) -> str:
    """A short, stable hash of everything that determines the card's bytes."""
    raw = json.dumps(
        service.key_material(card), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:FINGERPRINT_LENGTH]


def meta_card(card: Card) -> tuple[Card, list[str]]:
    """The card a meta tag should link to, and notes on what was changed and why."""
    notes: list[str] = []
    if card.format not in META_FORMATS:
        notes.append(
            f"format {card.format} was linked as png: LinkedIn, Telegram and WhatsApp show no "
            f"{card.format} og:image"
        )
        card = card.model_copy(update={"format": "png"})
    return card, notes


def with_fingerprint(service: KeyMaterial, card: Card) -> Card:
    """The card carrying its fingerprint as ``v`` (a ``v`` already given is hashed in)."""
    return card.model_copy(update={"v": fingerprint(service, card)})


def alt_text(card: Card) -> str:
    """What the image shows, for screen readers: the title (and the site it belongs to)."""
    if card.title and card.site_label:
        return f"{card.title} · {card.site_label}"
    return card.title or card.site_label or card.url


@dataclass(frozen=True)
class Tag:
    """One ``<meta>``: ``attr`` is ``property`` (Open Graph) or ``name`` (X)."""

    attr: str
    key: str
    content: str

    def html(self) -> str:
        return f'<meta {self.attr}="{escape(self.key)}" content="{escape(self.content)}">'


def image_tags(image_url: str, card: Card) -> list[Tag]:
    """The tags for a card image at ``image_url`` (absolute)."""
    alt = alt_text(card)
    return [
        Tag("property", "og:image", image_url),
        Tag("property", "og:image:type", MEDIA_TYPES[card.format]),
        Tag("property", "og:image:width", str(WIDTH)),
        Tag("property", "og:image:height", str(HEIGHT)),
        Tag("property", "og:image:alt", alt),
        Tag("name", "twitter:card", "summary_large_image"),
        Tag("name", "twitter:image", image_url),
        Tag("name", "twitter:image:alt", alt),
    ]


def to_html(tags: Iterable[Tag]) -> str:
    """The tags as an HTML snippet, one per line."""
    return "\n".join(tag.html() for tag in tags) + "\n"


def to_json(image_url: str, card: Card, tags: list[Tag], notes: list[str]) -> dict[str, Any]:
    """The JSON answer of ``/meta`` (and the map ``ogshot batch --meta`` writes)."""
    out: dict[str, Any] = {
        "image": image_url,
        "v": card.v,
        "width": WIDTH,
        "height": HEIGHT,
        "type": MEDIA_TYPES[card.format],
        "alt": alt_text(card),
        "tags": {tag.key: tag.content for tag in tags},
        "html": to_html(tags),
    }
    if notes:
        out["notes"] = notes
    return out
