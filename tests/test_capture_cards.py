"""Cards over captures, end to end through a real (fake) upstream on a loopback port."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import ImageChops, ImageStat
from pydantic import SecretStr

from ogshot.api import create_app
from ogshot.capture import make_provider
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.service import CardService
from ogshot.settings import Settings

from .conftest import decode
from .fake_upstream import FakeUpstream


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _client(
    settings: Settings, layouts: LayoutRegistry, fonts: FontSet, clock: Clock | None = None
) -> Iterator[TestClient]:
    service = CardService(
        settings,
        layouts=layouts,
        fonts=fonts,
        capture=make_provider(settings),
        clock=clock or time.time,
    )
    app = create_app(settings, service=service)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
        # Nothing of a request may still be running once it is answered.
        assert service._inflight == {} and service.captures._inflight == {}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cap_client(
    capture_settings: Settings, layouts: LayoutRegistry, fonts: FontSet, clock: Clock
) -> Iterator[TestClient]:
    yield from _client(capture_settings, layouts, fonts, clock)


@pytest.fixture
def roomy_cap_client(
    roomy_capture_settings: Settings, layouts: LayoutRegistry, fonts: FontSet, clock: Clock
) -> Iterator[TestClient]:
    """For success paths that count upstream calls: no timeout can fire on a good page."""
    yield from _client(roomy_capture_settings, layouts, fonts, clock)


def _card(c: TestClient, page: str, **extra: str):  # type: ignore[no-untyped-def]
    return c.get("/og.png", params={"title": "Hello capture", "url": page, **extra})


def test_capture_card_is_the_page_with_the_title_over_it(
    roomy_cap_client: TestClient, fake_upstream: FakeUpstream, tmp_path: object
) -> None:
    r = _card(roomy_cap_client, "https://example.com/page-one")
    assert r.status_code == 200, r.text
    assert "x-ogshot-fallback" not in r.headers
    assert r.headers["cache-control"].startswith("public, max-age=86400")
    image = decode(r.content)
    assert image.size == (1200, 630)
    # The fake page's orange logo dot sits top left: the capture is really in the card.
    assert image.convert("RGB").getpixel((40, 32))[0] > 200
    sent = fake_upstream.requests[-1]
    assert (sent["width"], sent["height"], sent["format"]) == ("1200", "630", "png")

    title_only = roomy_cap_client.get("/og.png", params={"title": "Hello capture"})
    diff = ImageChops.difference(image.convert("RGB"), decode(title_only.content).convert("RGB"))
    assert ImageStat.Stat(diff).mean[0] > 10


def test_a_new_title_on_the_same_page_reuses_the_capture(
    roomy_cap_client: TestClient, fake_upstream: FakeUpstream
) -> None:
    a = _card(roomy_cap_client, "https://example.com/page-two")
    b = roomy_cap_client.get(
        "/og.png", params={"title": "Another title", "url": "https://example.com/page-two"}
    )
    c = _card(roomy_cap_client, "https://example.com/page-two", theme="dark")
    assert a.status_code == b.status_code == c.status_code == 200
    assert len({a.headers["etag"], b.headers["etag"], c.headers["etag"]}) == 3
    assert fake_upstream.calls["page-two"] == 1


@pytest.mark.parametrize(
    ("page", "reason"),
    [
        ("slow", "upstream_timeout"),
        ("drip", "upstream_timeout"),
        ("endless", "too_large"),
        ("bomb", "image_too_large"),
        ("garbage", "bad_image"),
        ("html", "bad_content_type"),
        ("empty", "empty_body"),
        ("wrongsize", "wrong_size"),
        ("e500", "upstream_5xx"),
        ("e503", "upstream_5xx"),
        ("e503-superscript", "upstream_5xx"),
        ("e503-long", "upstream_5xx"),
        ("e429", "upstream_429"),
        ("e404", "upstream_4xx"),
    ],
)
def test_every_capture_fault_gives_the_fallback_card(
    roomy_cap_client: TestClient, fake_upstream: FakeUpstream, clock: Clock, page: str, reason: str
) -> None:
    r = _card(roomy_cap_client, f"https://example.com/{page}")
    assert r.status_code == 200, r.text
    assert r.headers["x-ogshot-fallback"] == reason
    assert r.headers["cache-control"] == "public, max-age=60"
    assert decode(r.content).size == (1200, 630)
    # Within its short TTL a repeat is the same fallback, without asking the upstream again...
    calls = fake_upstream.calls[page]
    again = _card(roomy_cap_client, f"https://example.com/{page}")
    assert again.headers["x-ogshot-fallback"] == reason
    assert again.headers["cache-control"] == "public, max-age=60"
    assert fake_upstream.calls[page] == calls
    # ...and the first request after it tries the capture again.
    clock.now += 61
    later = _card(roomy_cap_client, f"https://example.com/{page}")
    assert later.headers["x-ogshot-fallback"] == reason
    assert fake_upstream.calls[page] > calls


def test_fallback_card_equals_the_title_card_and_keeps_http_semantics(
    cap_client: TestClient,
) -> None:
    r = _card(cap_client, "https://example.com/e500")
    same = cap_client.get(
        "/og.png", params={"title": "Hello capture", "url": "https://example.com/e500"},
        headers={"If-None-Match": r.headers["etag"]},
    )
    assert same.status_code == 304
    assert same.headers["x-ogshot-fallback"] == "upstream_5xx"
    assert same.headers["cache-control"] == "public, max-age=60"


def test_unreachable_upstream_gives_the_fallback(
    capture_settings: Settings, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    dead = capture_settings.model_copy(update={"upstream_url": "http://127.0.0.1:9/screenshot"})
    for c in _client(dead, layouts, fonts):
        r = _card(c, "https://example.com/ok")
        assert r.status_code == 200
        assert r.headers["x-ogshot-fallback"] == "upstream_connect"


def test_bad_key_gives_the_fallback(
    capture_settings: Settings, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    wrong = capture_settings.model_copy(update={"upstream_key": SecretStr("nope")})
    for c in _client(wrong, layouts, fonts):
        assert _card(c, "https://example.com/ok").headers["x-ogshot-fallback"] == "upstream_auth"


def test_breaker_opens_and_closes_when_the_upstream_recovers(
    capture_settings: Settings, layouts: LayoutRegistry, fonts: FontSet,
    fake_upstream: FakeUpstream,
) -> None:
    s = capture_settings.model_copy(
        update={"upstream_breaker_failures": 2, "upstream_breaker_reset": 0.3,
                "upstream_retries": 0}
    )
    fake_upstream.fail_first = 3
    try:
        for c in _client(s, layouts, fonts):
            # 5xx from pages on different sites: the upstream's health, not one site's.
            reasons = [
                _card(c, f"https://site{i}.example/flaky").headers.get("x-ogshot-fallback")
                for i in range(3)
            ]
            assert reasons == ["upstream_5xx", "upstream_5xx", "circuit_open"]
            assert fake_upstream.calls["flaky"] == 2
            time.sleep(0.35)
            probe = _card(c, "https://site3.example/flaky")  # half-open probe: still failing
            assert probe.headers["x-ogshot-fallback"] == "upstream_5xx"
            time.sleep(0.35)
            ok = _card(c, "https://site4.example/flaky")
            assert ok.status_code == 200 and "x-ogshot-fallback" not in ok.headers
            assert ok.headers["cache-control"].startswith("public, max-age=86400")
            assert fake_upstream.calls["flaky"] == 4
    finally:
        fake_upstream.fail_first = 0


def test_private_page_urls_are_refused_when_capturing(cap_client: TestClient) -> None:
    for page in ("http://127.0.0.1/", "http://2130706433/", "http://[::1]/", "http://10.0.0.5/x"):
        r = _card(cap_client, page)
        assert r.status_code == 403, page
        assert r.json()["error"] == "forbidden"
        assert r.headers["cache-control"] == "no-store"


def test_title_layouts_and_capture_off_never_call_the_upstream(
    client: TestClient, fake_upstream: FakeUpstream
) -> None:
    r = client.get("/og.png", params={"title": "x", "url": "https://example.com/page-off"})
    assert r.status_code == 200 and "x-ogshot-fallback" not in r.headers
    assert fake_upstream.calls["page-off"] == 0


BROWSER_LOOPBACK = [
    "http://127。0。0。1/",
    "http://127．0．0．1/",
    "http://%31%32%37.0.0.1/",
    "http://①②⑦.0.0.1/",
    "http://localhost%2e/",
    "http://[::ffff:0:127.0.0.1]/",
]


@pytest.mark.parametrize("page", BROWSER_LOOPBACK)
def test_browser_loopback_spellings_never_reach_the_upstream(
    cap_client: TestClient, fake_upstream: FakeUpstream, page: str
) -> None:
    before = len(fake_upstream.requests)
    for path in ("/og.png", "/screenshot"):
        r = cap_client.get(path, params={"title": "t", "url": page})
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"] == "forbidden"
    assert len(fake_upstream.requests) == before


def test_the_upstream_is_sent_the_canonical_url_and_spellings_share_one_capture(
    roomy_cap_client: TestClient, fake_upstream: FakeUpstream
) -> None:
    a = _card(roomy_cap_client, "HTTPS://ＥＸＡＭＰＬＥ。com:443/a/../page-canon#top")
    b = _card(roomy_cap_client, "https://example.com/page-canon")
    assert a.status_code == b.status_code == 200
    assert a.headers["etag"] == b.headers["etag"]
    assert fake_upstream.calls["page-canon"] == 1
    assert fake_upstream.requests[-1]["url"] == "https://example.com/page-canon"


def test_unparseable_page_urls_are_422(cap_client: TestClient) -> None:
    for page in ("http://09.0.0.1/", "http://[::1/", "http://a b/", "http://xn--a.com/"):
        r = _card(cap_client, page)
        assert r.status_code == 422, page
        assert r.json()["error"] == "invalid_parameter"
