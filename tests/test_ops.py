"""Probes, metrics, request ids and log hygiene, in process (real serving processes are in
``test_ops_serve.py``)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

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


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _line(fields: dict[str, object]) -> tuple[str, dict[str, object]]:
    return str(fields["message_text"]), {k: v for k, v in fields.items() if k != "message_text"}


def _lines_logger(name: str) -> tuple[logging.Logger, _Kept]:
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    kept = _Kept()
    logger.handlers = [kept]
    return logger, kept


def test_access_lines_are_written_shortly_after_in_order_with_the_time_they_were_made() -> None:
    logger, kept = _lines_logger("ogshot.test-later")
    lines = logs.LaterLines(logger, _line, delay=0.05)

    async def run() -> tuple[int, int, list[float]]:
        made = []
        for i in range(3):
            made.append(time.time())
            fields = {"message_text": f"line {i}", "request_id": f"r{i}", "status": 200}
            lines.add(logging.INFO, fields)
            fields["status"] = 500  # changed after: the line keeps what it was given
            await asyncio.sleep(0.005)
        at_once = len(kept.records)
        await asyncio.sleep(0.1)
        return at_once, len(kept.records), made

    at_once, later, made = asyncio.run(run())
    assert (at_once, later) == (0, 3)  # none while the answer's client may still be waking
    assert [r.getMessage() for r in kept.records] == ["line 0", "line 1", "line 2"]
    assert [r.__dict__["request_id"] for r in kept.records] == ["r0", "r1", "r2"]
    assert {r.__dict__["status"] for r in kept.records} == {200}
    for record, when in zip(kept.records, made, strict=True):
        assert abs(record.created - when) < 0.004  # when it was made, not when written
        assert record.msecs == pytest.approx((record.created % 1) * 1000, abs=0.01)


def test_access_lines_outside_a_loop_left_by_a_closed_loop_or_too_many_are_written() -> None:
    logger, kept = _lines_logger("ogshot.test-later-bounds")
    lines = logs.LaterLines(logger, _line, delay=60.0)
    lines.add(logging.INFO, {"message_text": "no loop"})
    assert [r.getMessage() for r in kept.records] == ["no loop"]

    async def keep_one() -> None:
        lines.add(logging.INFO, {"message_text": "left by its loop"})

    asyncio.run(keep_one())  # the loop closes with the line kept
    assert len(kept.records) == 1

    async def next_loop() -> int:
        lines.add(logging.INFO, {"message_text": "on the next loop"})
        seen = len(kept.records)
        for i in range(logs.LaterLines.MAX_KEPT):
            lines.add(logging.INFO, {"message_text": f"burst {i}"})
        return seen

    # The line a closed loop left is written as soon as another loop logs; and no more than
    # MAX_KEPT lines ever wait.
    assert asyncio.run(next_loop()) == 2
    assert kept.records[1].getMessage() == "left by its loop"
    assert len(kept.records) == 2 + logs.LaterLines.MAX_KEPT  # the 256th kept line wrote all
    lines.flush()
    assert len(kept.records) == 3 + logs.LaterLines.MAX_KEPT
    assert kept.records[-1].getMessage() == f"burst {logs.LaterLines.MAX_KEPT - 1}"


def test_the_last_access_lines_are_written_when_the_app_stops(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from ogshot import front

    original = front.ACCESS_LINES.delay
    front.ACCESS_LINES.delay = 60.0  # nothing but the app's end writes them
    try:
        with caplog.at_level(logging.INFO, logger="ogshot.access"):
            with TestClient(create_app(settings)) as c:
                c.get("/og.png", params={"title": "Last words"}, headers={"X-Request-Id": "last"})
                assert not [r for r in caplog.records if r.name == "ogshot.access"]
            (line,) = [r for r in caplog.records if r.name == "ogshot.access"]
    finally:
        front.ACCESS_LINES.delay = original
    assert line.__dict__["request_id"] == "last"


def test_a_line_that_cannot_be_written_costs_that_line_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logger, kept = _lines_logger("ogshot.test-later-faults")

    class Picky(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.getMessage() == "line 1":
                raise ValueError("a filter that fails")
            return True

    logger.addFilter(Picky())
    lines = logs.LaterLines(logger, _line, delay=0.01)

    async def run() -> None:
        for i in range(4):
            lines.add(logging.INFO, {"message_text": f"line {i}", "request_id": f"r{i}"})
        await asyncio.sleep(0.1)

    asyncio.run(run())
    assert [r.getMessage() for r in kept.records] == ["line 0", "line 2", "line 3"]
    assert "request r1 could not be written" in capsys.readouterr().err


def test_the_last_access_lines_are_written_even_when_closing_the_service_fails(
    settings: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ogshot import front
    from ogshot.service import CardService

    async def broken(self: CardService) -> None:
        raise RuntimeError("closing failed")

    monkeypatch.setattr(CardService, "aclose", broken)
    monkeypatch.setattr(front.ACCESS_LINES, "delay", 60.0)
    with caplog.at_level(logging.INFO, logger="ogshot.access"):
        with pytest.raises(RuntimeError, match="closing failed"):
            with TestClient(create_app(settings)) as c:
                c.get("/og.png", params={"title": "Last words"}, headers={"X-Request-Id": "gone"})
        lines = [r for r in caplog.records if r.name == "ogshot.access"]
    assert [r.__dict__["request_id"] for r in lines] == ["gone"]
