"""The local browser: real headless Chromium, real pages on loopback, a canary that must stay cold.

One warm browser (and one service around it) serves the whole module; it runs on an event loop of
its own in a background thread, because Playwright objects belong to the loop that made them.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from PIL import Image

from ogshot.capture import CaptureError, CaptureRequest
from ogshot.capture.chromium import ChromiumCapture, find_chromium
from ogshot.card import Card, parse_card
from ogshot.errors import OgshotError
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.service import CardService
from ogshot.settings import Settings

from .loopback_pages import Canary, Site

T = TypeVar("T")


class LoopThread:
    """An event loop in a thread; ``run`` hands it a coroutine and waits for the result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        # A last turn or two for transports closed at the end, before the loop stops for good.
        self.run(asyncio.sleep(0.1))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


@pytest.fixture(scope="module")
def browser_settings(site: Site) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        capture="chromium",
        private_allowlist=site.origin,
        chromium_timeout=10,
        chromium_settle=0.5,
        # These tests look at what a capture holds: the card waits for it (the card deadline
        # has a test of its own below).
        card_deadline=0,
    )


@pytest.fixture(scope="module")
def service(
    loop: LoopThread, browser_settings: Settings, layouts: LayoutRegistry, fonts: FontSet
) -> Iterator[CardService]:
    provider = ChromiumCapture(browser_settings)
    loop.run(provider.start())
    svc = CardService(browser_settings, layouts=layouts, fonts=fonts, capture=provider)
    yield svc
    loop.run(svc.aclose())


@pytest.fixture
def provider(service: CardService) -> ChromiumCapture:
    assert isinstance(service.capture, ChromiumCapture)
    return service.capture


def image(body: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(body))
    img.load()
    return img.convert("RGB")


def share_of(img: Image.Image, rgb: tuple[int, int, int], tol: int = 24) -> float:
    """The share of pixels within ``tol`` of a colour."""
    small = img.resize((120, 63))
    pixels = [small.getpixel((x, y)) for y in range(63) for x in range(120)]
    close = sum(
        1
        for px in pixels
        if all(abs(a - b) <= tol for a, b in zip(px, rgb, strict=True))  # type: ignore[arg-type]
    )
    return close / len(pixels)


PAGE_BLUE = (0x1E, 0x6F, 0xD9)


# --- captures ------------------------------------------------------------------------------


def test_chromium_is_found_on_this_machine() -> None:
    assert os.access(find_chromium(), os.X_OK)


def test_capture_card_renders_with_the_page_in_it(
    loop: LoopThread, service: CardService, site: Site
) -> None:
    result = loop.run(service.card(Card(title="Hello from a capture", url=site.origin + "/")))
    assert result.fallback is None
    card = image(result.entry.body)
    assert card.size == (1200, 630)
    # The page is a flat blue: the capture box of the card shows it.
    assert share_of(card, PAGE_BLUE) > 0.1


def test_capture_follows_width_height_format_and_full_page(
    loop: LoopThread, provider: ChromiumCapture, site: Site
) -> None:
    shot = loop.run(provider.capture(CaptureRequest(site.origin + "/", width=800, height=500)))
    assert shot.media_type == "image/png" and image(shot.body).size == (800, 500)
    assert share_of(image(shot.body), PAGE_BLUE) > 0.5
    jpeg = loop.run(
        provider.capture(CaptureRequest(site.origin + "/", width=640, height=360, format="jpeg"))
    )
    assert jpeg.media_type == "image/jpeg" and jpeg.body[:3] == b"\xff\xd8\xff"
    tall = loop.run(
        provider.capture(
            CaptureRequest(site.origin + "/tall", width=400, height=300, full_page=True)
        )
    )
    assert image(tall.body).size == (400, 3000)


def test_delay_waits_before_the_screenshot(
    loop: LoopThread, provider: ChromiumCapture, site: Site
) -> None:
    started = time.monotonic()
    loop.run(provider.capture(CaptureRequest(site.origin + "/", delay=800)))
    assert time.monotonic() - started >= 0.8


# --- page metadata ---------------------------------------------------------------------------


def test_title_description_and_site_come_from_the_page(
    loop: LoopThread, service: CardService, site: Site
) -> None:
    url = site.origin + "/?auto=1"
    result = loop.run(service.card(Card(url=url)))
    assert result.fallback is None
    assert result.cache_control == service.settings.card_cache_control()
    meta = loop.run(service.page_meta.get(url))
    assert meta.title == "The page's own title"
    assert meta.description == "What the page says it is about."
    assert meta.site == "Loopback Gazette"
    # The card is the one an explicit title, subtitle and site would give (same capture).
    explicit = Card(url=url, title=meta.title, subtitle=meta.description, site=meta.site)
    assert loop.run(service.card(explicit)).entry.body == result.entry.body


def test_given_fields_win_over_the_page(loop: LoopThread, service: CardService, site: Site) -> None:
    url = site.origin + "/?given=1"
    mine = loop.run(service.card(Card(url=url, subtitle="Mine", site="My site")))
    theirs = Card(url=url, title="The page's own title", subtitle="Mine", site="My site")
    assert loop.run(service.card(theirs)).entry.body == mine.entry.body


def test_title_falls_back_to_the_title_element(
    loop: LoopThread, service: CardService, site: Site
) -> None:
    url = site.origin + "/title-only"
    result = loop.run(service.card(Card(url=url)))
    assert result.fallback is None
    meta = loop.run(service.page_meta.get(url))
    assert (meta.title, meta.description, meta.site) == ("Only a <title> here", "", "")


def test_page_without_a_title_gives_a_short_lived_fallback_not_a_blank_card(
    loop: LoopThread, service: CardService, site: Site
) -> None:
    result = loop.run(service.card(Card(url=site.origin + "/nothing")))
    assert result.fallback == "no_page_title"
    assert result.cache_control == service.settings.fallback_cache_control()
    assert result.entry.ttl == service.settings.fallback_ttl


# --- the guard -------------------------------------------------------------------------------


def settle(canary: Canary, seconds: float = 1.0) -> None:
    """Give late requests (beacons, workers, popups) time to arrive, if they were going to."""
    time.sleep(seconds)


def test_hostile_page_never_reaches_the_canary_and_the_card_renders(
    loop: LoopThread, service: CardService, provider: ChromiumCapture, site: Site, canary: Canary
) -> None:
    before = len(provider.proxy.stats.refused)
    url = f"{site.origin}/hostile?c={canary.port}&u={canary.udp_port}"
    result = loop.run(service.card(Card(title="Hostile", url=url)))
    settle(canary)
    assert canary.connections == [] and canary.datagrams == 0
    assert result.fallback is None and image(result.entry.body).size == (1200, 630)
    # The page did try: the guard refused connections to the canary's port...
    refused = provider.proxy.stats.refused[before:]
    assert any(port == canary.port for _host, port, _why in refused)
    # ...and the worker and the allowed origin's redirects ran.
    assert any(h.startswith("/worker.js") for h in site.hits)
    assert "/redirect" in site.hits


def test_every_way_out_of_the_hostile_page_reaches_the_guard_and_stops_there(
    loop: LoopThread, provider: ChromiumCapture, site: Site, canary: Canary
) -> None:
    """Each vector, one by one: the guard refused its request (plain HTTP shows its path; the
    https, wss and ws attempts are CONNECTs to the canary's port). A delay gives workers, popups
    and beacons time to fire before the context closes."""
    provider.proxy.stats.refused_paths.clear()
    url = f"{site.origin}/hostile?c={canary.port}&u={canary.udp_port}&every=1"
    loop.run(provider.capture(CaptureRequest(url, delay=1500)))
    settle(canary)
    assert canary.touched == 0
    tried = set(provider.proxy.stats.refused_paths)
    vectors = {
        "/img.png", "/script.js", "/style.css", "/font.woff2", "/prefetch", "/preload",
        "/frame", "/frame-302", "/via-302", "/meta-refresh", "/fetch", "/fetch-302", "/xhr",
        "/beacon", "/events", "/form", "/popup", "/video.mp4", "/worker-fetch", "/worker-xhr",
        "/worker-import.js", "/n-decimal", "/n-hex", "/n-octal", "/n-short", "/n-mapped",
        "/n-mapped-hex", "/n-v6", "/n-localhost", "/n-localhost-dot",
    }  # fmt: skip
    assert vectors <= tried, sorted(vectors - tried)


def test_redirect_from_the_allowed_origin_to_the_canary_is_refused(
    loop: LoopThread, service: CardService, site: Site, canary: Canary
) -> None:
    url = f"{site.origin}/redirect?to=http://127.0.0.1:{canary.port}/top-302"
    result = loop.run(service.card(Card(title="Redirected", url=url)))
    settle(canary, 0.3)
    assert canary.touched == 0
    assert result.fallback == "page_refused"  # the card renders without its capture
    assert image(result.entry.body).size == (1200, 630)


def test_meta_refresh_to_the_canary_goes_nowhere(
    loop: LoopThread, service: CardService, site: Site, canary: Canary
) -> None:
    url = f"{site.origin}/refresh?to=http://127.0.0.1:{canary.port}/top-refresh"
    result = loop.run(service.card(Card(title="Refreshed", url=url)))
    settle(canary, 0.5)
    assert canary.touched == 0
    assert image(result.entry.body).size == (1200, 630)


@pytest.mark.parametrize(
    "spelling",
    [
        "http://127.0.0.1:{c}/",
        "http://2130706433:{c}/",
        "http://0x7f.1:{c}/",
        "http://0177.0.0.1:{c}/",
        "http://127.1:{c}/",
        "http://[::ffff:127.0.0.1]:{c}/",
        "http://[::ffff:7f00:1]:{c}/",
        "http://[::1]:{c}/",
        "http://[::127.0.0.1]:{c}/",
        "http://localhost:{c}/",
        "http://LOCALHOST.:{c}/",
        "http://localhost%2e:{c}/",
        "http://%31%32%37.0.0.1:{c}/",
        "http://127\u30020\u30020\u30021:{c}/",
        "http://\uff11\uff12\uff17.0.0.1:{c}/",
        "http://\u2460\u2461\u2466.0.0.1:{c}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
    ],
)
def test_private_addresses_are_refused_before_any_connection(
    spelling: str, loop: LoopThread, service: CardService, provider: ChromiumCapture, canary: Canary
) -> None:
    allowed, launches = provider.proxy.stats.allowed, provider.captures
    url = spelling.format(c=canary.port)
    with pytest.raises(OgshotError) as info:
        loop.run(service.card(parse_card({"title": "x", "url": url})))
    assert info.value.status in (403, 422)
    assert canary.touched == 0
    assert (provider.proxy.stats.allowed, provider.captures) == (allowed, launches)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        " file:///etc/passwd",
        "javascript:alert(1)",
        "data:text/html,<h1>x</h1>",
        "view-source:http://example.com/",
        "chrome://version",
        "blob:http://example.com/x",
        "ftp://example.com/",
        "gopher://example.com/",
        "\\\\localhost\\c$\\x",
    ],
)
def test_bad_schemes_are_refused_before_the_browser_sees_them(
    url: str, loop: LoopThread, provider: ChromiumCapture
) -> None:
    captures = provider.captures
    with pytest.raises(OgshotError):
        parse_card({"title": "x", "url": url})
    with pytest.raises(CaptureError) as info:
        loop.run(provider.capture(CaptureRequest(url)))
    assert info.value.reason == "bad_url" and info.value.status == 400
    assert provider.captures == captures  # no page was opened for it


def test_canary_is_reachable_without_the_guard(
    loop: LoopThread, site: Site, canary: Canary
) -> None:
    """The control: the same hostile page in a browser without the proxy does reach the canary,
    so the zero above is the guard's doing and not a canary that cannot be reached."""
    from playwright.async_api import async_playwright

    before = canary.touched

    async def unguarded() -> None:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=find_chromium(), args=["--no-sandbox", "--disable-gpu"]
            )
            page = await browser.new_page()
            await page.goto(f"{site.origin}/hostile?c={canary.port}&u={canary.udp_port}")
            await asyncio.sleep(1.0)
            await browser.close()

    loop.run(unguarded())
    assert canary.touched > before
    canary.connections.clear()
    canary.datagrams = 0


# --- the browser's life ------------------------------------------------------------------------


def test_browser_killed_mid_capture_is_replaced_and_captures_go_on(
    loop: LoopThread, provider: ChromiumCapture, site: Site
) -> None:
    launches = provider.launches
    pid = provider.browser_pid
    assert pid is not None
    future = asyncio.run_coroutine_threadsafe(
        provider.capture(CaptureRequest(site.origin + "/slow?s=1.5", width=600, height=400)),
        loop.loop,
    )
    time.sleep(0.6)
    os.kill(pid, signal.SIGKILL)
    # The capture under the dead browser is retried on a new one.
    shot = future.result(30)
    assert image(shot.body).size == (600, 400)
    assert provider.launches == launches + 1 and provider.browser_pid not in (None, pid)
    nxt = loop.run(provider.capture(CaptureRequest(site.origin + "/", width=300, height=200)))
    assert image(nxt.body).size == (300, 200)


def test_page_that_never_loads_meets_the_deadline_and_frees_its_slot(
    loop: LoopThread, provider: ChromiumCapture, site: Site
) -> None:
    saved = provider.settings
    provider.settings = saved.model_copy(update={"chromium_timeout": 2.0})
    try:

        async def two_hangs() -> list[BaseException | Any]:
            reqs = [CaptureRequest(f"{site.origin}/hang?i={i}") for i in range(2)]
            return await asyncio.gather(*map(provider.capture, reqs), return_exceptions=True)

        started = time.monotonic()
        outcomes = loop.run(two_hangs())
        elapsed = time.monotonic() - started
    finally:
        provider.settings = saved
    assert all(isinstance(o, CaptureError) and o.reason == "capture_timeout" for o in outcomes)
    assert elapsed < 2.0 + 1.5
    assert provider.in_flight == 0

    # Both slots are free again: two captures at once go through without queueing out.
    async def two_good() -> list[Any]:
        reqs = [CaptureRequest(f"{site.origin}/?after-hang={i}") for i in range(2)]
        return await asyncio.gather(*map(provider.capture, reqs))

    assert all(image(s.body).size == (1280, 800) for s in loop.run(two_good()))


def test_browser_is_recycled_after_n_captures(
    loop: LoopThread, provider: ChromiumCapture, site: Site
) -> None:
    saved = provider.settings
    provider.settings = saved.model_copy(update={"chromium_recycle": 2})
    try:
        launches = provider.launches
        for i in range(3):
            loop.run(provider.capture(CaptureRequest(f"{site.origin}/?recycle={i}")))
    finally:
        provider.settings = saved
    assert provider.launches >= launches + 1


def test_overloaded_when_no_slot_frees_in_time(
    loop: LoopThread, provider: ChromiumCapture, site: Site
) -> None:
    saved = provider.settings
    provider.settings = saved.model_copy(update={"chromium_queue_timeout": 0.2})
    provider._slots = asyncio.Semaphore(1)
    try:

        async def crowd() -> list[BaseException | Any]:
            reqs = [CaptureRequest(f"{site.origin}/slow?s=1&crowd={i}") for i in range(2)]
            return await asyncio.gather(*map(provider.capture, reqs), return_exceptions=True)

        outcomes = loop.run(crowd())
    finally:
        provider.settings = saved
        provider._slots = asyncio.Semaphore(saved.chromium_concurrency)
    errors = [o for o in outcomes if isinstance(o, CaptureError)]
    assert len(errors) == 1 and errors[0].reason == "overloaded" and errors[0].status == 503


# --- blocking ads and cookie banners --------------------------------------------------------

RED, GREEN = (0xE0, 0x10, 0x10), (0x10, 0xC0, 0x10)


@pytest.fixture(scope="module")
def blocking(loop: LoopThread, browser_settings: Settings) -> Iterator[ChromiumCapture]:
    provider = ChromiumCapture(browser_settings.model_copy(update={"chromium_block": True}))
    yield provider
    loop.run(provider.aclose())


def test_blocking_hides_cookie_banners_and_ads_and_skips_ad_requests(
    loop: LoopThread, provider: ChromiumCapture, blocking: ChromiumCapture, site: Site
) -> None:
    url = site.origin + "/cluttered"
    site.hits.clear()
    plain = image(loop.run(provider.capture(CaptureRequest(url))).body)
    assert "/pagead/js/adsbygoogle.js" in site.hits
    assert share_of(plain, RED) > 0.3 and share_of(plain, GREEN) > 0.1
    site.hits.clear()
    clean = image(loop.run(blocking.capture(CaptureRequest(url + "?b=1"))).body)
    assert "/pagead/js/adsbygoogle.js" not in site.hits
    assert share_of(clean, RED) == 0 and share_of(clean, GREEN) == 0
    assert share_of(clean, PAGE_BLUE) > 0.9
    assert blocking.blocked.requests >= 1 and blocking.blocked.selectors >= 2
    # Cleaned captures are other images: they never share a cache key with plain ones.
    assert blocking.name != provider.name


def test_blocking_is_off_by_default() -> None:
    assert Settings(_env_file=None).chromium_block is False  # type: ignore[call-arg]

def test_the_card_deadline_holds_for_the_local_browser(
    loop: LoopThread,
    browser_settings: Settings,
    layouts: LayoutRegistry,
    fonts: FontSet,
    site: Site,
) -> None:
    # The deadline lives above the providers: a page that takes 2 s to load in the browser
    # answers a capture_pending card in well under that, then the complete card once it lands.
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, **{**browser_settings.model_dump(), "card_deadline": 0.5}
    )
    provider = ChromiumCapture(settings)
    loop.run(provider.start())
    svc = CardService(settings, layouts=layouts, fonts=fonts, capture=provider)
    try:
        card = Card(title="Slow page", url=f"{site.origin}/slow?s=2&for=deadline")
        t = time.monotonic()
        first = loop.run(svc.card(card))
        waited = time.monotonic() - t
        assert first.fallback == "capture_pending"
        assert waited < 1.8
        give_up = time.monotonic() + 30
        while svc.captures._inflight:
            assert time.monotonic() < give_up, "the capture never landed"
            time.sleep(0.1)
        complete = loop.run(svc.card(card))
        assert complete.fallback is None
        assert image(complete.entry.body).size == (1200, 630)
    finally:
        loop.run(svc.aclose())
