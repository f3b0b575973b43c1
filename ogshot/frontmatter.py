"""Pages and their front matter: what a static site says about each page.

Static site generators put a page's metadata at the top of its file::

    ---                              +++
    title: Hello                     title = "Hello"
    description: A first post        description = "A first post"
    ogshot:                          [ogshot]
      template: split                template = "split"
    ---                              +++

YAML between ``---`` lines (Jekyll, Astro, Eleventy, Hugo, MkDocs) or TOML between ``+++`` lines
(Hugo, Zola). :func:`read_page` reads either, and falls back to the page itself when there is
none: the first ``# heading`` of a Markdown file, or the ``<title>``/``<h1>`` and
``<meta name="description">`` of an HTML file. :func:`card_params` maps what it found onto card
parameters (the mapping is in the README, "Cards for a static site").
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml

from .card import CARD_FIELDS
from .errors import InvalidParameter

#: File names a folder source reads, by suffix.
PAGE_SUFFIXES = (".md", ".markdown", ".mdx", ".html", ".htm")
#: Largest page read; a front matter block past it is not looked for.
MAX_PAGE_BYTES = 4 * 1024 * 1024

#: Front matter keys that give the card's subtitle, first found wins.
DESCRIPTION_KEYS = ("description", "summary", "excerpt", "subtitle")
#: Card fields a page may set under its ``ogshot`` key (``url`` and ``v`` stay the build's).
PAGE_OVERRIDES = tuple(f for f in CARD_FIELDS if f not in ("url", "v"))

_FENCE = re.compile(r"\A(?:\ufeff)?(---|\+\+\+)[ \t]*\r?\n")
_HEADING = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


class FrontMatterError(InvalidParameter):
    """A page whose front matter cannot be read; the detail names the reason."""


@dataclass
class Page:
    """What a page says about itself."""

    meta: dict[str, Any] = field(default_factory=dict)
    #: Title and description found in the page body when the front matter has none.
    heading: str = ""
    body_description: str = ""


def split_front_matter(text: str) -> tuple[str, str, str]:
    """``(kind, block, body)``: kind is ``yaml``, ``toml`` or empty when the text has none."""
    m = _FENCE.match(text)
    if m is None:
        return "", "", text
    fence = m.group(1)
    closers = ("---", "...") if fence == "---" else ("+++",)
    pos = m.end()
    while pos <= len(text):
        end = text.find("\n", pos)
        line = text[pos : len(text) if end < 0 else end].rstrip("\r").rstrip(" \t")
        if line in closers:
            body = "" if end < 0 else text[end + 1 :]
            return ("yaml" if fence == "---" else "toml"), text[m.end() : pos], body
        if end < 0:
            break
        pos = end + 1
    raise FrontMatterError(f"front matter opened with '{fence}' is never closed")


def parse_block(kind: str, block: str) -> dict[str, Any]:
    """Parse one front matter block; any error becomes a one-line :class:`FrontMatterError`."""
    try:
        if kind == "toml":
            data: Any = tomllib.loads(block)
        else:
            data = yaml.safe_load(block) if block.strip() else {}
    except tomllib.TOMLDecodeError as exc:
        raise FrontMatterError(f"TOML front matter: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise FrontMatterError(f"YAML front matter{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FrontMatterError("front matter must be a mapping of keys to values")
    return data


class _HtmlMeta(HTMLParser):
    """Collects ``<title>``, the first ``<h1>`` and ``<meta name=description>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.h1 = ""
        self.description = ""
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("title", "h1") and self._in is None:
            self._in = tag
        elif tag == "meta":
            a = {k.lower(): v or "" for k, v in attrs}
            name = (a.get("name") or a.get("property") or "").lower()
            if name in ("description", "og:description") and not self.description:
                self.description = a.get("content", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "title" and not self.title:
            self.title += data
        elif self._in == "h1":
            self.h1 += data


def read_page(path: Path) -> Page:
    """Read one page file. Raises :class:`FrontMatterError` with the reason when it cannot."""
    try:
        raw = path.read_bytes()[:MAX_PAGE_BYTES]
    except OSError as exc:
        raise FrontMatterError(f"cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrontMatterError(f"is not UTF-8 (byte {exc.start})") from None
    kind, block, body = split_front_matter(text)
    page = Page(meta=parse_block(kind, block) if kind else {})
    if path.suffix.lower() in (".html", ".htm"):
        parser = _HtmlMeta()
        parser.feed(body)
        parser.close()
        page.heading = (parser.title or parser.h1).strip()
        page.body_description = parser.description.strip()
    else:
        m = _HEADING.search(body)
        if m is not None:
            page.heading = m.group(1).strip()
    return page


def _text(value: Any, key: str) -> str:
    """A front matter scalar as text: YAML gives numbers and dates for unquoted values."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        raise FrontMatterError(f"front matter '{key}' must be text")
    if isinstance(value, int | float | dt.date | dt.datetime):
        return str(value)
    raise FrontMatterError(f"front matter '{key}' must be text, not a {type(value).__name__}")


def is_excluded(meta: Mapping[str, Any]) -> bool:
    """Drafts and pages that opt out (``ogshot: false``) get no card."""
    return meta.get("draft") is True or meta.get("ogshot") is False


def card_params(
    meta: Mapping[str, Any], *, heading: str = "", body_description: str = ""
) -> dict[str, str]:
    """Card parameters from a page's front matter (and what its body gave as a fallback).

    ``title`` ← ``ogshot.title``, ``title``, the first heading; ``subtitle`` ← ``ogshot.subtitle``,
    then the first of :data:`DESCRIPTION_KEYS`, then the HTML description; every other card field
    (``site``, ``template``, ``theme``, ``accent``, ``format``) from the ``ogshot`` table.
    """
    params: dict[str, str] = {}
    title = meta.get("title")
    if title is not None:
        params["title"] = _text(title, "title")
    elif heading:
        params["title"] = heading
    for key in DESCRIPTION_KEYS:
        if meta.get(key) is not None:
            params["subtitle"] = _text(meta[key], key)
            break
    else:
        if body_description:
            params["subtitle"] = body_description
    own = meta.get("ogshot")
    if own is None or own is True:
        own = {}
    if not isinstance(own, Mapping):
        raise FrontMatterError("front matter 'ogshot' must be a table of card fields, or false")
    for key, value in own.items():
        if key not in PAGE_OVERRIDES:
            allowed = ", ".join(PAGE_OVERRIDES)
            raise FrontMatterError(f"front matter 'ogshot.{key}' is not one of: {allowed}")
        params[str(key)] = _text(value, f"ogshot.{key}")
    return params
