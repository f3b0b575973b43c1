from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ogshot.api import create_app
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry, builtin_dir
from ogshot.service import CardService
from ogshot.settings import Settings

from .fake_upstream import KEY as UPSTREAM_KEY
from .fake_upstream import FakeUpstream
from .loopback_pages import Canary, Site


@pytest.fixture(scope="session")
def fonts() -> FontSet:
    return FontSet.default()


@pytest.fixture(scope="session")
def layouts() -> LayoutRegistry:
    return LayoutRegistry.load(builtin_dir())


@pytest.fixture
def settings() -> Settings:
    # Built from keywords only, so no OGSHOT_* variable of the machine leaks into tests.
    return Settings(_env_file=None, capture="none")  # type: ignore[call-arg]


@pytest.fixture
def service(settings: Settings, layouts: LayoutRegistry, fonts: FontSet) -> CardService:
    return CardService(settings, layouts=layouts, fonts=fonts)


@pytest.fixture
def client(settings: Settings, service: CardService) -> Iterator[TestClient]:
    app = create_app(settings, service=service)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def decode(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


@pytest.fixture(scope="module")
def fake_upstream() -> Iterator[FakeUpstream]:
    """A misbehaving screenshot API on a loopback port (see ``tests/fake_upstream.py``)."""
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def capture_settings(fake_upstream: FakeUpstream) -> Settings:
    """Capture on, through the fake upstream, with timeouts short enough for a fast suite."""
    fake_upstream.calls.clear()
    fake_upstream.requests.clear()
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        capture="http",
        upstream_url=fake_upstream.url,
        upstream_key=UPSTREAM_KEY,
        upstream_connect_timeout=0.5,
        upstream_read_timeout=0.4,
        upstream_timeout=1.0,
        upstream_retries=1,
        upstream_backoff=0.01,
        upstream_backoff_max=0.05,
        upstream_queue_timeout=0.5,
        upstream_breaker_failures=100,
        capture_max_bytes=4 * 1024 * 1024,
    )


@pytest.fixture
def roomy_capture_settings(capture_settings: Settings) -> Settings:
    """:func:`capture_settings` with timeouts far above any healthy answer, for tests of the
    success path that count upstream calls: on a loaded machine a 0.4 s read timeout fires on a
    good page, the retry makes a second call, and the count (not the timeout) is what fails."""
    return capture_settings.model_copy(
        update={
            "upstream_connect_timeout": 10.0,
            "upstream_read_timeout": 20.0,
            "upstream_timeout": 30.0,
            "upstream_queue_timeout": 10.0,
            "card_deadline": 0.0,
        }
    )

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def ogshot_serve(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> Iterator[str]:
    """A real ``ogshot serve`` process on a free loopback port until the block ends; yields its
    base URL. Only the given OGSHOT_* variables reach it, and it runs in ``cwd`` (no .env)."""
    with ogshot_serve_process(cwd, *args, env=env, timeout=timeout) as (base, _):
        yield base


@contextmanager
def ogshot_serve_process(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """:func:`ogshot_serve`, also yielding the process (to signal it); its output goes to
    ``cwd / "serve.log"``."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OGSHOT_")}
    exe = Path(sys.executable).with_name("ogshot")
    log_path = cwd / "serve.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--log-level", "warning", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = log_path.read_text(errors="replace")
                pytest.fail(f"ogshot serve {' '.join(args)} did not come up: {out}")
            time.sleep(0.1)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=15)
        log.close()


def wait_for_port(
    port: int,
    proc: subprocess.Popen[bytes],
    what: str,
    timeout: float = 10,
    detail: Callable[[], str] = lambda: "",
) -> None:
    """Until something listens on 127.0.0.1:``port``; fails the test when ``proc`` dies or the
    time runs out, with ``detail()`` (a log, say) in the message."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{what} did not start {detail()}".strip())
            time.sleep(0.05)


@contextmanager
def redis_process(cwd: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real, throw-away ``redis-server`` on a loopback port: its URL and its process. A test
    may pause it (``SIGSTOP``); it is resumed before it is stopped, whatever happened."""
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc, "redis-server")
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real, throw-away ``redis-server`` on a loopback port; yields its URL."""
    with redis_process(tmp_path_factory.mktemp("redis")) as (url, _):
        yield url


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's Redis, emptied for this test."""
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    return redis_server


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    """Pages served on loopback, the origin a test allows (``OGSHOT_PRIVATE_ALLOWLIST``)."""
    s = Site().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    """A second loopback server that the guard must keep every browser away from."""
    c = Canary().start()
    yield c
    c.stop()
