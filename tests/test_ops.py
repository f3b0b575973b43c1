"""Probes, metrics, request ids and log hygiene, in process (real serving processes are in
``test_ops_serve.py``)."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ogshot import logs
from ogshot.api import create_app
from ogshot.settings import Settings

from .conftest import free_port
from .fake_upstream import KEY as UPSTREAM_KEY


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, by name and sorted labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_get_and_head_never_cached(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    head = client.head(path)
    assert head.status_code == 200
    assert head.headers["cache-control"] == "no-store"
    assert head.content == b""


def test_readyz_names_its_checks(client: TestClient) -> None:
    assert client.get("/readyz").json() == {"status": "ready", "checks": {"capture": "none"}}


def test_readyz_is_503_quickly_when_redis_is_unreachable(layouts: object) -> None:
    # Nothing listens on this port: the check fails fast and says why; cards still render.
    url = f"redis://127.0.0.1:{free_port()}/0"
    settings = Settings(_env_file=None, capture="none", redis_url=url)  # type: ignore[call-arg]
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.headers["cache-control"] == "no-store"
        body = r.json()
        assert body["error"] == "not_ready"
        assert "Redis" in body["detail"]
        assert body["checks"]["redis"] in ("error", "timeout")
        assert url not in r.text  # the URL may hold a password
        assert c.get("/og.png", params={"title": "Redis is down"}).status_code == 200


def test_metrics_count_real_requests(client: TestClient) -> None:
    before = client.get("/metrics")
    assert before.status_code == 200
    assert before.headers["cache-control"] == "no-store"
    assert before.headers["content-type"].startswith("text/plain")
    params = {"title": "Counted once made, once served from memory"}
    assert client.get("/og.png", params=params).headers["x-ogshot-cache"] == "miss"
    assert client.get("/og.png", params=params).headers["x-ogshot-cache"] == "hit"
    assert client.get("/no-such-thing").status_code == 404
    assert client.head("/healthz").status_code == 200  # HEAD is served by the GET route
    after = client.get("/metrics").text
    was = before.text

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(was, name, **labels)

    assert delta("ogshot_requests_total", route="/og.png", status="200") == 2
    assert delta("ogshot_requests_total", route="unmatched", status="404") == 1
    assert delta("ogshot_requests_total", route="/metrics", status="200") == 1
    assert delta("ogshot_requests_total", route="/healthz", status="200") == 1
    assert delta("ogshot_cards_total", source="miss") == 1
    assert delta("ogshot_cards_total", source="hit") == 1
    assert delta("ogshot_request_duration_seconds_count", route="/og.png") == 2
    for span in ("queue", "thread", "render", "encode"):
        assert delta("ogshot_span_duration_seconds_count", span=span) == 1, span
    assert delta("ogshot_cache_lookups_total", tier="memory", kind="card", outcome="miss") == 1
    assert delta("ogshot_cache_lookups_total", tier="memory", kind="card", outcome="hit") == 1
    pids = [k for k in samples(after) if k[0] == "ogshot_process_resident_memory_bytes"]
    assert pids and all(samples(after)[k] > 10_000_000 for k in pids)
    assert value(after, "ogshot_upstream_breaker_state") == 0


def test_capture_errors_and_spans_are_counted(capture_settings: Settings) -> None:
    with TestClient(create_app(capture_settings), raise_server_exceptions=False) as c:
        was = c.get("/metrics").text
        r = c.get("/og.png", params={"title": "t", "url": "https://example.com/e500"})
        assert r.headers["x-ogshot-fallback"] == "upstream_5xx"
        ok = c.get("/og.png", params={"title": "t", "url": "https://example.com/page-metrics"})
        assert "x-ogshot-fallback" not in ok.headers
        now = c.get("/metrics").text
    reason = {"reason": "upstream_5xx"}
    assert (
        value(now, "ogshot_capture_errors_total", **reason)
        - value(was, "ogshot_capture_errors_total", **reason)
        == 1
    )
    captures = "ogshot_span_duration_seconds_count"
    assert value(now, captures, span="capture") - value(was, captures, span="capture") == 2


def test_metrics_move_to_their_own_port_when_asked() -> None:
    settings = Settings(_env_file=None, capture="none", metrics_port=9464)  # type: ignore[call-arg]
    with TestClient(create_app(settings)) as c:
        assert c.get("/metrics").status_code == 404


def test_request_id_is_echoed_when_sane_else_made(client: TestClient) -> None:
    r = client.get("/healthz", headers={"X-Request-Id": "abc-123.x"})
    assert r.headers["x-request-id"] == "abc-123.x"
    made = client.get("/healthz").headers["x-request-id"]
    assert len(made) == 32 and int(made, 16) >= 0
    for bad in ["two words", "<script>", "x" * 200, ""]:
        got = client.get("/healthz", headers={"X-Request-Id": bad}).headers["x-request-id"]
        assert got != bad and len(got) == 32


def test_request_id_on_the_fast_path_too(client: TestClient) -> None:
    params = {"title": "Fast path keeps the id"}
    client.get("/og.png", params=params)
    r = client.get("/og.png", params=params, headers={"X-Request-Id": "fast-1"})
    assert r.headers["x-ogshot-cache"] == "hit"
    assert r.headers["x-request-id"] == "fast-1"
    again = client.get("/og.png", params=params, headers={"X-Request-Id": "fast-2"})
    assert again.headers["x-request-id"] == "fast-2"  # the memoised header block is not reused
    assert again.headers.get_list("x-request-id") == ["fast-2"]


def test_redact_masks_secrets_and_credential_pairs() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        upstream_key=UPSTREAM_KEY,
        signing_keys="k1:first-signing-secret,k2:second-signing-secret",
        redis_url="redis://user:redis-pass-word@cache:6379/0",
    )
    redact = logs.Redact(logs.secret_values(settings))
    record = logging.LogRecord(
        "ogshot",
        logging.WARNING,
        __file__,
        1,
        "fetch %s failed with %s; signed by %s; redis at %s",
        (
            "https://api.example/shot?url=x&access_key=ABCDEF123&sig=Zm9vYmFy",
            UPSTREAM_KEY,
            "second-signing-secret",
            "redis-pass-word",
        ),
        None,
    )
    redact.filter(record)
    text = record.getMessage()
    for secret in (
        UPSTREAM_KEY,
        "ABCDEF123",
        "Zm9vYmFy",
        "first-signing-secret",
        "second-signing-secret",
        "redis-pass-word",
    ):
        assert secret not in text, secret
    assert "fetch https://api.example/shot?url=x&access_key=***&sig=*** failed" in text


def test_json_lines_carry_the_request_fields() -> None:
    record = logging.LogRecord("ogshot.access", logging.INFO, __file__, 1, "GET /og.png", (), None)
    record.request_id = "r1"
    record.card_key = "card:abc"
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["message"] == "GET /og.png"
    assert line["request_id"] == "r1" and line["card_key"] == "card:abc"
    assert line["level"] == "info" and line["logger"] == "ogshot.access"


class _BrokenProvider:
    """A capture provider whose readiness check fails, as a browser that cannot start does."""

    name = "chromium"
    enabled = True

    async def ready(self) -> None:
        raise RuntimeError("the browser did not start")

    async def aclose(self) -> None:
        return None


def test_readyz_is_503_when_the_capture_provider_is_unusable(
    settings: Settings, layouts: object, fonts: object
) -> None:
    from ogshot.service import CardService

    svc = CardService(settings, layouts=layouts, fonts=fonts, capture=_BrokenProvider())  # type: ignore[arg-type]
    with TestClient(create_app(settings, service=svc)) as c:
        r = c.get("/readyz")
    assert r.status_code == 503 and r.headers["cache-control"] == "no-store"
    assert r.json()["checks"]["capture"] == "unusable"
    assert "chromium" in r.json()["detail"]


def test_chromium_provider_is_ready_until_it_is_shut_down(settings: Settings) -> None:
    import asyncio

    from ogshot.capture.chromium import ChromiumCapture

    provider = ChromiumCapture(settings.model_copy(update={"capture": "chromium"}))

    async def run() -> None:
        await provider.ready()  # no browser yet: it starts on the first capture
        assert provider.launches == 0
        await provider.aclose()
        with pytest.raises(Exception, match="shutting down"):
            await provider.ready()

    asyncio.run(run())


def test_labelled_children_are_kept_within_their_bound() -> None:
    from ogshot import metrics

    metrics._CHILDREN.clear()
    first = metrics._child(metrics.REQUESTS, "/og.png", "200")
    assert first is metrics.REQUESTS.labels("/og.png", "200")
    assert metrics._child(metrics.REQUESTS, "/og.png", "200") is first
    for n in range(metrics._CHILDREN_KEPT + 10):
        metrics._child(metrics.CAPTURE_ERRORS, f"reason-{n}")
    assert len(metrics._CHILDREN) <= metrics._CHILDREN_KEPT
    for n in range(metrics._CHILDREN_KEPT + 10):
        metrics.CAPTURE_ERRORS.remove(f"reason-{n}")
    metrics._CHILDREN.clear()
