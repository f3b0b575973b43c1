"""``GET|HEAD /screenshot`` and ``POST /screenshots/batch`` through the loopback fake upstream."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ogshot.api import create_app
from ogshot.capture import make_provider
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.service import CardService
from ogshot.settings import Settings

from .fake_upstream import FakeUpstream


def _client(settings: Settings, layouts: LayoutRegistry, fonts: FontSet) -> Iterator[TestClient]:
    service = CardService(settings, layouts=layouts, fonts=fonts, capture=make_provider(settings))
    with TestClient(create_app(settings, service=service), raise_server_exceptions=False) as c:
        yield c
        assert service.captures._inflight == {}


@pytest.fixture
def shot(
    capture_settings: Settings, layouts: LayoutRegistry, fonts: FontSet
) -> Iterator[TestClient]:
    yield from _client(capture_settings, layouts, fonts)


@pytest.fixture
def roomy_shot(
    roomy_capture_settings: Settings, layouts: LayoutRegistry, fonts: FontSet
) -> Iterator[TestClient]:
    yield from _client(roomy_capture_settings, layouts, fonts)


def test_screenshot_defaults_and_caching(
    roomy_shot: TestClient, fake_upstream: FakeUpstream
) -> None:
    shot = roomy_shot
    r = shot.get("/screenshot", params={"url": "https://example.com/page-s"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/webp"
    assert int(r.headers["content-length"]) == len(r.content)
    assert Image.open(io.BytesIO(r.content)).size == (1280, 800)
    sent = fake_upstream.requests[-1]
    assert (sent["width"], sent["height"], sent["format"], sent["full_page"], sent["delay"]) == (
        "1280", "800", "webp", "false", "0"
    )
    again = shot.get("/screenshot", params={"url": "https://example.com/page-s"})
    assert again.content == r.content and again.headers["etag"] == r.headers["etag"]
    assert fake_upstream.calls["page-s"] == 1
    same = shot.get(
        "/screenshot", params={"url": "https://example.com/page-s"},
        headers={"If-None-Match": f'W/{r.headers["etag"]}'},
    )
    assert same.status_code == 304 and same.content == b""
    assert same.headers["etag"] == r.headers["etag"]


def test_screenshot_params_pass_through(shot: TestClient, fake_upstream: FakeUpstream) -> None:
    r = shot.get(
        "/screenshot",
        params={"url": "https://example.com/page-p", "width": 640, "height": 360,
                "format": "jpeg", "full_page": "true", "delay": 250},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    sent = fake_upstream.requests[-1]
    assert (sent["width"], sent["height"], sent["full_page"], sent["delay"]) == (
        "640", "360", "true", "250"
    )


def test_head_screenshot_has_headers_and_no_body(shot: TestClient) -> None:
    r = shot.head("/screenshot", params={"url": "https://example.com/page-h", "format": "png"})
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-type"] == "image/png" and int(r.headers["content-length"]) > 0


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"url": ""},
        {"url": "ftp://example.com/"},
        {"url": "javascript:alert(1)"},
        {"url": "HTTP://user:pw@example.com/"},
        {"url": "https://example.com/" + "a" * 3000},
        {"url": "https://example.com/", "width": "0"},
        {"url": "https://example.com/", "width": "3841"},
        {"url": "https://example.com/", "height": "2161"},
        {"url": "https://example.com/", "width": "wide"},
        {"url": "https://example.com/", "format": "gif"},
        {"url": "https://example.com/", "full_page": "maybe"},
        {"url": "https://example.com/", "delay": "-1"},
        {"url": "https://example.com/", "delay": "10001"},
    ],
)
def test_bad_params_are_422_json(shot: TestClient, params: dict[str, str]) -> None:
    r = shot.get("/screenshot", params=params)
    assert r.status_code in (414, 422), r.text
    assert r.json()["error"] in ("invalid_parameter", "uri_too_long")
    assert r.headers["cache-control"] == "no-store"


def test_uppercase_scheme_is_accepted(shot: TestClient) -> None:
    r = shot.get("/screenshot", params={"url": "HTTPS://Example.com/page-u", "format": "png"})
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("page", "status", "code"),
    [
        ("slow", 504, "upstream_timeout"),
        ("drip", 504, "upstream_timeout"),
        ("e500", 502, "upstream_error"),
        ("e503", 502, "upstream_error"),
        ("e404", 404, "upstream_rejected"),
        ("e429", 429, "rate_limited"),
        ("endless", 502, "upstream_error"),
        ("bomb", 502, "upstream_error"),
        ("garbage", 502, "upstream_error"),
        ("html", 502, "upstream_error"),
        ("empty", 502, "upstream_error"),
        ("wrongsize", 502, "upstream_error"),
    ],
)
def test_upstream_faults_map_to_json_errors(
    shot: TestClient, page: str, status: int, code: str
) -> None:
    r = shot.get("/screenshot", params={"url": f"https://example.com/{page}", "format": "png"})
    assert r.status_code == status, r.text
    assert r.json()["error"] == code
    assert r.headers["cache-control"] == "no-store"


def test_private_urls_are_403(shot: TestClient) -> None:
    for url in ("http://localhost/", "http://0x7f.1/", "http://169.254.169.254/latest/"):
        r = shot.get("/screenshot", params={"url": url})
        assert r.status_code == 403 and r.json()["error"] == "forbidden", url


def test_capture_off_is_a_clear_503(client: TestClient) -> None:
    r = client.get("/screenshot", params={"url": "https://example.com/"})
    assert r.status_code == 503
    assert r.json()["error"] == "capture_off"
    assert "retry-after" not in r.headers
    b = client.post("/screenshots/batch", json={"urls": ["https://example.com/"]})
    assert b.status_code == 503 and b.json()["error"] == "capture_off"


def test_circuit_open_is_503_with_retry_after(
    capture_settings: Settings, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    s = capture_settings.model_copy(
        update={"upstream_breaker_failures": 1, "upstream_retries": 0}
    )
    for c in _client(s, layouts, fonts):
        assert c.get("/screenshot", params={"url": "https://example.com/e500"}).status_code == 502
        r = c.get("/screenshot", params={"url": "https://example.com/ok"})
        assert r.status_code == 503 and r.json()["error"] == "overloaded"
        assert int(r.headers["retry-after"]) >= 1


# --- batch ---------------------------------------------------------------------------------


def test_batch_mixes_results_in_input_order(shot: TestClient) -> None:
    urls = ["https://example.com/page-b1", "https://example.com/e404", "ftp://nope",
            "https://example.com/page-b2", "http://127.0.0.1/"]
    r = shot.post(
        "/screenshots/batch", json={"urls": urls, "width": 400, "height": 300, "format": "png"}
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["url"] for x in results] == urls
    assert [x["status"] for x in results] == ["ok", "error", "error", "ok", "error"]
    assert [x.get("error") for x in results] == [
        None, "upstream_rejected", "invalid_parameter", None, "forbidden"
    ]
    image = Image.open(io.BytesIO(base64.b64decode(results[0]["data"])))
    assert image.size == (400, 300) and results[0]["contentType"] == "image/png"


def test_batch_runs_at_most_five_at_once(shot: TestClient, fake_upstream: FakeUpstream) -> None:
    urls = [f"https://example.com/page-c{i}" for i in range(10)]
    fake_upstream.hold, fake_upstream.peak = 0.1, 0
    try:
        r = shot.post("/screenshots/batch", json={"urls": urls, "width": 200, "height": 100})
    finally:
        fake_upstream.hold = 0.0
    assert r.status_code == 200
    assert fake_upstream.peak == 5
    assert all(x["status"] == "ok" for x in r.json()["results"])
    assert sum(fake_upstream.calls[f"page-c{i}"] for i in range(10)) == 10


@pytest.mark.parametrize(
    "body",
    [
        {"urls": [f"https://example.com/{i}" for i in range(11)]},
        {"urls": []},
        {},
        {"urls": "https://example.com/"},
        {"urls": ["https://example.com/"], "width": 5000},
        {"urls": ["https://example.com/"], "format": "bmp"},
        {"urls": ["https://example.com/"], "bogus": 1},
        # JSON types as described: no booleans or strings read as numbers, no numbers as flags.
        {"urls": ["https://example.com/"], "delay": False},
        {"urls": ["https://example.com/"], "width": "800"},
        {"urls": ["https://example.com/"], "full_page": 1},
    ],
)
def test_bad_batches_are_422(shot: TestClient, body: dict[str, object]) -> None:
    r = shot.post("/screenshots/batch", json=body)
    assert r.status_code == 422 and r.json()["error"] == "invalid_parameter"


def test_batch_rejects_non_json(shot: TestClient) -> None:
    r = shot.post(
        "/screenshots/batch", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
