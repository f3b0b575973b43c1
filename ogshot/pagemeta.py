"""A page's own title, description and site name, for cards that name a URL and no title.

Where they come from, in order: ``og:title``, ``twitter:title``, ``<title>``; ``og:description``,
``description``, ``twitter:description``; ``og:site_name`` (the card's host otherwise, as for any
card). The local browser reads them from the page it captures (:data:`META_SCRIPT`); otherwise
:class:`HtmlMetaFetcher` fetches the page's HTML through the egress guard, size- and time-capped,
and :func:`parse_html` reads the head.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, Protocol

import httpx

from .cache import Cache, Entry
from .card import MAX_SITE, MAX_SUBTITLE, MAX_TITLE, clean_text
from .egress import AddressPolicy, EgressProxy
from .netguard import UrlPolicy
from .settings import Settings

log = logging.getLogger("ogshot")

#: Characters kept of any raw value before cleaning: a hostile page can make them huge.
_RAW_CAP = 4096

#: Run in the page (an isolated world: the page's own scripts cannot change what it calls).
META_SCRIPT = """(() => {
  const cap = (s) => (typeof s === "string" ? s : "").slice(0, RAW_CAP);
  const meta = (attr, name) => {
    for (const el of document.querySelectorAll("meta[" + attr + "]")) {
      if ((el.getAttribute(attr) || "").trim().toLowerCase() === name) {
        const value = (el.getAttribute("content") || "").trim();
        if (value) return cap(value);
      }
    }
    return "";
  };
  const title = document.querySelector("title");
  return {
    og_title: meta("property", "og:title"),
    twitter_title: meta("name", "twitter:title") || meta("property", "twitter:title"),
    title: cap(title ? title.textContent : ""),
    og_description: meta("property", "og:description"),
    description: meta("name", "description"),
    twitter_description: meta("name", "twitter:description"),
    site: meta("property", "og:site_name"),
  };
})()""".replace("RAW_CAP", str(_RAW_CAP))


@dataclass(frozen=True)
class PageMeta:
    """What a page says about itself, cleaned like card text and cut to the card's limits."""

    title: str = ""
    description: str = ""
    site: str = ""

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> PageMeta:
        """The first non-empty candidate of each kind (names as :data:`META_SCRIPT` gives them)."""

        def first(*names: str) -> str:
            for name in names:
                value = fields.get(name)
                if isinstance(value, str):
                    text = clean_text(value[:_RAW_CAP])
                    if text:
                        return text
            return ""

        return cls(
            title=_cut(first("og_title", "twitter_title", "title"), MAX_TITLE),
            description=_cut(
                first("og_description", "description", "twitter_description"), MAX_SUBTITLE
            ),
            site=_cut(first("site"), MAX_SITE),
        )

    def to_json(self) -> bytes:
        return json.dumps(
            {"title": self.title, "description": self.description, "site": self.site},
            ensure_ascii=False,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> PageMeta:
        data = json.loads(raw)
        return cls(str(data["title"]), str(data["description"]), str(data["site"]))


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word and marked with an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    if space > limit // 2:
        head = head[:space]
    return head.rstrip(" ,.;:-") + "…"


class _HeadParser(HTMLParser):
    """Collects ``<meta>`` candidates and the first ``<title>``; stops caring after ``<body>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.fields: dict[str, str] = {}
        self._in_title = False
        self._title: list[str] = []
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.done:
            return
        if tag == "body":
            self.done = True
        elif tag == "title" and "title" not in self.fields:
            self._in_title = True
        elif tag == "meta":
            a = {k.lower(): (v or "") for k, v in attrs}
            content = a.get("content", "").strip()
            key = (a.get("property") or a.get("name") or "").strip().lower()
            names = {
                "og:title": "og_title",
                "twitter:title": "twitter_title",
                "og:description": "og_description",
                "description": "description",
                "twitter:description": "twitter_description",
                "og:site_name": "site",
            }
            if key in names and content and names[key] not in self.fields:
                self.fields[names[key]] = content[:_RAW_CAP]

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self.fields["title"] = "".join(self._title)[:_RAW_CAP]
        elif tag == "head":
            self.done = True

    def handle_data(self, data: str) -> None:
        if self._in_title and sum(map(len, self._title)) < _RAW_CAP:
            self._title.append(data)


def parse_html(html: str) -> PageMeta:
    """The metadata in an HTML document's head."""
    parser = _HeadParser()
    parser.feed(html)
    if parser._in_title:  # an unclosed <title> at the end of what was read
        parser.fields.setdefault("title", "".join(parser._title))
    return PageMeta.from_fields(dict(parser.fields))


class MetaSource(Protocol):
    async def page_meta(self, url: str) -> PageMeta:
        """The page's metadata; an empty :class:`PageMeta` when it cannot be read."""
        ...

    async def aclose(self) -> None: ...


_HTML_TYPES = ("text/html", "application/xhtml+xml")


class HtmlMetaFetcher:
    """Reads metadata from the page's HTML, fetched through the egress guard.

    Every connection, redirect hops included, goes through an :class:`EgressProxy` under the
    server's URL policy, so the fetch reaches nothing a browser capture could not. At most
    ``OGSHOT_PAGE_META_MAX_BYTES`` are read, within ``OGSHOT_PAGE_META_TIMEOUT`` seconds.
    """

    def __init__(self, settings: Settings, policy: UrlPolicy | None = None) -> None:
        self.max_bytes = settings.page_meta_max_bytes
        self.timeout = settings.page_meta_timeout
        self.proxy = EgressProxy(
            AddressPolicy.from_url_policy(policy or UrlPolicy.from_settings(settings)),
            connect_timeout=self.timeout,
        )
        self._client: httpx.AsyncClient | None = None

    async def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            await self.proxy.start()
            self._client = httpx.AsyncClient(
                proxy=self.proxy.url,
                follow_redirects=True,
                max_redirects=5,
                timeout=self.timeout,
                headers={
                    "User-Agent": "ogshot (page metadata)",
                    "Accept": "text/html",
                    # Compressed bodies could expand far past the cap in one chunk.
                    "Accept-Encoding": "identity",
                },
                trust_env=False,
            )
        return self._client

    async def page_meta(self, url: str) -> PageMeta:
        client = await self._get_client()
        try:
            async with asyncio.timeout(self.timeout):
                return await self._fetch(client, url)
        except (TimeoutError, httpx.HTTPError, UnicodeError, ValueError) as exc:
            log.info("page metadata of %s not read: %r", url, exc)
            return PageMeta()

    async def _fetch(self, client: httpx.AsyncClient, url: str) -> PageMeta:
        async with client.stream("GET", url) as resp:
            media = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            if resp.status_code >= 400 or media not in _HTML_TYPES:
                return PageMeta()
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                chunks.append(chunk[: self.max_bytes - size])
                size += len(chunks[-1])
                if size >= self.max_bytes:
                    break
            encoding = resp.charset_encoding or "utf-8"
        raw = b"".join(chunks)
        try:
            text = raw.decode(encoding, errors="replace")
        except LookupError:
            text = raw.decode("utf-8", errors="replace")
        return parse_html(text)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        await self.proxy.aclose()


META_PREFIX = "meta-"


class PageMetaStore:
    """Page metadata by URL: cache → source → cache. Nothing is read when there is no source
    (captures switched off: the server then makes no outbound request at all)."""

    def __init__(self, source: MetaSource | None, cache: Cache, settings: Settings) -> None:
        self.source = source
        self.cache = cache
        self.ttl = float(settings.cache_ttl)

    @staticmethod
    def key(url: str) -> str:
        return META_PREFIX + hashlib.sha256(url.encode()).hexdigest()

    async def put(self, url: str, meta: PageMeta) -> None:
        """Keep what a capture read, so that a later card needs no second visit."""
        if not meta.title:
            return  # an empty answer is not kept: the next card tries again
        body = meta.to_json()
        entry = Entry(body=body, media_type="application/json", etag="", ttl=self.ttl)
        try:
            await self.cache.set(self.key(url), entry)
        except Exception:  # a cache that cannot store must not fail the card
            log.exception("cache write failed for page metadata")

    async def get(self, url: str) -> PageMeta:
        entry = await self.cache.get(self.key(url))
        if entry is not None:
            try:
                return PageMeta.from_json(entry.body)
            except (ValueError, KeyError, TypeError):
                pass
        if self.source is None:
            return PageMeta()
        meta = await self.source.page_meta(url)
        await self.put(url, meta)
        return meta

    async def aclose(self) -> None:
        if self.source is not None:
            await self.source.aclose()


def meta_source(provider: object, settings: Settings, policy: UrlPolicy) -> MetaSource | None:
    """Where page metadata comes from: the local browser itself when it is the capture provider,
    a guarded HTML fetch with an upstream API, nothing when captures are off."""
    enabled = getattr(provider, "enabled", False)
    if not enabled:
        return None
    if callable(getattr(provider, "page_meta", None)):
        return _ProviderMeta(provider)
    return HtmlMetaFetcher(settings, policy)


class _ProviderMeta:
    """A provider that reads metadata itself; it is closed as the provider, not here."""

    def __init__(self, provider: object) -> None:
        self._read = provider.page_meta  # type: ignore[attr-defined]

    async def page_meta(self, url: str) -> PageMeta:
        meta: PageMeta = await self._read(url)
        return meta

    async def aclose(self) -> None:
        return None
