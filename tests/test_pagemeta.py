"""Page metadata: reading the head, and the guarded, capped fetch used with an upstream API."""

from __future__ import annotations

import asyncio
import time

import pytest

from ogshot.capture import make_provider
from ogshot.capture.upstream import UpstreamCapture
from ogshot.card import MAX_TITLE, Card
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.pagemeta import HtmlMetaFetcher, PageMeta, parse_html
from ogshot.service import CardService
from ogshot.settings import Settings

from .loopback_pages import Canary, Site


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        (
            '<head><meta property="og:title" content="OG"><meta name="twitter:title" content="TW">'
            "<title>T</title></head>",
            PageMeta("OG"),
        ),
        ('<meta name="twitter:title" content="TW"><title>T</title>', PageMeta("TW")),
        ("<title> Spaced \n  out </title>", PageMeta("Spaced out")),
        ("<title>Fish &amp; chips</title>", PageMeta("Fish & chips")),
        (
            '<meta name="description" content="D"><meta property="og:description" content="OGD">'
            '<meta property="og:site_name" content="Site"><title>T</title>',
            PageMeta("T", "OGD", "Site"),
        ),
        ('<meta name="DESCRIPTION" content="upper"><title>T</title>', PageMeta("T", "upper")),
        ('<meta property="og:title" content=""><title>T</title>', PageMeta("T")),
        ("<body><title>in body</title></body>", PageMeta()),
        ("<title>unclosed", PageMeta("unclosed")),
        ("no html at all", PageMeta()),
    ],
)
def test_head_is_read_in_order_of_preference(html: str, expected: PageMeta) -> None:
    assert parse_html(html) == expected


def test_long_values_are_cut_to_the_card_limits() -> None:
    meta = parse_html(f"<title>{'word ' * 400}</title>")
    assert len(meta.title) <= MAX_TITLE and meta.title.endswith("…")
    assert parse_html("<title>a\x00b\x07c</title>").title == "abc"  # cleaned like card text


def fetcher(site: Site, **kw: object) -> HtmlMetaFetcher:
    settings = Settings(_env_file=None, private_allowlist=site.origin, **kw)  # type: ignore[arg-type]
    return HtmlMetaFetcher(settings)


def read(f: HtmlMetaFetcher, url: str) -> PageMeta:
    async def run() -> PageMeta:
        try:
            return await f.page_meta(url)
        finally:
            await f.aclose()

    return asyncio.run(run())


def test_fetch_reads_the_page_through_the_guard(site: Site) -> None:
    meta = read(fetcher(site), site.origin + "/")
    assert meta == PageMeta(
        "The page's own title", "What the page says it is about.", "Loopback Gazette"
    )


def test_fetch_refuses_private_addresses_and_redirects_to_them(site: Site) -> None:
    canary = Canary().start()
    try:
        f = fetcher(site)
        assert read(f, f"http://127.0.0.1:{canary.port}/") == PageMeta()
        f = fetcher(site)
        redirect = f"{site.origin}/redirect?to=http://127.0.0.1:{canary.port}/"
        assert read(f, redirect) == PageMeta()
        assert any(port == canary.port for _h, port, _w in f.proxy.stats.refused)
        assert canary.touched == 0
    finally:
        canary.stop()


def test_fetch_is_size_capped(site: Site) -> None:
    # The title sits 4 KB into the page: a 1 KB cap never sees it.
    meta = read(fetcher(site, page_meta_max_bytes=1024), site.origin + "/late-title")
    assert meta == PageMeta()
    assert read(fetcher(site), site.origin + "/late-title").title == "Late title"


def test_fetch_is_time_capped(site: Site) -> None:
    started = time.monotonic()
    assert read(fetcher(site, page_meta_timeout=1.0), site.origin + "/hang") == PageMeta()
    assert time.monotonic() - started < 3


def test_fetch_ignores_what_is_not_html(site: Site) -> None:
    assert read(fetcher(site), site.origin + "/worker.js") == PageMeta()


def test_url_without_title_and_no_capture_is_a_short_lived_fallback(
    layouts: LayoutRegistry, fonts: FontSet
) -> None:
    """Captures off: no outbound request, and no blank card cached for a day."""
    settings = Settings(_env_file=None, capture="none")  # type: ignore[call-arg]
    service = CardService(settings, layouts=layouts, fonts=fonts)

    async def run() -> object:
        try:
            return await service.card(Card(url="https://example.com/post"))
        finally:
            await service.aclose()

    result = asyncio.run(run())
    assert result.fallback == "no_page_title"  # type: ignore[attr-defined]
    assert result.cache_control == "public, max-age=60"  # type: ignore[attr-defined]


def test_url_without_title_with_an_upstream_api_reads_the_page_through_the_guard(
    capture_settings: Settings, site: Site, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    """The HTTP provider captures through the (fake) upstream; the title comes from ogshot's own
    guarded fetch of the page, and a card whose page says nothing is a short-lived fallback."""
    settings = capture_settings.model_copy(update={"private_allowlist": site.origin})
    provider = make_provider(settings)
    assert isinstance(provider, UpstreamCapture)
    service = CardService(settings, layouts=layouts, fonts=fonts, capture=provider)

    async def run() -> tuple[object, PageMeta, object]:
        try:
            made = await service.card(Card(url=site.origin + "/"))
            meta = await service.page_meta.get(site.origin + "/")
            # "page…": a path the fake upstream answers with an image.
            bare = await service.card(Card(url=site.origin + "/page-untitled"))
            return made, meta, bare
        finally:
            await service.aclose()

    made, meta, bare = asyncio.run(run())
    assert meta == PageMeta(
        "The page's own title", "What the page says it is about.", "Loopback Gazette"
    )
    assert made.fallback is None  # type: ignore[attr-defined]
    assert bare.fallback == "no_page_title"  # type: ignore[attr-defined]
