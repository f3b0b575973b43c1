"""The upstream provider against respx: request shapes, faults, retries, the breaker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any, TypeVar

import httpx
import pytest
import respx

from ogshot.capture import (
    CaptureError,
    CaptureRequest,
    CaptureUnavailable,
    NullCapture,
    make_provider,
)
from ogshot.capture.presets import HERMES_DEFAULT_URL
from ogshot.capture.upstream import CircuitBreaker, UpstreamCapture, parse_retry_after
from ogshot.headers import HUGE
from ogshot.settings import Settings

from .fake_upstream import png_bomb, synthetic_page

T = TypeVar("T")

PAGE = "https://example.com/post?id=1"
REQ = CaptureRequest(PAGE, width=1200, height=630, format="png", full_page=False, delay=1500)
PNG = synthetic_page(1200, 630)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a test coroutine and check that it left no task behind."""

    async def main() -> T:
        result = await coro
        await asyncio.sleep(0)
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert left == [], left
        return result

    return asyncio.run(main())


def settings(**kw: Any) -> Settings:
    base: dict[str, Any] = dict(
        _env_file=None,
        capture="http",
        upstream_key="sekrit",
        upstream_connect_timeout=0.2,
        upstream_read_timeout=0.2,
        upstream_timeout=1.0,
        upstream_retries=2,
        upstream_backoff=0.01,
        upstream_backoff_max=0.05,
        upstream_queue_timeout=0.1,
    )
    base.update(kw)
    return Settings(**base)


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def provider(s: Settings, t: FakeTime | None = None, rand: float = 1.0) -> UpstreamCapture:
    if t is None:
        return UpstreamCapture(s, rand=lambda: rand)
    return UpstreamCapture(s, clock=t.clock, sleep=t.sleep, rand=lambda: rand)


async def capture(p: UpstreamCapture, req: CaptureRequest = REQ) -> Any:
    try:
        return await p.capture(req)
    finally:
        await p.aclose()


# --- selection -----------------------------------------------------------------------------


def test_make_provider_follows_the_settings() -> None:
    assert isinstance(make_provider(Settings(_env_file=None)), NullCapture)
    keyed = make_provider(Settings(_env_file=None, upstream_key="k"))  # type: ignore[arg-type]
    assert isinstance(keyed, UpstreamCapture)
    assert keyed.name == "http:hermes" and keyed.endpoint == HERMES_DEFAULT_URL
    run(keyed.aclose())
    with pytest.raises(CaptureUnavailable, match="OGSHOT_CHROMIUM_PATH"):
        make_provider(Settings(_env_file=None, capture="chromium", chromium_path="/nonexistent"))


def test_key_is_masked_in_settings_repr() -> None:
    assert "sekrit" not in repr(settings())


# --- request shapes ------------------------------------------------------------------------


@respx.mock
def test_hermes_request_shape() -> None:
    route = respx.get(HERMES_DEFAULT_URL).respond(200, content=PNG, content_type="image/png")
    result = run(capture(provider(settings())))
    assert result.media_type == "image/png" and result.body == PNG
    sent = route.calls.last.request
    assert dict(sent.url.params) == {
        "url": PAGE,
        "width": "1200",
        "height": "630",
        "format": "png",
        "full_page": "false",
        "delay": "1500",
    }
    assert sent.headers["X-API-Key"] == "sekrit"


@respx.mock
def test_upstream_url_overrides_the_preset_endpoint() -> None:
    route = respx.get("https://shots.internal.test/v2/shot").respond(
        200, content=PNG, content_type="image/png"
    )
    run(capture(provider(settings(upstream_url="https://shots.internal.test/v2/shot"))))
    assert route.called


@respx.mock
def test_screenshotone_request_shape() -> None:
    route = respx.get("https://api.screenshotone.com/take").respond(
        200, content=PNG, content_type="image/png"
    )
    run(capture(provider(settings(upstream_preset="screenshotone"))))
    sent = route.calls.last.request
    assert dict(sent.url.params) == {
        "url": PAGE,
        "viewport_width": "1200",
        "viewport_height": "630",
        "format": "png",
        "full_page": "false",
        "delay": "2",  # seconds, rounded up from 1500 ms
    }
    assert sent.headers["X-Access-Key"] == "sekrit"


@respx.mock
def test_urlbox_request_shape() -> None:
    route = respx.post("https://api.urlbox.com/v1/render/sync").respond(
        200, content=PNG, content_type="image/png"
    )
    run(capture(provider(settings(upstream_preset="urlbox"))))
    sent = route.calls.last.request
    assert sent.headers["Authorization"] == "Bearer sekrit"
    assert json.loads(sent.content) == {
        "url": PAGE,
        "width": 1200,
        "height": 630,
        "format": "png",
        "full_page": False,
        "delay": 1500,
        "response_type": "binary",
    }


@respx.mock
def test_apiflash_request_shape() -> None:
    route = respx.get("https://api.apiflash.com/v1/urltoimage").respond(
        200, content=PNG, content_type="image/png"
    )
    run(capture(provider(settings(upstream_preset="apiflash"))))
    params = dict(route.calls.last.request.url.params)
    assert params == {
        "access_key": "sekrit",
        "url": PAGE,
        "width": "1200",
        "height": "630",
        "format": "png",
        "full_page": "false",
        "delay": "2",
        "response_type": "image",
    }


# --- faults --------------------------------------------------------------------------------


def _fails(route_setup: Any, s: Settings | None = None) -> tuple[CaptureError, int]:
    with respx.mock:
        route = respx.get(HERMES_DEFAULT_URL)
        route_setup(route)
        with pytest.raises(CaptureError) as err:
            run(capture(provider(s or settings())))
        return err.value, route.call_count


@pytest.mark.parametrize(
    ("setup", "reason", "status", "calls"),
    [
        (lambda r: r.mock(side_effect=httpx.ConnectTimeout("t")), "upstream_timeout", 504, 3),
        (lambda r: r.mock(side_effect=httpx.ReadTimeout("t")), "upstream_timeout", 504, 3),
        (lambda r: r.mock(side_effect=httpx.ConnectError("no")), "upstream_connect", 502, 3),
        (lambda r: r.respond(500), "upstream_5xx", 502, 3),
        (lambda r: r.respond(503, headers={"Retry-After": "0"}), "upstream_5xx", 502, 3),
        (lambda r: r.respond(429, headers={"Retry-After": "0"}), "upstream_429", 429, 3),
        (lambda r: r.respond(404), "upstream_4xx", 404, 1),
        (lambda r: r.respond(400), "upstream_4xx", 400, 1),
        (lambda r: r.respond(401), "upstream_auth", 502, 1),
        (
            lambda r: r.respond(200, text="<html/>", content_type="text/html"),
            "bad_content_type",
            502,
            1,
        ),
        (lambda r: r.respond(200, json={"url": "x"}), "bad_content_type", 502, 1),
        (lambda r: r.respond(200, content=b"", content_type="image/png"), "empty_body", 502, 1),
        (
            lambda r: r.respond(200, content=b"GIF89a" + b"\0" * 50, content_type="image/png"),
            "bad_image",
            502,
            1,
        ),
        (
            lambda r: r.respond(200, content=png_bomb(), content_type="image/png"),
            "image_too_large",
            502,
            1,
        ),
        (
            lambda r: r.respond(200, content=synthetic_page(300, 200), content_type="image/png"),
            "wrong_size",
            502,
            1,
        ),
    ],
)
def test_fault_table(setup: Any, reason: str, status: int, calls: int) -> None:
    error, count = _fails(setup)
    assert (error.reason, error.status, count) == (reason, status, calls)


def test_body_over_the_byte_cap_is_refused_while_streaming() -> None:
    big = PNG + b"\0" * 5000

    def setup(r: Any) -> None:
        # No Content-Length: the cap must bite while reading.
        r.respond(200, stream=httpx.ByteStream(big), headers={"Content-Type": "image/png"})

    error, _ = _fails(setup, settings(capture_max_bytes=len(PNG) + 1000))
    assert error.reason == "too_large"


def test_declared_length_over_the_cap_is_refused_before_reading() -> None:
    error, _ = _fails(
        lambda r: r.respond(200, content=PNG, content_type="image/png"),
        settings(capture_max_bytes=1024),
    )
    assert error.reason == "too_large"


def test_octet_stream_and_scaled_captures_are_accepted() -> None:
    hidpi = synthetic_page(2400, 1260, "webp")
    with respx.mock:
        respx.get(HERMES_DEFAULT_URL).respond(
            200, content=hidpi, content_type="application/octet-stream"
        )
        result = run(capture(provider(settings())))
    assert result.media_type == "image/webp"


# --- retries and backoff -------------------------------------------------------------------


@respx.mock
def test_backoff_is_exponential_capped_and_jittered() -> None:
    respx.get(HERMES_DEFAULT_URL).respond(500)
    t = FakeTime()
    s = settings(
        upstream_retries=4, upstream_backoff=1.0, upstream_backoff_max=3.0, upstream_timeout=100
    )
    with pytest.raises(CaptureError):
        run(capture(provider(s, t, rand=1.0)))
    assert t.sleeps == [1.0, 2.0, 3.0, 3.0]
    t2 = FakeTime()
    with pytest.raises(CaptureError):
        run(capture(provider(s, t2, rand=0.0)))
    assert t2.sleeps == [0.5, 1.0, 1.5, 1.5]


@respx.mock
def test_retry_after_is_honoured() -> None:
    route = respx.get(HERMES_DEFAULT_URL)
    route.side_effect = [
        httpx.Response(429, headers={"Retry-After": "2"}),
        httpx.Response(200, content=PNG, headers={"Content-Type": "image/png"}),
    ]
    t = FakeTime()
    s = settings(upstream_backoff=0.1, upstream_backoff_max=5.0, upstream_timeout=100)
    run(capture(provider(s, t)))
    assert t.sleeps == [2.0]


@respx.mock
def test_retry_after_longer_than_the_cap_fails_at_once_and_passes_it_on() -> None:
    route = respx.get(HERMES_DEFAULT_URL).respond(503, headers={"Retry-After": "120"})
    t = FakeTime()
    with pytest.raises(CaptureError) as err:
        run(capture(provider(settings(upstream_backoff_max=5.0, upstream_timeout=100), t)))
    assert route.call_count == 1 and t.sleeps == []
    assert err.value.reason == "upstream_5xx" and err.value.retry_after == 120


def test_parse_retry_after() -> None:
    assert parse_retry_after("7", 0) == 7.0
    assert parse_retry_after(" 7\t", 0) == 7.0
    assert parse_retry_after("007", 0) == 7.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 40.0) == 60.0
    assert parse_retry_after("soon", 0) is None
    assert parse_retry_after(None, 0) is None


@pytest.mark.parametrize("value", ["\u00b2", "1\u00b3", "\u0661", "+5", "-5", "5 5", "", "\u00a05"])
def test_parse_retry_after_reads_only_ascii_digits(value: str) -> None:
    # str.isdigit() accepts superscripts and Arabic-Indic digits; the grammar is 1*DIGIT.
    assert parse_retry_after(value, 0) is None


def test_parse_retry_after_reads_numbers_of_any_length() -> None:
    assert parse_retry_after("9" * 5000, 0) == float(HUGE)
    assert parse_retry_after("0" * 5000 + "3", 0) == 3.0
    assert parse_retry_after("Mon, 01 Jan 99999 00:00:00 GMT", 0) is None


@respx.mock
def test_declared_length_that_is_not_ascii_digits_is_read_and_capped() -> None:
    respx.get(HERMES_DEFAULT_URL).respond(
        200, content=PNG, headers=[(b"Content-Type", b"image/png"), (b"Content-Length", b"\xb2")]
    )
    got = run(capture(provider(settings())))
    assert got.body == PNG


@respx.mock
def test_no_retry_past_the_overall_deadline() -> None:
    route = respx.get(HERMES_DEFAULT_URL).respond(500)
    t = FakeTime()
    s = settings(
        upstream_retries=10, upstream_backoff=4.0, upstream_backoff_max=4.0, upstream_timeout=10
    )
    with pytest.raises(CaptureError):
        run(capture(provider(s, t)))
    assert route.call_count == 3  # at t=0, 4, 8; a fourth would start after the deadline


# --- circuit breaker -----------------------------------------------------------------------


def test_breaker_states() -> None:
    t = FakeTime()
    b = CircuitBreaker(failures=2, reset=10, clock=t.clock)
    assert b.allow() and b.state == "closed"
    b.failure()
    assert b.allow()
    b.failure()
    assert b.state == "open" and not b.allow() and b.retry_in() == 10
    t.now += 10
    assert b.state == "half_open"
    assert b.allow() and not b.allow()  # one probe at a time
    b.failure()
    assert b.state == "open"
    t.now += 10
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.allow() and b.allow()


@respx.mock
def test_breaker_opens_then_probes_and_closes_when_upstream_recovers() -> None:
    route = respx.get(HERMES_DEFAULT_URL)
    t = FakeTime()
    s = settings(upstream_retries=0, upstream_breaker_failures=3, upstream_breaker_reset=30)
    p = UpstreamCapture(s, clock=t.clock, sleep=t.sleep)

    async def scenario() -> list[str]:
        seen = []
        route.respond(500)
        for i in range(5):  # 5xx over five different sites: the upstream's health
            try:
                await p.capture(replace(REQ, url=f"https://site{i}.example/post"))
            except CaptureError as exc:
                seen.append(exc.reason)
        calls_while_open = route.call_count
        route.respond(200, content=PNG, content_type="image/png")
        t.now += 31
        await p.capture(REQ)  # the half-open probe succeeds
        await p.capture(REQ)
        await p.aclose()
        seen.append(f"calls={calls_while_open},{route.call_count}")
        return seen

    seen = run(scenario())
    assert seen == ["upstream_5xx"] * 3 + ["circuit_open"] * 2 + ["calls=3,5"]
    assert p.breaker.state == "closed"


@respx.mock
def test_client_4xx_does_not_open_the_breaker() -> None:
    respx.get(HERMES_DEFAULT_URL).respond(404)
    p = provider(settings(upstream_breaker_failures=1))

    async def scenario() -> None:
        for _ in range(3):
            with pytest.raises(CaptureError, match="refused"):
                await p.capture(REQ)
        await p.aclose()

    run(scenario())
    assert p.breaker.state == "closed"


# --- concurrency bound ---------------------------------------------------------------------


@respx.mock
def test_saturated_slots_turn_into_overloaded() -> None:
    gate = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        await gate.wait()
        return httpx.Response(200, content=PNG, headers={"Content-Type": "image/png"})

    respx.get(HERMES_DEFAULT_URL).mock(side_effect=slow)
    p = provider(settings(upstream_concurrency=2, upstream_queue_timeout=0.05))

    async def scenario() -> list[str]:
        tasks = [asyncio.create_task(p.capture(REQ)) for _ in range(3)]
        try:
            await tasks[2]
            third = "ok"
        except CaptureError as exc:
            third = f"{exc.reason}:{exc.status}"
        gate.set()
        first = await asyncio.gather(tasks[0], tasks[1])
        await p.aclose()
        return [third, *(c.media_type for c in first)]

    assert run(scenario()) == ["overloaded:503", "image/png", "image/png"]
    assert p.breaker.state == "closed"


def test_readme_documents_the_preset_endpoints() -> None:
    from pathlib import Path

    from ogshot.capture.presets import PRESETS

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for preset in PRESETS.values():
        assert f"`{preset.default_url}`" in readme, preset.name
