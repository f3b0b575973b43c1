"""One client cannot switch off captures for everyone: the breaker trips on the upstream's health.

Against respx for the rule itself, and end to end through the fake upstream on a loopback port.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import respx
from fastapi.testclient import TestClient

from ogshot.api import create_app
from ogshot.capture import CaptureError, CaptureRequest, make_provider
from ogshot.capture.presets import HERMES_DEFAULT_URL
from ogshot.capture.upstream import CircuitBreaker, UpstreamCapture
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.service import CardService
from ogshot.settings import Settings

from .fake_upstream import FakeUpstream, synthetic_page

PNG = synthetic_page(1200, 630)
REQ = CaptureRequest("https://example.com/", width=1200, height=630, format="png")


def settings(**kw: Any) -> Settings:
    base: dict[str, Any] = dict(
        _env_file=None,
        capture="http",
        upstream_key="sekrit",
        upstream_connect_timeout=0.2,
        upstream_read_timeout=0.1,
        upstream_timeout=0.3,
        upstream_retries=0,
        upstream_queue_timeout=1.0,
        upstream_concurrency=64,
        upstream_breaker_failures=3,
        capture_max_bytes=len(PNG) + 1000,
    )
    base.update(kw)
    return Settings(**base)


async def _answer(request: httpx.Request) -> httpx.Response:
    """The upstream's answer by the page asked for: what each page of the flood does."""
    page = urlsplit(request.url.params["url"])
    if page.hostname == "good.example":
        return httpx.Response(200, content=PNG, headers={"Content-Type": "image/png"})
    kind = page.path.strip("/").split("-")[0]
    if kind == "missing":
        return httpx.Response(404, content=b"no such page")
    if kind == "huge":
        big = PNG + b"\0" * 5000
        return httpx.Response(200, content=big, headers={"Content-Type": "image/png"})
    if kind == "slow":
        await asyncio.sleep(1.0)  # past every timeout
        return httpx.Response(200, content=PNG, headers={"Content-Type": "image/png"})
    if kind == "broken":
        return httpx.Response(500, content=b"the page crashed the browser")
    raise AssertionError(f"unexpected page {page}")


async def _try(p: UpstreamCapture, url: str) -> str:
    try:
        await p.capture(replace(REQ, url=url))
    except CaptureError as exc:
        return exc.reason
    return "ok"


@respx.mock
def test_a_flood_of_one_clients_bad_pages_leaves_captures_on_for_everyone() -> None:
    respx.get(HERMES_DEFAULT_URL).mock(side_effect=_answer)
    p = UpstreamCapture(settings())

    async def scenario() -> tuple[list[str], str]:
        # Many distinct bad pages on the client's own site: missing, oversized, slow, crashing.
        bad = [
            f"https://bad.example/{kind}-{i}"
            for i in range(8)
            for kind in ("missing", "huge", "slow", "broken")
        ]
        reasons = list(await asyncio.gather(*(_try(p, url) for url in bad)))
        reasons += [await _try(p, url) for url in bad[:8]]  # and again, one by one
        good = await _try(p, "https://good.example/article")
        await p.aclose()
        return reasons, good

    reasons, good = asyncio.run(scenario())
    assert set(reasons) == {"upstream_4xx", "too_large", "upstream_timeout", "upstream_5xx"}
    assert good == "ok"
    assert p.breaker.state == "closed"


@pytest.mark.parametrize(
    "kind", ["slow", "broken"], ids=["timeouts", "5xx"]
)
@respx.mock
def test_failures_spread_over_many_sites_open_the_breaker(kind: str) -> None:
    respx.get(HERMES_DEFAULT_URL).mock(side_effect=_answer)
    p = UpstreamCapture(settings())

    async def scenario() -> list[str]:
        out = [await _try(p, f"https://site{i}.example/{kind}-1") for i in range(3)]
        out.append(await _try(p, "https://good.example/article"))
        await p.aclose()
        return out

    reasons = asyncio.run(scenario())
    assert reasons[-1] == "circuit_open"
    assert p.breaker.state == "open"


@respx.mock
def test_an_upstream_that_cannot_be_reached_opens_the_breaker_whatever_the_page() -> None:
    respx.get(HERMES_DEFAULT_URL).mock(side_effect=httpx.ConnectError("refused"))
    p = UpstreamCapture(settings())

    async def scenario() -> list[str]:
        out = [await _try(p, "https://one.example/same-page") for _ in range(4)]
        await p.aclose()
        return out

    assert asyncio.run(scenario()) == ["upstream_connect"] * 3 + ["circuit_open"]


def test_breaker_counts_a_site_once_per_run_and_a_success_ends_the_run() -> None:
    now = [0.0]
    b = CircuitBreaker(failures=2, reset=10, clock=lambda: now[0])
    for _ in range(50):
        b.failure("slow.example")
    assert b.state == "closed"
    b.success()
    b.failure("a.example")
    b.success()
    b.failure("b.example")
    assert b.state == "closed"  # the run started again at the success
    b.failure("c.example")
    assert b.state == "open"
    # Half-open: a probe that fails on a site already counted does not close the door again.
    now[0] = 10
    assert b.allow()
    b.failure("c.example")
    assert b.state == "half_open" and b.allow()
    b.failure("d.example")
    assert b.state == "open"


def test_end_to_end_one_clients_bad_pages_then_anothers_card_has_its_capture(
    capture_settings: Settings,
    fake_upstream: FakeUpstream,
    layouts: LayoutRegistry,
    fonts: FontSet,
) -> None:
    s = Settings(  # type: ignore[call-arg]
        _env_file=None,
        **{
            **capture_settings.model_dump(),
            "upstream_breaker_failures": 3,
            "upstream_read_timeout": 1.0,  # the slow page sleeps 3 s; a good page, in time
            "upstream_timeout": 1.5,
            "capture_max_bytes": 200_000,  # /endless is cut off: too_large
        },
    )
    service = CardService(s, layouts=layouts, fonts=fonts, capture=make_provider(s))
    with TestClient(create_app(s, service=service), raise_server_exceptions=False) as c:
        seen = set()
        for i in range(4):
            for page in ("e404", "endless", "slow", "e500"):
                url = f"https://bad.example/{page}?{i}"
                r = c.get("/og.png", params={"title": "Bad", "url": url})
                assert r.status_code == 200
                seen.add(r.headers.get("x-ogshot-fallback"))
        good = c.get("/og.png", params={"title": "Good", "url": "https://good.example/page-good"})
    assert seen == {"upstream_4xx", "too_large", "upstream_timeout", "upstream_5xx"}
    assert good.status_code == 200
    assert "x-ogshot-fallback" not in good.headers
    assert fake_upstream.calls["page-good"] == 1
