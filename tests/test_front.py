"""The front layer: a cache hit answered there keeps everything the other layers gave it."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ogshot import clients

from .test_http_equivalence import asgi_call
from .test_ops import value

QUERY = b"title=Answered%20at%20the%20front"
URL = "/og.png?" + QUERY.decode()


def access_lines(
    caplog: pytest.LogCaptureFixture, count: int = 1, timeout: float = 5.0
) -> list[logging.LogRecord]:
    """The access lines logged so far, once there are ``count`` of them: each is written a
    moment after its answer (logs.LaterLines)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [rec for rec in caplog.records if rec.name == "ogshot.access"]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.005)


def logged_fault(caplog: pytest.LogCaptureFixture, logger: str, text: str) -> bool:
    """Whether ``logger`` logged an exception saying ``text``, with its traceback."""
    return any(
        rec.name == logger and rec.exc_info and text in str(rec.exc_info[1])
        for rec in caplog.records
    )


def _warm(client: TestClient) -> dict[str, str]:
    """Make the card, then see it served from memory: the front layer's road from then on."""
    assert client.get(URL).headers["x-ogshot-cache"] == "miss"
    hit = client.get(URL)
    assert hit.headers["x-ogshot-cache"] == "hit"
    return dict(hit.headers)


def _call(client: TestClient, method: str, headers: list[tuple[bytes, bytes]]) -> Any:
    return client.portal.call(asgi_call, client.app, method, QUERY, headers)  # type: ignore[union-attr]


def test_a_cached_card_with_a_declared_body_over_the_cap_is_still_refused(
    client: TestClient,
) -> None:
    _warm(client)
    cap = client.app.state.settings.body_max_bytes  # type: ignore[attr-defined]
    r = client.request("GET", URL, content=b"x" * (cap + 1))
    assert r.status_code == 413
    assert r.json()["error"] == "too_large"
    assert r.headers["x-request-id"]


def test_a_cached_card_asked_with_both_lengths_is_answered_then_closed(
    client: TestClient,
) -> None:
    _warm(client)
    assert dict(_call(client, "GET", [])[1])[b"x-ogshot-cache"] == b"hit"
    status, headers, _ = _call(
        client, "GET", [(b"content-length", b"0"), (b"transfer-encoding", b"chunked")]
    )
    assert status == 200
    assert (b"connection", b"close") in headers
    assert dict(headers)[b"x-request-id"] == b"equivalence"


def test_a_cache_hit_is_logged_and_counted_like_any_answer(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    _warm(client)
    with caplog.at_level(logging.INFO, logger="ogshot.access"):
        r = client.head(URL, headers={"X-Request-Id": "hit-line"})
        (line,) = access_lines(caplog)
    assert r.status_code == 200 and r.content == b""
    assert int(r.headers["content-length"]) > 1000  # the GET's length, not the empty body's
    fields = line.__dict__
    assert fields["method"] == "HEAD" and fields["path"] == "/og.png"
    assert fields["route"] == "/og.png" and fields["status"] == 200
    assert fields["cache"] == "hit" and fields["card_key"].startswith("card:")
    assert fields["request_id"] == "hit-line" and fields["duration_ms"] >= 0
    assert "title" not in line.getMessage()  # never the query string


def test_an_absolute_form_hit_is_logged_under_its_path_and_route(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    _warm(client)

    async def absolute(app: Any) -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "http://cards.example/og.png",
            "raw_path": b"http://cards.example/og.png",
            "root_path": "",
            "query_string": QUERY,
            "headers": [(b"host", b"elsewhere")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        statuses = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)
        return statuses[0]

    with caplog.at_level(logging.INFO, logger="ogshot.access"):
        status = client.portal.call(absolute, client.app)  # type: ignore[union-attr]
        (line,) = access_lines(caplog)
    assert status == 200
    assert line.__dict__["path"] == "/og.png" and line.__dict__["route"] == "/og.png"
    assert line.__dict__["cache"] == "hit"


def test_the_client_is_known_to_the_app_for_every_request(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The address the budget is counted under is set for the request, and only for it."""
    seen: list[str] = []
    service = client.app.state.service  # type: ignore[attr-defined]
    original = service.card_for_key

    async def spy(*args: Any, **kw: Any) -> Any:
        seen.append(clients.CLIENT.get())
        return await original(*args, **kw)

    monkeypatch.setattr(service, "card_for_key", spy)
    assert client.get("/og.png", params={"title": "Whose card"}).status_code == 200
    assert seen == ["testclient"]
    assert clients.CLIENT.get() == "-"


def test_an_unexpected_error_is_a_json_500_with_its_request_id_counted_and_logged(
    settings: Any, service: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from ogshot.api import create_app

    app = create_app(settings, service=service)

    async def broken() -> None:
        raise RuntimeError("a fault nobody planned for")

    app.add_api_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as c:
        with caplog.at_level(logging.INFO, logger="ogshot.access"):
            r = c.get("/broken", headers={"X-Request-Id": "fault-1"})
            (line,) = access_lines(caplog)
        assert r.status_code == 500
        assert r.json()["error"] == "internal"
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["x-request-id"] == "fault-1"
        assert line.__dict__["status"] == 500 and line.__dict__["route"] == "/broken"
        text = c.get("/metrics").text
    assert value(text, "ogshot_requests_total", route="/broken", status="500") == 1


def test_a_fault_in_the_hit_road_is_logged_and_the_card_still_answered(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    warm = _warm(client)
    service = client.app.state.service  # type: ignore[attr-defined]

    def broken(key: str) -> None:
        raise RuntimeError("a fault in the hit road")

    monkeypatch.setattr(service, "fresh_hit", broken)
    with caplog.at_level(logging.WARNING, logger="ogshot.front"):
        r = client.get(URL, headers={"X-Request-Id": "fault-2"})
    # The card's full road answers instead: the same card, from the cache.
    assert r.status_code == 200
    assert r.headers["etag"] == warm["etag"]
    assert r.headers["x-request-id"] == "fault-2"
    # The short road's own fault is logged there.
    assert logged_fault(caplog, "ogshot.front", "a fault in the hit road")


def test_a_fault_making_a_card_is_a_logged_json_500_with_its_request_id(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    service = client.app.state.service  # type: ignore[attr-defined]

    async def broken(key: str, card: object) -> None:
        raise RuntimeError("a fault making the card")

    monkeypatch.setattr(service, "card_for_key", broken)
    with caplog.at_level(logging.INFO):
        r = client.get(URL, headers={"X-Request-Id": "fault-3"})
        head = client.head(URL, headers={"X-Request-Id": "fault-4"})
        access_lines(caplog, 2)
    assert r.status_code == 500
    assert r.json() == {"error": "internal", "detail": "an unexpected error occurred"}
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-request-id"] == "fault-3"
    assert head.status_code == 500 and head.content == b""
    assert head.headers["x-request-id"] == "fault-4"
    assert logged_fault(caplog, "ogshot", "a fault making the card")
    (line,) = [
        rec
        for rec in caplog.records
        if rec.name == "ogshot.access" and rec.__dict__.get("request_id") == "fault-3"
    ]
    assert line.__dict__["status"] == 500 and line.__dict__["route"] == "/og.png"
    text = client.get("/metrics").text
    assert value(text, "ogshot_requests_total", route="/og.png", status="500") == 2  # GET, HEAD


async def _without_raw_path(app: Any, path: str) -> list[dict[str, Any]]:
    """One request as an ASGI server may send it: ``raw_path`` is optional in the spec."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize("path", ["/é", "/€", "/\U0001f680"])
def test_a_path_beyond_latin1_without_raw_path_is_answered(client: TestClient, path: str) -> None:
    sent = client.portal.call(_without_raw_path, client.app, path)  # type: ignore[union-attr]
    start = sent[0]
    assert start["status"] == 404
    assert dict(start["headers"])[b"x-request-id"]
