"""Operations against real ``ogshot serve`` processes: metrics summed over two workers, readiness
while a real Redis hangs, a SIGTERM during slow captures, and logs that keep secrets out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict

from ogshot.card import parse_card
from ogshot.settings import Settings
from ogshot.signing import Signer

from .conftest import decode, free_port, ogshot_serve, ogshot_serve_process, redis_process
from .fake_upstream import KEY as UPSTREAM_KEY
from .fake_upstream import FakeUpstream
from .test_ops import samples, value

RSS = "ogshot_process_resident_memory_bytes"


def test_metrics_are_summed_across_two_workers(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"left over from an earlier run")
    env = {"OGSHOT_METRICS_DIR": str(folder)}
    with ogshot_serve(tmp_path, "--workers", "2", env=env) as base:

        def both_workers_up() -> bool:
            text = httpx.get(f"{base}/metrics", timeout=30).text
            return len([k for k in samples(text) if k[0] == RSS]) == 2

        def per_worker() -> list[float]:
            """Each worker's own count of /og.png requests, read from its own file."""
            counts = []
            for db in sorted(folder.glob("counter_*.db")):
                d = MmapedDict(str(db), read_mode=True)
                try:
                    counts.append(
                        sum(
                            v
                            for k, v, _ in d.read_all_values()
                            if '"ogshot_requests_total"' in k and '"/og.png"' in k
                        )
                    )
                finally:
                    d.close()
            return counts

        def get(i: int) -> int:
            # A new connection each time, so that both workers' accept loops take some.
            # Timeouts are generous: on a loaded machine a render may take seconds.
            return httpx.get(
                f"{base}/og.png", params={"title": f"Card {i % 6}"}, timeout=60
            ).status_code

        # /healthz answered as soon as one worker did; the other may still be starting.
        _until(both_workers_up, 60)
        # Which worker accepts a connection is up to the kernel, and on a loaded machine one
        # worker can take a whole batch: send batches (a bounded number) until both have counted
        # some, so that the sums below really span two workers.
        n = 0
        for _ in range(8):
            with ThreadPoolExecutor(8) as pool:
                assert list(pool.map(get, range(n, n + 24))) == [200] * 24
            n += 24
            counts = per_worker()
            if len(counts) == 2 and min(counts) > 0:
                break
        # Which worker answers a scrape is up to the kernel: every answer must be the total.
        for _ in range(6):
            text = httpx.get(f"{base}/metrics", timeout=30).text
            assert value(text, "ogshot_requests_total", route="/og.png", status="200") == n
            assert value(text, "ogshot_request_duration_seconds_count", route="/og.png") == n
            cards = sum(
                value(text, "ogshot_cards_total", source=s)
                for s in ("hit", "miss", "stale", "coalesced")
            )
            assert cards == n
            rss = [k for k in samples(text) if k[0] == RSS]
            assert len(rss) == 2, rss  # one series per live worker
        # Both workers did count some of them, in their own files, and the stale file is gone.
        counts = per_worker()
        assert len(counts) == 2 and "counter_1.db" not in os.listdir(folder)
        assert sum(counts) == n
        assert min(counts) > 0, f"one worker took every request in {n}: {counts}"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server for this test alone: it gets stopped (SIGSTOP) and resumed."""
    with redis_process(tmp_path) as found:
        yield found


def _until(check: object, seconds: float) -> float:
    """Poll ``check()`` until true; the seconds it took (fails past ``seconds``)."""
    start = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - start < seconds, f"not within {seconds} s"
        time.sleep(0.1)
    return time.monotonic() - start


def test_readyz_follows_a_hanging_redis_while_cards_render(
    tmp_path: Path, own_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, redis_proc = own_redis
    with ogshot_serve(tmp_path, env={"OGSHOT_REDIS_URL": url}) as base:
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "ok"
        redis_proc.send_signal(signal.SIGSTOP)
        try:
            slowest = 0.0

            def unready() -> bool:
                nonlocal slowest
                start = time.monotonic()
                r = httpx.get(f"{base}/readyz", timeout=10)
                slowest = max(slowest, time.monotonic() - start)
                return r.status_code == 503 and r.headers["cache-control"] == "no-store"

            _until(unready, 5)
            assert slowest < 3, f"a readiness check took {slowest:.1f} s against a hung Redis"
            start = time.monotonic()
            card = httpx.get(f"{base}/og.png", params={"title": "Redis hangs"}, timeout=15)
            assert card.status_code == 200 and decode(card.content).size == (1200, 630)
            assert time.monotonic() - start < 5
        finally:
            redis_proc.send_signal(signal.SIGCONT)
        _until(lambda: httpx.get(f"{base}/readyz", timeout=10).status_code == 200, 10)


def test_sigterm_lets_cards_in_progress_finish(tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    env = {
        "OGSHOT_CAPTURE": "http",
        "OGSHOT_UPSTREAM_URL": fake_upstream.url,
        "OGSHOT_UPSTREAM_KEY": UPSTREAM_KEY,
        "OGSHOT_UPSTREAM_READ_TIMEOUT": "10",
        "OGSHOT_UPSTREAM_TIMEOUT": "20",
        "OGSHOT_SHUTDOWN_TIMEOUT": "15",
    }
    fake_upstream.hold = 1.5  # each capture takes this long
    n = 6
    try:
        with ogshot_serve_process(tmp_path, "--log-level", "info", env=env) as (base, proc):
            with ThreadPoolExecutor(n) as pool:
                futures = [
                    pool.submit(
                        httpx.get,
                        f"{base}/og.png",
                        params={"title": f"Slow {i}", "url": f"https://example.com/page-term{i}"},
                        timeout=30,
                    )
                    for i in range(n)
                ]
                _until(lambda: fake_upstream.active == n, 10)
                proc.send_signal(signal.SIGTERM)
                time.sleep(0.3)
                # Stopped accepting: a newcomer is refused while the others finish.
                with pytest.raises(httpx.TransportError):
                    httpx.get(f"{base}/healthz", timeout=2)
                answers = [f.result() for f in futures]
            assert [r.status_code for r in answers] == [200] * n
            for r in answers:
                assert "x-ogshot-fallback" not in r.headers  # the capture made it in
                assert decode(r.content).size == (1200, 630)
            # Uvicorn ends by re-raising the signal it handled: the exit says "terminated".
            assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
        log = (tmp_path / "serve.log").read_text()
        assert "Traceback" not in log and "Application shutdown complete" in log
    finally:
        fake_upstream.hold = 0


def test_json_logs_carry_request_fields_and_no_secret(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    signing_secret = "s3cret-signing-material-xyz"
    env = {
        "OGSHOT_LOG_FORMAT": "json",
        "OGSHOT_CAPTURE": "http",
        "OGSHOT_UPSTREAM_URL": fake_upstream.url,
        "OGSHOT_UPSTREAM_KEY": UPSTREAM_KEY,
        "OGSHOT_UPSTREAM_RETRIES": "0",
        "OGSHOT_SIGNING_KEYS": f"k1:{signing_secret}",
    }
    signer = Signer.from_settings(
        Settings(_env_file=None, signing_keys=f"k1:{signing_secret}")  # type: ignore[call-arg]
    )
    sigs = []
    with ogshot_serve(tmp_path, "--log-level", "info", env=env) as base:
        for page in ("e500", "page-logs", "forged"):
            card = {"title": "Logged", "url": f"https://example.com/{page}"}
            params = signer.signed_params(parse_card(card))
            if page == "forged":
                params["sig"] = "k1.c2lnbmF0dXJlLXZhbHVlLTEyMzQ1"
            sigs.append(params["sig"])
            r = httpx.get(f"{base}/og.png", params=params, headers={"X-Request-Id": f"req-{page}"})
            assert r.status_code == (403 if page == "forged" else 200)
            assert r.headers["x-request-id"] == f"req-{page}"
    text = (tmp_path / "serve.log").read_text()
    for secret in (UPSTREAM_KEY, signing_secret, *sigs, *(s.split(".", 1)[1] for s in sigs)):
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    access = {line["request_id"]: line for line in lines if line["logger"] == "ogshot.access"}
    failed, made, forged = access["req-e500"], access["req-page-logs"], access["req-forged"]
    for line in (failed, made):
        assert line["path"] == "/og.png" and line["status"] == 200
        assert line["card_key"].startswith("card:")
        assert line["cache"] == "miss" and line["duration_ms"] > 0
    assert made["capture_ms"] > 0 and made["render_ms"] > 0 and made["encode_ms"] > 0
    assert made["thread_ms"] >= 0 and made["queue_ms"] >= 0  # the waits for a turn and a thread
    assert forged["status"] == 403 and "cache" not in forged
    # The capture failure's warning carries the id of the request it happened in.
    warnings = [line for line in lines if line["level"] == "warning"]
    assert any(w.get("request_id") == "req-e500" for w in warnings), warnings


def test_metrics_on_their_own_port(tmp_path: Path) -> None:
    port = free_port()
    with ogshot_serve(tmp_path, env={"OGSHOT_METRICS_PORT": str(port)}) as base:
        assert httpx.get(f"{base}/og.png", params={"title": "Counted"}).status_code == 200
        assert httpx.get(f"{base}/metrics").status_code == 404  # not on the public port
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert value(text, "ogshot_requests_total", route="/og.png", status="200") == 1
        assert value(text, "ogshot_cards_total", source="miss") == 1


def test_sigterm_stops_within_the_shutdown_timeout(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    env = {
        "OGSHOT_CAPTURE": "http",
        "OGSHOT_UPSTREAM_URL": fake_upstream.url,
        "OGSHOT_UPSTREAM_KEY": UPSTREAM_KEY,
        "OGSHOT_UPSTREAM_READ_TIMEOUT": "30",
        "OGSHOT_UPSTREAM_TIMEOUT": "30",
        "OGSHOT_SHUTDOWN_TIMEOUT": "1",
    }
    fake_upstream.hold = 8.0  # a capture far longer than the bound
    try:
        with ogshot_serve_process(tmp_path, env=env) as (base, proc):
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(
                    httpx.get,
                    f"{base}/og.png",
                    params={"title": "Cut", "url": "https://example.com/page-cut"},
                    timeout=30,
                )
                _until(lambda: fake_upstream.active == 1, 10)
                proc.send_signal(signal.SIGTERM)
                start = time.monotonic()
                proc.wait(timeout=20)
                took = time.monotonic() - start
                with pytest.raises(httpx.HTTPError):
                    pending.result().raise_for_status()  # cut off: no complete card
            assert took < 6, f"stopped after {took:.1f} s with OGSHOT_SHUTDOWN_TIMEOUT=1"
    finally:
        fake_upstream.hold = 0
