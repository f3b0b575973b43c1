"""The hit fast path over HTTP, and real ``ogshot serve --workers 2`` processes sharing Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from ogshot.api import create_app
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.service import CardService
from ogshot.settings import Settings

from .conftest import decode, ogshot_serve

CARD = "/og.png?title=Fast%20path&site=example.org"
SAME_CARD = "/og.png?site=example.org&title=Fast+path&theme=auto"


def without_source(headers: httpx.Headers) -> dict[str, str]:
    """The headers that must not depend on the road taken (the request id is each request's own,
    and test_ops checks it on both roads)."""
    per_request = ("x-ogshot-cache", "date", "server", "x-request-id")
    return {k: v for k, v in headers.items() if k not in per_request}


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"If-None-Match": "*"},
        {"Range": "bytes=0-99"},
        {"Range": "bytes=0-524288"},
        {"If-None-Match": '"other"'},
    ],
)
def test_fast_path_answers_exactly_as_the_normal_road(
    client: TestClient, service: CardService, extra: dict[str, str]
) -> None:
    client.get(CARD)  # made; its query string is now known
    fast = client.get(CARD, headers=extra)
    # Another spelling of the same card: a cache hit that takes the normal road.
    slow = client.get(SAME_CARD, headers=extra)
    assert service.renders == 1
    assert fast.status_code == slow.status_code
    assert fast.content == slow.content
    assert without_source(fast.headers) == without_source(slow.headers)
    assert fast.headers["x-ogshot-cache"] == slow.headers["x-ogshot-cache"] == "hit"


def test_fast_path_head_has_the_get_headers(client: TestClient) -> None:
    get = client.get(CARD)
    head = client.head(CARD)
    assert head.status_code == 200 and head.content == b""
    for name in ("etag", "content-length", "content-type", "cache-control"):
        assert head.headers[name] == get.headers[name]


def test_a_stale_entry_leaves_the_fast_path_and_is_revalidated(
    layouts: LayoutRegistry, fonts: FontSet
) -> None:
    now = [3_000_000.0]
    settings = Settings(_env_file=None, capture="none", cache_ttl=60)  # type: ignore[call-arg]
    svc = CardService(settings, layouts=layouts, fonts=fonts, clock=lambda: now[0])
    with TestClient(create_app(settings, service=svc)) as client:
        first = client.get(CARD)
        assert client.get(CARD).headers["x-ogshot-cache"] == "hit"
        now[0] += 61
        stale = client.get(CARD)
        assert stale.headers["x-ogshot-cache"] == "stale"
        assert stale.content == first.content
        deadline = time.monotonic() + 10
        while (svc.renders < 2 or svc._inflight) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert svc.renders == 2
        assert client.get(CARD).headers["x-ogshot-cache"] == "hit"


def test_the_query_memo_is_bounded(client: TestClient) -> None:
    from ogshot import api

    memo = client.app.state.card_keys  # type: ignore[attr-defined]
    long_query = "/og.png?title=t&pad=" + "x" * (api.KEY_MEMO_QUERY_MAX + 10)
    assert client.get(long_query).status_code == 200
    assert len(memo) == 0  # too long to remember
    assert client.get(CARD).status_code == 200
    assert len(memo) == 1
    assert memo.maxsize == api.KEY_MEMO_ENTRIES


def test_errors_never_enter_the_memo(client: TestClient) -> None:
    assert client.get("/og.png?title=t&accent=nope").status_code == 422
    assert client.get("/og.png?title=t&template=missing").status_code == 404
    assert len(client.app.state.card_keys) == 0  # type: ignore[attr-defined]


# --- Real processes ------------------------------------------------------------------------------


@pytest.fixture
def two_workers(redis_url: str, tmp_path: Path) -> Iterator[str]:
    with ogshot_serve(tmp_path, "--workers", "2", env={"OGSHOT_REDIS_URL": redis_url}) as base:
        yield base


def test_two_served_workers_sharing_redis_make_a_cold_card_once(two_workers: str) -> None:
    async def herd() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=two_workers, limits=limits, timeout=30) as client:
            params = {"title": "One render for the herd", "subtitle": "two workers"}
            return await asyncio.gather(*(client.get("/og.png", params=params) for _ in range(200)))

    responses = asyncio.run(herd())
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    sources = [r.headers["x-ogshot-cache"] for r in responses]
    assert sources.count("miss") == 1, sources
    assert decode(responses[0].content).size == (1200, 630)


def test_fast_path_carries_a_fallbacks_reason_and_short_cache_control(
    client: TestClient, service: CardService
) -> None:
    from ogshot.card import parse_card

    first = client.get(CARD)
    key = service.key(parse_card({"title": "Fast path", "site": "example.org"}))
    fallback = service.new_entry(first.content, "image/png", fallback="capture_timeout")
    asyncio.run(service.cache.set(key, fallback))
    fast = client.get(CARD)
    slow = client.get(SAME_CARD)
    for r in (fast, slow):
        assert r.headers["x-ogshot-fallback"] == "capture_timeout"
        assert r.headers["cache-control"] == service.settings.fallback_cache_control()
    assert without_source(fast.headers) == without_source(slow.headers)
