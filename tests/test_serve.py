"""A real ``ogshot serve`` process on a loopback port, as a newcomer would run it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import decode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OGSHOT_")}
    cwd = tmp_path_factory.mktemp("serve")  # no .env here
    exe = Path(sys.executable).with_name("ogshot")
    log = (cwd / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--log-level", "warning"],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = (cwd / "serve.log").read_text(errors="replace")
                pytest.fail(f"ogshot serve did not come up: {out}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_served_card(server: str) -> None:
    r = httpx.get(f"{server}/og.png", params={"title": "Hello"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    assert int(r.headers["content-length"]) == len(r.content)
    assert decode(r.content).size == (1200, 630)

    again = httpx.get(
        f"{server}/og.png",
        params={"title": "Hello"},
        headers={"If-None-Match": f"W/{r.headers['etag']}"},
    )
    assert again.status_code == 304
    assert again.headers["etag"] == r.headers["etag"]
    assert again.headers["cache-control"] == r.headers["cache-control"]

    head = httpx.head(f"{server}/og.png", params={"title": "Hello"})
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == r.headers["content-length"]
    assert head.headers["etag"] == r.headers["etag"]


def test_served_errors_are_json(server: str) -> None:
    r = httpx.get(f"{server}/og.png", params={"title": "t", "accent": "nope"})
    assert r.status_code == 422
    assert r.headers["cache-control"] == "no-store"
    assert r.json()["error"] == "invalid_parameter"
