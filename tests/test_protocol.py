"""The HTTP layer under every route (ogshot/protocol.py), through the ASGI app."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route

from ogshot.protocol import allowed_methods

CARD = "/og.png?title=Layer"


def _get_routes(client: TestClient) -> list[str]:
    """Every GET path of the app: the documented operations and the framework's own pages."""
    app = client.app
    paths = [p for p, ops in app.openapi()["paths"].items() if "get" in ops]  # type: ignore[attr-defined]
    paths += [
        r.path
        for r in app.routes  # type: ignore[attr-defined]
        if isinstance(r, Route) and r.methods and "GET" in r.methods and "{" not in r.path
    ]
    for expected in ("/og.png", "/templates", "/screenshot", "/docs", "/openapi.json"):
        assert expected in paths
    return sorted(set(paths))


def test_every_get_route_answers_head_with_the_get_headers(client: TestClient) -> None:
    for path in _get_routes(client):
        get = client.get(path)
        head = client.head(path)
        assert head.status_code == get.status_code, path
        assert head.content == b"", path
        for name in ("content-type", "content-length", "etag", "cache-control"):
            if path in ("/metrics", "/preview") and name == "content-length":
                # Live figures: the GET itself moved the counters the HEAD reads; the preview
                # reports this very request's render time and cache state.
                continue
            assert head.headers.get(name) == get.headers.get(name), (path, name)


def test_head_on_templates_is_served(client: TestClient) -> None:
    r = client.head("/templates")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.content == b""


def test_a_route_added_later_gets_head_and_a_true_allow(client: TestClient) -> None:
    app = client.app

    @app.get("/added-later")  # type: ignore[attr-defined, misc, untyped-decorator]
    async def added_later() -> dict[str, str]:
        return {"ok": "yes"}

    assert client.head("/added-later").status_code == 200
    r = client.post("/added-later")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/og.png", "GET, HEAD"),
        ("DELETE", "/og.png", "GET, HEAD"),
        ("PUT", "/templates", "GET, HEAD"),
        ("POST", "/healthz", "GET, HEAD"),
        ("POST", "/screenshot", "GET, HEAD"),
        ("GET", "/screenshots/batch", "POST"),
        ("HEAD", "/screenshots/batch", "POST"),
    ],
)
def test_405_names_every_method_the_path_answers(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    r = client.request(method, path)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    assert r.headers["cache-control"] == "no-store"
    if method != "HEAD":
        assert r.json()["error"] == "method_not_allowed"


def test_allowed_methods_orders_and_adds_head(client: TestClient) -> None:
    routes = client.app.routes  # type: ignore[attr-defined]
    assert allowed_methods(routes, "/og.png") == ["GET", "HEAD"]
    assert allowed_methods(routes, "/screenshots/batch") == ["POST"]
    assert allowed_methods(routes, "/nowhere") == []


@pytest.mark.parametrize("path", ["/og.png/", "/templates/", "/healthz/"])
def test_trailing_slash_is_a_404_not_a_redirect_from_host(client: TestClient, path: str) -> None:
    r = client.get(path + "?title=x", headers={"Host": "evil.example"}, follow_redirects=False)
    assert r.status_code == 404
    assert "location" not in r.headers
    assert r.json()["error"] == "not_found"


# Body caps ---------------------------------------------------------------------------------


def test_declared_body_over_the_cap_is_refused_before_reading(client: TestClient) -> None:
    body = b"x" * (64 * 1024 + 1)
    r = client.post(
        "/screenshots/batch", content=body, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["error"] == "too_large"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["connection"] == "close"


def test_streamed_body_over_the_cap_is_refused_while_streaming(client: TestClient) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(10 * 1024):  # 10 MB in 1 KB chunks, with no Content-Length
            sent += 1024
            yield b" " * 1024

    r = client.post("/screenshots/batch", content=chunks())
    assert r.status_code == 413
    assert r.json()["error"] == "too_large"


def test_default_cap_covers_post_routes_added_later(client: TestClient) -> None:
    app = client.app

    @app.post("/echo-length")  # type: ignore[attr-defined, misc, untyped-decorator]
    async def echo_length(payload: dict[str, str]) -> dict[str, int]:
        return {"n": len(json.dumps(payload))}

    small = client.post("/echo-length", json={"a": "b"})
    assert small.status_code == 200 and small.json() == {"n": 10}
    big = client.post("/echo-length", json={"a": "b" * (1024 * 1024)})
    assert big.status_code == 413
    assert big.json()["error"] == "too_large"


def test_a_body_within_the_cap_is_served(client: TestClient) -> None:
    r = client.post("/screenshots/batch", json={"urls": ["https://example.com/"]})
    # Capture is off in these settings: the batch route itself answers, not the cap.
    assert r.status_code == 503
    assert r.json()["error"] == "capture_off"


# Request targets and framing -------------------------------------------------------------


def test_absolute_form_target_is_served_as_its_path(client: TestClient) -> None:
    from ogshot.protocol import origin_form as _origin_form

    scope = {
        "type": "http",
        "method": "GET",
        "path": "http://cards.example:8000/og.png",
        "raw_path": b"http://cards.example:8000/og.png",
        "headers": [(b"host", b"other.example"), (b"accept", b"*/*")],
    }
    got = _origin_form(scope)
    assert got["path"] == "/og.png" and got["raw_path"] == b"/og.png"
    assert got["headers"] == [(b"host", b"cards.example:8000"), (b"accept", b"*/*")]
    bare = _origin_form({**scope, "path": "http://h", "raw_path": b"http://h"})
    assert bare["path"] == "/"
