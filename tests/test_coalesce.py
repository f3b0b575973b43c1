"""Coalescing and stale-while-revalidate: a herd costs one render, stale cards are served."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ogshot import service as service_module
from ogshot.api import create_app
from ogshot.cache.redis_tier import RedisCache
from ogshot.card import Card, parse_card
from ogshot.errors import OgshotError
from ogshot.fonts import FontSet, search_path
from ogshot.layouts import LayoutRegistry
from ogshot.service import CardResult, CardService
from ogshot.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 2_000_000.0

    def __call__(self) -> float:
        return self.now


class SlowService(CardService):
    """A service whose renders take longer (widening every race window) and can be made to fail
    or to come out as fallbacks."""

    def __init__(self, *args: Any, delay: float = 0.2, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.delay = delay
        self.fail = False
        self.fallback: str | None = None
        self.attempts = 0

    def _render(
        self, card: Card, capture: Image.Image | None, spans: list[tuple[str, float]]
    ) -> bytes:
        self.attempts += 1
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("render broke")
        return super()._render(card, capture, spans)

    async def _make(self, key: str, card: Card) -> CardResult:
        result = await super()._make(key, card)
        if self.fallback is None:
            return result
        entry = self.new_entry(result.entry.body, result.entry.media_type, self.fallback)
        return self.result_for(entry, "miss")


def make_settings(**kw: Any) -> Settings:
    return Settings(_env_file=None, capture="none", **kw)  # type: ignore[call-arg]


CARD = {"title": "A herd of crawlers", "site": "example.org"}


async def settle(svc: CardService) -> None:
    """Wait until no background work is left."""
    for _ in range(500):
        if not svc._inflight:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("background work did not finish")


# --- One process ---------------------------------------------------------------------------------


def test_200_concurrent_cold_requests_render_once(layouts: LayoutRegistry, fonts: FontSet) -> None:
    svc = SlowService(make_settings(), layouts=layouts, fonts=fonts, delay=0.3)
    app = create_app(svc.settings, service=svc)

    async def run() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await asyncio.gather(
                    *(client.get("/og.png", params=CARD) for _ in range(200))
                )

    responses = asyncio.run(run())
    assert svc.renders == 1
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert len({r.headers["etag"] for r in responses}) == 1
    sources = [r.headers["x-ogshot-cache"] for r in responses]
    assert sources.count("miss") == 1
    assert set(sources) <= {"miss", "coalesced", "hit"}


def test_a_waiter_that_hangs_up_does_not_cancel_the_shared_render(
    layouts: LayoutRegistry, fonts: FontSet
) -> None:
    svc = SlowService(make_settings(), layouts=layouts, fonts=fonts, delay=0.3)
    card = parse_card(CARD)

    async def run() -> CardResult:
        first = asyncio.create_task(svc.card(card))
        await asyncio.sleep(0.05)
        first.cancel()  # the client that started the render goes away
        second = await svc.card(card)
        with pytest.raises(asyncio.CancelledError):
            await first
        return second

    result = asyncio.run(run())
    assert svc.renders == 1
    assert result.source == "coalesced"


def test_a_request_joining_work_cancelled_before_it_began_is_not_left_waiting(
    layouts: LayoutRegistry, fonts: FontSet
) -> None:
    svc = SlowService(make_settings(), layouts=layouts, fonts=fonts, delay=0.1)
    card = parse_card(CARD)
    key = svc.key(card)

    async def run() -> tuple[bool, bool]:
        work = svc._start(key, card, None)
        work.cancel()  # as closing the service does, before the work's first step
        # A request joins before that step: the work's own code never runs to tell it.
        joined = asyncio.ensure_future(svc._outcome(work))
        done, _ = await asyncio.wait([joined], timeout=2)
        # And one joining after it has ended is not left waiting either.
        late = asyncio.ensure_future(svc._outcome(work))
        done_late, _ = await asyncio.wait([late], timeout=2)
        return joined in done and joined.cancelled(), late in done_late and late.cancelled()

    assert asyncio.run(run()) == (True, True)


def test_a_failed_render_reaches_every_waiter_and_the_next_request_retries(
    layouts: LayoutRegistry, fonts: FontSet
) -> None:
    svc = SlowService(make_settings(), layouts=layouts, fonts=fonts, delay=0.1)
    svc.fail = True
    card = parse_card(CARD)

    async def run() -> list[Any]:
        out = await asyncio.gather(*(svc.card(card) for _ in range(10)), return_exceptions=True)
        svc.fail = False
        out.append(await svc.card(card))
        return out

    out = asyncio.run(run())
    assert all(isinstance(o, RuntimeError) for o in out[:10])
    assert isinstance(out[10], CardResult) and out[10].source == "miss"
    assert svc.attempts == 2


# --- Across workers sharing Redis ----------------------------------------------------------------


def test_two_workers_sharing_redis_render_once(
    redis_url: str, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    settings = make_settings(redis_url=redis_url)
    a = SlowService(settings, layouts=layouts, fonts=fonts, delay=0.3)
    b = SlowService(settings, layouts=layouts, fonts=fonts, delay=0.3)
    card = parse_card(CARD)

    async def run() -> list[CardResult]:
        try:
            calls = [(a if i % 2 else b).card(card) for i in range(200)]
            return await asyncio.gather(*calls)
        finally:
            await a.aclose()
            await b.aclose()

    results = asyncio.run(run())
    assert a.renders + b.renders == 1
    assert len({r.entry.body for r in results}) == 1
    assert [r.source for r in results].count("miss") == 1


def test_a_waiter_makes_the_card_itself_when_the_lease_holder_never_delivers(
    redis_url: str, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    settings = make_settings(redis_url=redis_url, cache_lock_wait=0.3)
    svc = SlowService(settings, layouts=layouts, fonts=fonts, delay=0.0)
    card = parse_card(CARD)

    async def run() -> tuple[CardResult, float]:
        other = RedisCache.from_url(redis_url)
        try:
            # A worker that took the lease and died: it never stores, never releases.
            assert await other.acquire(svc.key(card), 60_000) is not None
            t = time.monotonic()
            result = await svc.card(card)
            return result, time.monotonic() - t
        finally:
            await other.aclose()
            await svc.aclose()

    result, waited = asyncio.run(run())
    assert svc.renders == 1
    assert result.source == "miss"
    assert 0.3 <= waited < 5


def test_closing_mid_render_releases_the_lease_before_the_pool_closes(
    redis_url: str, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    """aclose() awaits the cancelled card work: its lease is given back while the Redis pool is
    still open (not later, on a fresh connection nothing closes)."""
    settings = make_settings(redis_url=redis_url)
    svc = SlowService(settings, layouts=layouts, fonts=fonts, delay=0.5)
    card = parse_card(CARD)

    async def run() -> tuple[bool, bool]:
        other = RedisCache.from_url(redis_url)
        try:
            waiter = asyncio.ensure_future(svc.card(card))
            for _ in range(500):  # until the render is under way, the lease held
                if svc.attempts:
                    break
                await asyncio.sleep(0.01)
            assert svc.attempts == 1
            await svc.aclose()
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
            return not svc._inflight, await other.acquire(svc.key(card), 60_000) is not None
        finally:
            await other.aclose()

    assert asyncio.run(run()) == (True, True)


def test_a_redis_that_is_down_never_fails_a_card(layouts: LayoutRegistry, fonts: FontSet) -> None:
    from .conftest import free_port

    settings = make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    svc = CardService(settings, layouts=layouts, fonts=fonts)

    async def run() -> list[CardResult]:
        try:
            return [await svc.card(parse_card(CARD)) for _ in range(3)]
        finally:
            await svc.aclose()

    results = asyncio.run(run())
    assert [r.source for r in results] == ["miss", "hit", "hit"]
    assert svc.renders == 1


# --- Stale while revalidate, stale if error ------------------------------------------------------


def swr_service(layouts: LayoutRegistry, fonts: FontSet, clock: Clock) -> SlowService:
    settings = make_settings(
        cache_ttl=60, cache_stale_while_revalidate=30, cache_stale_if_error=100, fallback_ttl=10
    )
    return SlowService(settings, layouts=layouts, fonts=fonts, delay=0.05, clock=clock)


def test_stale_entry_is_served_while_one_refresh_runs(
    layouts: LayoutRegistry, fonts: FontSet
) -> None:
    clock = Clock()
    svc = swr_service(layouts, fonts, clock)
    card = parse_card(CARD)
    t0 = clock.now

    async def run() -> tuple[list[CardResult], CardResult]:
        await svc.card(card)
        clock.now = t0 + 70  # past the TTL, inside the stale window
        stale = await asyncio.gather(*(svc.card(card) for _ in range(20)))
        await settle(svc)
        return stale, await svc.card(card)

    stale, after = asyncio.run(run())
    assert {r.source for r in stale} == {"stale"}
    assert {r.entry.created for r in stale} == {t0}
    assert svc.renders == 2  # the first, and exactly one refresh
    assert after.source == "hit"
    assert after.entry.created == t0 + 70


def test_failed_refresh_keeps_serving_stale_and_backs_off(
    layouts: LayoutRegistry, fonts: FontSet
) -> None:
    clock = Clock()
    svc = swr_service(layouts, fonts, clock)
    card = parse_card(CARD)
    t0 = clock.now

    async def run() -> list[CardResult]:
        first = await svc.card(card)
        svc.fail = True
        clock.now = t0 + 70
        out = [await svc.card(card)]
        await settle(svc)
        out += [await svc.card(card) for _ in range(5)]
        await settle(svc)
        # Past the stale-while-revalidate window, inside stale-if-error, after the back-off.
        clock.now = t0 + 130
        out.append(await svc.card(card))
        await settle(svc)
        return [first, *out]

    results = asyncio.run(run())
    assert [r.source for r in results] == ["miss"] + ["stale"] * 7
    assert len({r.entry.etag for r in results}) == 1
    assert svc.attempts == 3  # the first render, one background refresh, one foreground try


def test_past_every_stale_window_a_failure_is_an_error(
    layouts: LayoutRegistry, fonts: FontSet
) -> None:
    clock = Clock()
    svc = swr_service(layouts, fonts, clock)
    card = parse_card(CARD)

    async def run() -> None:
        await svc.card(card)
        svc.fail = True
        clock.now += 60 + 100 + 1
        await svc.card(card)

    with pytest.raises(RuntimeError, match="render broke"):
        asyncio.run(run())


def test_fallbacks_live_briefly_and_never_replace_a_good_card(
    layouts: LayoutRegistry, fonts: FontSet
) -> None:
    clock = Clock()
    svc = swr_service(layouts, fonts, clock)
    card = parse_card(CARD)
    key = svc.key(card)
    t0 = clock.now

    async def run() -> list[CardResult]:
        svc.fallback = "capture_timeout"
        out = [await svc.card(card), await svc.card(card)]
        clock.now = t0 + 11  # past the fallback TTL: made again, never served stale
        svc.fallback = None
        out.append(await svc.card(card))
        clock.now = t0 + 11 + 70  # the good card is stale; its refresh comes out a fallback
        svc.fallback = "capture_timeout"
        out.append(await svc.card(card))
        await settle(svc)
        out.append(await svc.card(card))
        return out

    fb, fb_hit, good, stale, still = asyncio.run(run())
    assert (fb.source, fb.fallback, fb_hit.source) == ("miss", "capture_timeout", "hit")
    assert fb.cache_control == "public, max-age=10"
    assert (fb.entry.ttl, fb.entry.grace) == (10, 0)
    assert (good.source, good.fallback) == ("miss", None)
    assert good.cache_control.startswith("public, max-age=60")
    assert (stale.source, stale.fallback, still.fallback) == ("stale", None, None)
    assert still.entry.etag == good.entry.etag
    cached = svc.cache.peek(key)
    assert cached is not None and cached.fallback is None and cached.created == t0 + 11


# --- Keys ----------------------------------------------------------------------------------------


def test_two_urls_meaning_the_same_card_share_one_key(
    service: CardService, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    a = parse_card({"title": "Hello  world", "theme": "auto", "utm_source": "x"})
    b = parse_card({"title": " Hello world ", "template": "DEFAULT", "format": "png"})
    assert service.key(a) == service.key(b)
    other = CardService(service.settings, layouts=layouts, fonts=fonts)
    assert other.key(a) == service.key(a)  # stable across processes
    assert service.key(a).startswith("card:") and len(service.key(a)) == 5 + 64


@pytest.mark.parametrize(
    "change", [{"format": "jpeg"}, {"v": "2"}, {"theme": "dark"}, {"subtitle": "x"}]
)
def test_anything_that_changes_the_bytes_changes_the_key(
    service: CardService, change: dict[str, str]
) -> None:
    base = {"title": "Hello"}
    assert service.key(parse_card(base)) != service.key(parse_card({**base, **change}))


def test_the_font_set_version_is_part_of_the_key(
    service: CardService, layouts: LayoutRegistry
) -> None:
    fake_fonts: Any = SimpleNamespace(version="another-font-set", shapes=True)
    other = CardService(service.settings, layouts=layouts, fonts=fake_fonts)
    card = parse_card({"title": "Hello"})
    assert other.key(card) != service.key(card)


@pytest.mark.parametrize("name", ["RENDERER_VERSION", "ENCODER_VERSION"])
def test_renderer_and_encoder_versions_are_part_of_the_key(
    service: CardService, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # Moving either version must move every key, or old bytes would be served as new ones.
    card = parse_card({"title": "Hello"})
    before = service.key(card)
    monkeypatch.setattr(service_module, name, "moved-on")
    assert service.key(card) != before


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(
    title=_TEXT.filter(lambda t: t.strip() != ""),
    subtitle=_TEXT,
    site=_TEXT,
    url=st.sampled_from(["", "https://example.org/a?b=c", "https://例え.jp/パス"]),
    template=st.sampled_from(["default", "split", "browser", "card"]),
    theme=st.sampled_from(["auto", "light", "dark"]),
    v=st.sampled_from(["", "2", "é"]),
    capturing=st.booleans(),
)
def test_the_key_is_the_hash_of_its_material_as_sorted_json(
    layouts: LayoutRegistry,
    fonts: FontSet,
    title: str,
    subtitle: str,
    site: str,
    url: str,
    template: str,
    theme: str,
    v: str,
    capturing: bool,
) -> None:
    """The key is made from a frame kept per layout and capture choice around the card's own
    fields: it must be exactly the hash of the whole material, keys sorted."""
    capture: Any = SimpleNamespace(name="upstream-x", enabled=capturing)
    svc = KEY_SERVICES.setdefault(
        capturing, CardService(make_settings(), layouts=layouts, fonts=fonts, capture=capture)
    )
    try:
        card = parse_card(
            {
                "title": title,
                "subtitle": subtitle,
                "site": site,
                "url": url,
                "template": template,
                "theme": theme,
                "v": v,
            }
        )
    except OgshotError:
        return  # refused as a card: no key to make
    raw = json.dumps(
        svc.key_material(card), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    assert svc.key(card) == "card:" + hashlib.sha256(raw.encode()).hexdigest()


#: One service per capture choice for the test above (a service starts threads).
KEY_SERVICES: dict[bool, CardService] = {}


class _Odd(BaseException):
    """An exception beyond Exception that is not a cancellation."""


def test_waiters_hear_of_work_ending_in_an_exception_beyond_exception(
    layouts: LayoutRegistry, fonts: FontSet
) -> None:
    class Broken(CardService):
        async def _produce(self, key: str, card: Card, stale: Any) -> CardResult:
            await asyncio.sleep(0.05)
            raise BaseExceptionGroup("the work's parts failed", [_Odd()])

    svc = Broken(make_settings(), layouts=layouts, fonts=fonts)
    card = parse_card(CARD)
    key = svc.key(card)

    async def run() -> list[str]:
        requests = [asyncio.create_task(svc._coalesced(key, card, None)) for _ in range(3)]
        _, pending = await asyncio.wait(requests, timeout=2)
        for request in pending:
            request.cancel()
        return [
            "left waiting" if r in pending else type(r.exception()).__name__ for r in requests
        ]

    assert asyncio.run(run()) == ["BaseExceptionGroup"] * 3


def test_requests_that_go_away_are_not_all_held_while_the_work_goes_on(
    layouts: LayoutRegistry, fonts: FontSet
) -> None:
    class Slow(CardService):
        async def _produce(self, key: str, card: Card, stale: Any) -> CardResult:
            await asyncio.sleep(0.5)  # as a card waiting on its capture
            raise RuntimeError("no card")

    svc = Slow(make_settings(), layouts=layouts, fonts=fonts)
    card = parse_card(CARD)
    key = svc.key(card)

    async def run() -> tuple[int, int]:
        leader = asyncio.create_task(svc._coalesced(key, card, None))
        await asyncio.sleep(0)
        for _ in range(10):  # ten crowds of 500 join the work and hang up
            crowd = [asyncio.create_task(svc._coalesced(key, card, None)) for _ in range(500)]
            await asyncio.sleep(0)
            for request in crowd:
                request.cancel()
            await asyncio.gather(*crowd, return_exceptions=True)
        held = len(svc._waiters[svc._inflight[key]])
        await asyncio.gather(leader, return_exceptions=True)
        await asyncio.sleep(0)
        return held, len(svc._waiters)

    held, lists_left = asyncio.run(run())
    # 5,001 requests joined; what is held is bounded by the largest crowd at once (twice it at
    # most, between two sheddings), not by all who ever came.
    assert held <= 2 * 500 + 1
    assert lists_left == 0


def test_a_render_whose_wait_was_cancelled_ends_quietly(
    layouts: LayoutRegistry, fonts: FontSet, caplog: pytest.LogCaptureFixture
) -> None:
    """The render thread hands its outcome straight to the event loop: a wait cancelled
    meanwhile (the service closing) must not make that hand-over fail."""
    svc = CardService(make_settings(), layouts=layouts, fonts=fonts)
    card = parse_card(CARD)

    def slow(card: Card, capture: Any) -> tuple[bytes, str]:
        time.sleep(0.2)
        return b"png", '"etag"'

    def broken(card: Card, capture: Any) -> tuple[bytes, str]:
        time.sleep(0.2)
        raise RuntimeError("render broke")

    async def run() -> tuple[bool, bool, str]:
        quiet = svc._on_render_thread(slow, card, None)
        failing = svc._on_render_thread(broken, card, None)
        quiet.cancel()
        failing.cancel()
        await asyncio.sleep(0.5)  # both renders end and hand over meanwhile
        made = await svc._on_render_thread(slow, card, None)
        with pytest.raises(RuntimeError, match="render broke"):
            await svc._on_render_thread(broken, card, None)
        return quiet.cancelled(), failing.cancelled(), made[1]

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(run()) == (True, True, '"etag"')
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_shedding_gone_waiters_costs_each_request_once_on_average(
    layouts: LayoutRegistry, fonts: FontSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    sheds = []

    class Counted(service_module._Waiters):
        def __setitem__(self, index: Any, value: Any) -> None:
            sheds.append(len(self))
            super().__setitem__(index, value)

    monkeypatch.setattr(service_module, "_Waiters", Counted)

    class Slow(CardService):
        async def _produce(self, key: str, card: Card, stale: Any) -> CardResult:
            await asyncio.sleep(0.5)
            raise RuntimeError("no card")

    svc = Slow(make_settings(), layouts=layouts, fonts=fonts)
    card = parse_card(CARD)
    key = svc.key(card)

    async def run() -> None:
        work = svc._start(key, card, None)
        staying = [svc._outcome(work) for _ in range(1023)]
        for _ in range(3000):  # one comes and goes, again and again, beside a crowd that stays
            svc._outcome(work).cancel()
        for waiter in staying:
            waiter.cancel()
        await asyncio.gather(work, return_exceptions=True)

    asyncio.run(run())
    # Shed once the list doubled since the last shedding: a handful of times, not on every
    # arrival once the crowd sits near a power of two.
    assert 1 <= len(sheds) <= 8


def test_a_render_and_its_wait_are_cancelled_together(
    layouts: LayoutRegistry, fonts: FontSet
) -> None:
    svc = CardService(make_settings(render_threads=1), layouts=layouts, fonts=fonts)
    card = parse_card(CARD)
    ran: list[str] = []

    def busy(card: Card, capture: Any) -> tuple[bytes, str]:
        time.sleep(0.2)
        ran.append("busy")
        return b"", '""'

    def queued(card: Card, capture: Any) -> tuple[bytes, str]:
        ran.append("queued")
        return b"", '""'

    started = threading.Event()

    def blocking(card: Card, capture: Any) -> tuple[bytes, str]:
        started.set()
        return busy(card, capture)

    async def run() -> tuple[bool, bool]:
        first = svc._on_render_thread(busy, card, None)
        given_up = svc._on_render_thread(queued, card, None)
        given_up.cancel()  # its wait given up while it is still queued: it never runs
        await first
        await asyncio.sleep(0.1)
        blocker = svc._on_render_thread(blocking, card, None)
        await asyncio.to_thread(started.wait, 5)  # the thread is taken: the next one queues
        left = svc._on_render_thread(queued, card, None)
        svc._executor.shutdown(wait=False, cancel_futures=True)  # as closing the service does
        done, _ = await asyncio.wait([left], timeout=2)
        await blocker
        return left in done, left.cancelled()

    assert asyncio.run(run()) == (True, True)
    assert ran == ["busy", "busy"]


def test_what_a_render_logs_carries_its_requests_id_and_its_spans_reach_the_line(
    layouts: LayoutRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The render runs on a thread, in the context of the request it is made for: a warning it
    logs (a character no font has) names that request, and the spans it times are on the
    request's log line, a render that fails included."""
    from ogshot import logs

    seen: list[tuple[str, Any]] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), getattr(record, "request_id", None)))

    handler = Grab()
    handler.addFilter(logs.RequestId())
    logger = logging.getLogger("ogshot")
    logger.addHandler(handler)
    # A font set of its own: the shared one warns once per set of characters, maybe already.
    own_fonts = FontSet.from_dirs(search_path())
    svc = CardService(make_settings(), layouts=layouts, fonts=own_fonts)

    def broken_encode(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("encode broke")

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        made = logs.begin("req-made")
        await svc.card(Card(title="A glyph no font has: \U0001e900"))
        monkeypatch.setattr(service_module, "encode", broken_encode)
        failed = logs.begin("req-failed")
        with pytest.raises(RuntimeError):
            await svc.card(Card(title="A render that breaks"))
        return made, failed

    try:
        made, failed = asyncio.run(run())
    finally:
        logger.removeHandler(handler)
        asyncio.run(svc.aclose())
    warnings = [rid for message, rid in seen if "drawn as boxes" in message]
    assert warnings and set(warnings) == {"req-made"}
    assert made["thread_ms"] >= 0 and made["render_ms"] > 0 and made["encode_ms"] > 0
    # The step that failed is timed too.
    assert failed["thread_ms"] >= 0 and failed["render_ms"] > 0 and "encode_ms" in failed
