"""Validated, normalised card parameters and their canonical form.

A :class:`Card` is what a client asked for once every default is applied and every string is
normalised (Unicode NFC, control characters dropped, white space folded). Two requests that mean the
same card produce equal ``Card`` objects and therefore the same canonical JSON and cache key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

# The current Unicode character database: Python's own is the one it was released with (14.0 for
# 3.11), which knows no emoji from 15.0 on and would take them for unassigned code points.
import unicodedata2 as unicodedata
from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import InvalidParameter
from .weburl import MAX_URL, display_host, parse_page_url

MAX_TITLE = 300
MAX_SUBTITLE = 500
MAX_SITE = 100
MAX_V = 64
MAX_TEMPLATE = 64


def _max_query_bytes() -> int:
    """The longest query string a card within every documented limit can take.

    Each field at its limit, every code point a four-byte UTF-8 sequence written as four ``%XX``
    escapes (12 bytes), the names and separators, a signature (``exp`` of 12 digits, a ``sig`` of
    a 32-character kid and a 43-character MAC, each byte escaped), and 1 KiB for the tracking
    parameters link shorteners append; rounded up to a whole KiB.
    """
    chars = {
        "title": MAX_TITLE,
        "subtitle": MAX_SUBTITLE,
        "site": MAX_SITE,
        "url": MAX_URL,
        "template": MAX_TEMPLATE,
        "theme": len("light"),
        "accent": len("#rrggbb"),
        "format": len("jpeg"),
        "v": MAX_V,
    }
    total = sum(len(name) + 2 + 12 * n for name, n in chars.items())
    total += len("exp=&") + 3 * 12 + len("sig=&") + 3 * (32 + 1 + 43) + 1024
    return -(-total // 1024) * 1024


#: Longest query string accepted (414 beyond): see :func:`_max_query_bytes`.
MAX_QUERY_BYTES = _max_query_bytes()

Theme = Literal["auto", "light", "dark"]
ImageFormat = Literal["png", "jpeg", "webp"]

MEDIA_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}

_TEMPLATE_NAME = re.compile(rf"^[a-z0-9][a-z0-9_-]{{0,{MAX_TEMPLATE - 1}}}$")
_ACCENT = re.compile(r"^#[0-9a-fA-F]{6}$")
_SPACE = re.compile(r"\s+")

#: The longest each text field may be once cleaned.
_TEXT_LIMITS = {"title": MAX_TITLE, "subtitle": MAX_SUBTITLE, "site": MAX_SITE}

CARD_FIELDS = ("title", "subtitle", "site", "url", "template", "theme", "accent", "format", "v")


def clean_text(value: str) -> str:
    """NFC-normalise, drop control and format-breaking characters, fold runs of white space.

    Zero-width joiners and variation selectors are kept: emoji sequences need them.
    """
    if value.isascii() and value.isprintable():
        # Most titles: NFC leaves them as they are, nothing is dropped, and the only white
        # space is the plain space. A cold card waits for this; the loop below costs ten times more.
        return " ".join(value.split())
    value = unicodedata.normalize("NFC", value)
    kept = []
    for ch in value:
        cat = unicodedata.category(ch)
        if cat == "Cc" and ch not in "\t\n\r":
            continue
        if cat in ("Cs", "Co", "Cn"):
            # Lone surrogates, private use and unassigned code points render as boxes at best.
            continue
        kept.append(ch)
    return _SPACE.sub(" ", "".join(kept)).strip()


class Card(BaseModel):
    """One social card, as asked for."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)

    title: str = ""
    subtitle: str = ""
    site: str = ""
    url: str = ""
    template: str = "default"
    theme: Theme = "auto"
    accent: str = ""
    format: ImageFormat = "png"
    v: str = ""

    @field_validator("title", "subtitle", "site", mode="before")
    @classmethod
    def _text(cls, value: Any, info: ValidationInfo) -> Any:
        """Cleaned (:func:`clean_text`), then held to its limit: one call per field, as a cold
        card waits for each."""
        if not isinstance(value, str):
            return value  # the type check that follows refuses it
        value = clean_text(value)
        limit = _TEXT_LIMITS[str(info.field_name)]
        if len(value) > limit:
            raise ValueError(f"must be at most {limit} characters")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        """The canonical form a browser would use (see :mod:`ogshot.weburl`), without fragment."""
        value = value.strip()
        return parse_page_url(value).href if value else ""

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        value = value.strip().lower() or "default"
        if not _TEMPLATE_NAME.match(value):
            raise ValueError("must be a layout name: lower-case letters, digits, '-' or '_'")
        return value

    @field_validator("accent")
    @classmethod
    def _accent(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return ""
        if not _ACCENT.match(value):
            raise ValueError("must be a colour written #rrggbb")
        return value.lower()

    @field_validator("v")
    @classmethod
    def _v(cls, value: str) -> str:
        if len(value) > MAX_V:
            raise ValueError(f"must be at most {MAX_V} characters")
        return value

    @model_validator(mode="after")
    def _needs_something_to_show(self) -> Card:
        if not self.title and not self.url:
            raise ValueError("a card needs a title (or a url whose page gives one)")
        return self

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    @property
    def host(self) -> str:
        """The host of ``url``, without a leading ``www.``; empty without a url."""
        if not self.url:
            return ""
        host = display_host(parse_page_url(self.url).host)
        return host[4:] if host.startswith("www.") else host

    @property
    def site_label(self) -> str:
        """The small label: ``site`` when given, else the host of ``url``."""
        return self.site or self.host

    def canonical(self) -> dict[str, str]:
        """The card as a plain mapping, defaults included, in a fixed key order."""
        return {name: getattr(self, name) for name in CARD_FIELDS}

    def canonical_json(self) -> str:
        return json.dumps(
            self.canonical(), sort_keys=True, ensure_ascii=False, separators=(",", ":")
        )


#: Longest value, as sent, of each text field (they are checked again once normalised).
RAW_LIMITS = {"title": MAX_TITLE, "subtitle": MAX_SUBTITLE, "site": MAX_SITE, "v": MAX_V}


def check_raw_lengths(params: Mapping[str, object]) -> None:
    """Refuse a text parameter longer, as sent, than its limit: what an HTTP client reads in the
    API description, before normalisation could fold it shorter."""
    for name, limit in RAW_LIMITS.items():
        value = params.get(name)
        if isinstance(value, str) and len(value) > limit:
            raise InvalidParameter(f"'{name}' must be at most {limit} characters", param=name)


def parse_card(params: Mapping[str, object]) -> Card:
    """Build a :class:`Card` from client parameters, turning validation failures into 422s.

    Unknown parameter names are ignored (crawlers and link shorteners append tracking parameters);
    known names with bad values are refused with a sentence naming the parameter.
    """
    known = {k: v for k, v in params.items() if k in CARD_FIELDS and v is not None}
    for name, value in known.items():
        if not isinstance(value, str):
            raise InvalidParameter(f"'{name}' must be a string", param=name)
    try:
        return Card(**known)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise invalid_from_validation(exc) from None


def invalid_from_validation(exc: ValidationError) -> InvalidParameter:
    """One readable sentence from pydantic's first error."""
    err = exc.errors(include_url=False, include_input=False)[0]
    loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
    msg = str(err.get("msg", "is invalid"))
    msg = msg.removeprefix("Value error, ")
    if err.get("type") == "literal_error":
        msg = msg.replace("Input should be", "must be")
    if loc:
        return InvalidParameter(f"'{loc}' {msg}", param=loc)
    return InvalidParameter(msg[:1].upper() + msg[1:])
