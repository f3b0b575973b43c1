"""The preview page and the gallery in a real headless Chromium, served by a real ``ogshot serve``
on loopback: what a person sees, on a desktop and on a phone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image, ImageStat
from playwright.sync_api import Browser, Page, sync_playwright

from ogshot.capture.chromium import find_chromium

from .conftest import ogshot_serve

MOCKS = ("mock-x", "mock-facebook", "mock-linkedin", "mock-slack", "mock-discord")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with ogshot_serve(tmp_path_factory.mktemp("pages")) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=find_chromium(), args=FLAGS)
        yield b
        b.close()


class Watch:
    """Everything a page did that a self-contained page must not: console errors, failed
    requests, requests to any other host."""

    def __init__(self, page: Page, base: str) -> None:
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.foreign: list[str] = []
        host = urlsplit(base).netloc
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("requestfailed", lambda r: self.failed.append(r.url))

        def seen(request: Any) -> None:
            if urlsplit(request.url).netloc != host and not request.url.startswith("data:"):
                self.foreign.append(request.url)

        page.on("request", seen)

    def clean(self) -> None:
        assert (self.errors, self.failed, self.foreign) == ([], [], [])


def all_images_loaded(page: Page) -> list[Any]:
    page.wait_for_function(
        "Array.from(document.images).every(i => i.complete)", timeout=20_000
    )
    return page.eval_on_selector_all(
        "img", "els => els.map(i => [i.naturalWidth, i.naturalHeight, i.alt])"
    )


def test_preview_page_in_a_browser(server: str, browser: Browser, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = Watch(page, server)
    page.goto(f"{server}/preview?title=First+title&subtitle=A+subtitle&site=example.org")
    images = all_images_loaded(page)
    assert len(images) == 5 and all(w == 1200 and h == 630 and alt for w, h, alt in images)
    for mock in MOCKS:
        assert page.locator(f"#{mock}").is_visible()

    # The tags offered for copying are /meta's answer to the same card, to the byte.
    snippet = page.locator("#snippet").text_content()
    meta = httpx.get(
        f"{server}/meta", params={"title": "First title", "subtitle": "A subtitle",
                                  "site": "example.org"}
    )
    assert snippet == meta.text

    # A screenshot as the test's artefact; each mock-up region holds a picture, not a blank.
    shot = tmp_path / "preview.png"
    page.screenshot(path=str(shot), full_page=True)
    for mock in MOCKS:
        part = tmp_path / f"{mock}.png"
        page.locator(f"#{mock}").screenshot(path=str(part))
        with Image.open(part) as img:
            stat = ImageStat.Stat(img.convert("L"))
            assert img.width > 200 and stat.stddev[0] > 10, mock

    # Changing a field (typed, then Enter) redraws the card.
    before = page.locator("#mock-x img").get_attribute("src")
    etag = page.locator("#i-etag").text_content()
    page.fill("#f-title", "Second title")
    with page.expect_navigation():
        page.press("#f-title", "Enter")
    all_images_loaded(page)
    assert page.locator("#mock-x img").get_attribute("src") != before
    assert page.locator("#i-etag").text_content() != etag
    assert "Second title" in (page.locator("#mock-facebook").text_content() or "")

    # A select changes the card by itself.
    before = page.locator("#mock-x img").get_attribute("src")
    with page.expect_navigation():
        page.select_option("#f-theme", "dark")
    all_images_loaded(page)
    assert "theme=dark" in (page.locator("#mock-x img").get_attribute("src") or "")
    assert page.locator("#mock-x img").get_attribute("src") != before
    watch.clean()
    page.close()


def test_preview_is_keyboard_usable(server: str, browser: Browser) -> None:
    page = browser.new_page()
    page.goto(f"{server}/preview")
    seen = []
    for _ in range(12):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    for field in ("f-title", "f-subtitle", "f-site", "f-url", "f-template", "f-theme"):
        assert field in seen
    page.close()


def test_preview_on_a_phone_has_no_sideways_scroll(server: str, browser: Browser) -> None:
    page = browser.new_page(viewport={"width": 375, "height": 740}, device_scale_factor=2)
    title = "Ein+sehr+langer+Titel+mit+Donaudampfschifffahrtsgesellschaftskapitän"
    page.goto(f"{server}/preview?title={title}&url=https://example.com/a/very/long/path/x")
    all_images_loaded(page)
    width = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert width[0] <= width[1], width
    page.close()


def test_preview_shows_hostile_titles_as_text(server: str, browser: Browser) -> None:
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{server}/preview?title=%3Cscript%3Ealert(1)%3C/script%3E%22+%27x")
    all_images_loaded(page)
    assert dialogs == []
    text = page.locator("#mock-facebook .title").text_content()
    assert text == "<script>alert(1)</script>\" 'x"
    page.close()


def test_gallery_in_a_browser(server: str, browser: Browser) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = Watch(page, server)
    page.goto(f"{server}/templates")  # a browser asks for HTML
    images = all_images_loaded(page)
    layouts = httpx.get(f"{server}/templates").json()["templates"]
    assert len(images) == 6 * len(layouts)
    assert all(w == 1200 and h == 630 and alt for w, h, alt in images)
    with page.expect_navigation():
        page.locator(".grid a").first.click()
    assert "/preview?" in page.url
    all_images_loaded(page)
    watch.clean()
    page.close()
