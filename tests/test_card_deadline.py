"""A crawler is never kept waiting: the card deadline, and one capture per page across workers.

Captures come from the fake upstream on a loopback port, made slow with its ``hold``; the
workers share a real Redis.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ogshot.api import create_app
from ogshot.capture import make_provider
from ogshot.card import parse_card
from ogshot.cli import main
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.pagemeta import PageMetaStore
from ogshot.service import CardResult, CardService
from ogshot.settings import Settings

from .conftest import decode
from .fake_upstream import KEY as UPSTREAM_KEY
from .fake_upstream import FakeUpstream
from .loopback_pages import Site

#: The fallback reason of a card answered before its capture was ready (a public name).
PENDING = "capture_pending"


def slow_settings(base: Settings, **kw: Any) -> Settings:
    """Capture settings where a slow capture is allowed to finish (its own timeout is long)."""
    values: dict[str, Any] = dict(
        upstream_read_timeout=5.0, upstream_timeout=6.0, upstream_retries=0, fallback_ttl=60
    )
    values.update(kw)
    return Settings(_env_file=None, **{**base.model_dump(), **values})  # type: ignore[call-arg]


@pytest.fixture
def held(fake_upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    """The fake upstream, taking a second over every good page; back to quick afterwards."""
    fake_upstream.hold = 1.0
    yield fake_upstream
    fake_upstream.hold = 0.0


def service_for(settings: Settings, layouts: LayoutRegistry, fonts: FontSet) -> CardService:
    return CardService(settings, layouts=layouts, fonts=fonts, capture=make_provider(settings))


async def landed(svc: CardService, timeout: float = 8.0) -> None:
    """Wait until the service's background captures and cards have all finished."""
    give_up = time.monotonic() + timeout
    while svc.captures._inflight or svc._inflight:
        assert time.monotonic() < give_up, "the background capture never landed"
        await asyncio.sleep(0.02)


CARD = {"title": "Deadline", "url": "https://example.com/page-deadline"}


def test_a_slow_capture_answers_the_pending_fallback_within_the_deadline_then_the_full_card(
    capture_settings: Settings, held: FakeUpstream, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    settings = slow_settings(capture_settings, card_deadline=0.3)
    svc = service_for(settings, layouts, fonts)
    app = create_app(settings, service=svc)

    async def run() -> tuple[httpx.Response, float, httpx.Response, httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                t = time.monotonic()
                first = await client.get("/og.png", params=CARD)
                waited = time.monotonic() - t
                again = await client.get("/og.png", params=CARD)  # capture still running
                await landed(svc)
                complete = await client.get("/og.png", params=CARD)
                return first, waited, again, complete

    first, waited, again, complete = asyncio.run(run())
    assert first.status_code == 200
    assert waited < 0.9  # the capture takes a second; the deadline is 0.3 s
    assert first.headers["x-ogshot-fallback"] == PENDING
    assert first.headers["cache-control"] == "public, max-age=60"
    assert decode(first.content).size == (1200, 630)
    assert again.headers["x-ogshot-fallback"] == PENDING
    assert again.content == first.content  # answered from the cache, not rendered again
    # The capture went on in the background and landed: the next request gets the real card.
    assert "x-ogshot-fallback" not in complete.headers
    assert complete.headers["cache-control"].startswith("public, max-age=86400")
    assert complete.content != first.content
    assert decode(complete.content).convert("RGB").getpixel((40, 32))[0] > 200  # the page's dot
    assert held.calls["page-deadline"] == 1


def test_a_herd_during_a_slow_capture_costs_one_capture(
    capture_settings: Settings, held: FakeUpstream, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    settings = slow_settings(capture_settings, card_deadline=0.2)
    svc = service_for(settings, layouts, fonts)
    card = parse_card({**CARD, "url": "https://example.com/page-herd"})

    async def run() -> tuple[list[CardResult], list[CardResult]]:
        try:
            herd = []
            for _ in range(4):  # waves of crawlers while the capture runs
                herd += await asyncio.gather(*(svc.card(card) for _ in range(25)))
                await asyncio.sleep(0.1)
            await landed(svc)
            after = list(await asyncio.gather(*(svc.card(card) for _ in range(25))))
            return herd, after
        finally:
            await svc.aclose()

    herd, after = asyncio.run(run())
    assert {r.fallback for r in herd} == {PENDING}
    assert {r.fallback for r in after} == {None}
    assert len({r.entry.etag for r in after}) == 1
    assert held.calls["page-herd"] == 1
    assert svc.renders == 2  # one pending card, one complete card


def test_without_a_deadline_the_card_waits_for_its_capture(
    capture_settings: Settings, held: FakeUpstream, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    settings = slow_settings(capture_settings, card_deadline=0)
    svc = service_for(settings, layouts, fonts)
    card = parse_card({**CARD, "url": "https://example.com/page-nodeadline"})

    async def run() -> CardResult:
        try:
            return await svc.card(card)
        finally:
            await svc.aclose()

    assert asyncio.run(run()).fallback is None


@pytest.mark.parametrize("deadline", [0.0, 0.2], ids=["no-deadline", "deadline"])
def test_two_workers_sharing_redis_capture_a_slow_page_once(
    capture_settings: Settings,
    held: FakeUpstream,
    redis_url: str,
    layouts: LayoutRegistry,
    fonts: FontSet,
    deadline: float,
) -> None:
    # The lock wait (0.1 s) is far shorter than the capture (1 s): a waiting worker must still
    # not give up and capture the page a second time.
    settings = slow_settings(
        capture_settings,
        redis_url=redis_url,
        cache_lock_wait=0.1,
        card_deadline=deadline,
        rate_limit="off",  # per-client budgets are not what this is about
    )
    a = service_for(settings, layouts, fonts)
    b = service_for(settings, layouts, fonts)
    page = f"https://example.com/page-workers-{int(deadline * 10)}"
    cards = [parse_card({**CARD, "url": page, "subtitle": str(i)}) for i in range(2)]

    async def run() -> list[CardResult]:
        try:
            # Two cards over the same page, asked of both workers at once: one capture.
            calls = [(a if i % 2 else b).card(cards[i // 10 % 2]) for i in range(40)]
            first = await asyncio.gather(*calls)
            await landed(a)
            await landed(b)
            later = [await svc.card(card) for svc in (a, b) for card in cards]
            return [*first, *later]
        finally:
            await a.aclose()
            await b.aclose()

    results = asyncio.run(run())
    assert held.calls[page.rsplit("/", 1)[1]] == 1
    assert {r.fallback for r in results[-4:]} == {None}
    if deadline == 0:
        assert {r.fallback for r in results} == {None}


@pytest.mark.parametrize("command", ["batch", "render"])
def test_the_command_line_waits_for_its_captures_whatever_the_deadline(
    fake_upstream: FakeUpstream,
    held: FakeUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    # The deadline is for crawlers: a build has nobody waiting, and a card written without its
    # capture would stay so until the next build.
    for name in list(os.environ):
        if name.startswith("OGSHOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OGSHOT_CAPTURE", "http")
    monkeypatch.setenv("OGSHOT_UPSTREAM_URL", fake_upstream.url)
    monkeypatch.setenv("OGSHOT_UPSTREAM_KEY", UPSTREAM_KEY)
    monkeypatch.setenv("OGSHOT_CARD_DEADLINE", "0.2")
    source = tmp_path / "cards.jsonl"
    source.write_text(
        json.dumps(
            {"title": "Built", "url": f"https://example.com/page-{command}", "name": "built"}
        )
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "out" / "built.png"
    if command == "batch":
        code = main(["batch", str(source), "--out", str(tmp_path / "out")])
    else:
        out.parent.mkdir()
        page = f"https://example.com/page-{command}"
        code = main(["render", "--title", "Built", "--url", page, "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "capture_pending" not in err and "without its capture" not in err
    assert held.calls[f"page-{command}"] == 1
    card = decode(out.read_bytes())
    assert card.convert("RGB").getpixel((40, 32))[0] > 200  # the page is in the card


def test_a_slow_page_title_is_bounded_by_the_deadline_too(
    capture_settings: Settings, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    # A card without a title takes it from the page; reading a slow page must not hold the card
    # past the deadline either. The "card" layout has no capture box: only the title is read.
    site = Site().start()
    try:
        settings = slow_settings(
            capture_settings, card_deadline=0.3, private_allowlist=site.origin
        )
        svc = service_for(settings, layouts, fonts)
        card = parse_card({"url": f"{site.origin}/slow?s=2.5", "template": "card"})

        async def run() -> tuple[CardResult, float, CardResult]:
            try:
                t = time.monotonic()
                first = await svc.card(card)
                waited = time.monotonic() - t
                await landed(svc)
                give_up = time.monotonic() + 8
                while await svc.page_meta.cache.get(PageMetaStore.key(card.url or "")) is None:
                    assert time.monotonic() < give_up, "the page's title never arrived"
                    await asyncio.sleep(0.02)
                return first, waited, await svc.card(card)
            finally:
                await svc.aclose()

        first, waited, complete = asyncio.run(run())
    finally:
        site.stop()
    assert first.fallback == PENDING
    assert waited < 1.6
    assert complete.fallback is None
    assert complete.entry.body != first.entry.body  # the page's own title, not its host
