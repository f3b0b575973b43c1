"""HTTP benchmark: cold cards, cache hits and 304s against a bare Starlette endpoint.

Starts, on loopback ports, ``ogshot serve`` and a bare Starlette app that returns the very same
bytes and headers, each under uvicorn with the same worker count, then drives both with ``wrk``
in the same run and prints requests per second and the ratios::

    python -m bench.bench_http [--workers 1] [--seconds 5] [--connections 32] [--json]

``cold`` asks for a new card on every request (rendered in the render threads, and once more
with ``OGSHOT_RENDER_PROCESSES`` set to the core count), ``hit`` repeats one card, ``304``
repeats it with a matching ``If-None-Match``. Targets: a cache hit at least 90% of the bare
endpoint, a 304 at least as fast as a hit. ``measure()`` returns the figures as a dict.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from .common import stop

CARD_QUERY = "title=Ship%20social%20cards%20that%20load%20fast&subtitle=A%20benchmark&site=ogshot"

BARE_APP = """
import json, os
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

with open(os.environ["BENCH_BODY"], "rb") as f:
    BODY = f.read()
HEADERS = json.loads(os.environ["BENCH_HEADERS"])

async def card(request):
    return Response(BODY, media_type="image/png", headers=HEADERS)

app = Starlette(routes=[Route("/og.png", card, methods=["GET", "HEAD"])])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not come up")


@contextmanager
def _server(cmd: list[str], env: dict[str, str], cwd: Path, probe: str) -> Iterator[None]:
    log = (cwd / f"server-{len(os.listdir(cwd))}.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_up(probe, proc)
        yield
    finally:
        stop(proc)
        log.close()


#: wrk script: a title no request has asked for before, so every request renders a card. The tag
#: differs between wrk runs (wrk's Lua starts its counter and random numbers afresh each time).
COLD_LUA = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/og.png?title=Cold%%20card%%20%s-" .. counter)
end
"""


def _wrk(
    url: str,
    seconds: float,
    connections: int,
    headers: dict[str, str],
    script: Path | None = None,
) -> float:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run(
        cmd + [url], capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} error responses from {url}")
    return float(m.group(1))


def _cold(
    cwd: Path, env: dict[str, str], uvicorn: list[str], seconds: float, connections: int
) -> float:
    """Cold cards per second from a fresh ogshot started with ``env``."""
    # wrk is one client asking for hundreds of new cards a second: the budget is charged as
    # by default, at a rate it never reaches.
    env = {**env, "OGSHOT_RATE_LIMIT": "1000000/minute"}
    port = free_port()
    cmd = uvicorn + ["--port", str(port), "--factory", "ogshot.api:create_app"]
    with _server(cmd, env, cwd, f"http://127.0.0.1:{port}/healthz"):
        base = f"http://127.0.0.1:{port}/og.png"
        warm, timed = cwd / "cold-warm.lua", cwd / "cold.lua"
        warm.write_text(COLD_LUA % f"warm{port}")
        timed.write_text(COLD_LUA % f"timed{port}")
        _wrk(base, 1, connections, {}, warm)  # fonts, layouts, allocator, worker processes
        time.sleep(1.0)  # let the renders the warm-up left behind finish
        return _wrk(base, seconds, connections, {}, timed)


def measure(
    workers: int = 1, seconds: float = 5.0, connections: int = 32, rounds: int = 2
) -> dict[str, Any]:
    """Run the benchmark; the figures as a dict (requests per second and ratios).

    Both servers stay up and are measured in alternation, ``rounds`` times, keeping each one's
    best figure: on a shared machine that is the one least disturbed by everything else.
    """
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("OGSHOT_")}
    with tempfile.TemporaryDirectory(prefix="ogshot-bench-") as tmp, ExitStack() as stack:
        cwd = Path(tmp)
        og_port, bare_port = free_port(), free_port()
        og = f"http://127.0.0.1:{og_port}/og.png?{CARD_QUERY}"
        uvicorn = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1"]
        uvicorn += ["--workers", str(workers), "--log-level", "warning", "--no-access-log"]
        og_cmd = uvicorn + ["--port", str(og_port), "--factory", "ogshot.api:create_app"]
        stack.enter_context(_server(og_cmd, base_env, cwd, f"http://127.0.0.1:{og_port}/healthz"))
        with urllib.request.urlopen(og, timeout=30) as r:
            body = r.read()
            keep = ("ETag", "Cache-Control", "X-Content-Type-Options", "Accept-Ranges")
            headers = {name: r.headers[name] for name in keep}
            headers["X-Ogshot-Cache"] = "hit"
        etag = headers["ETag"]

        (cwd / "body.png").write_bytes(body)
        (cwd / "bare_app.py").write_text(BARE_APP)
        env = {**base_env, "BENCH_BODY": str(cwd / "body.png")}
        env["BENCH_HEADERS"] = json.dumps(headers)
        bare_url = f"http://127.0.0.1:{bare_port}/og.png?{CARD_QUERY}"
        bare_cmd = uvicorn + ["--port", str(bare_port), "--app-dir", str(cwd), "bare_app:app"]
        stack.enter_context(_server(bare_cmd, env, cwd, bare_url))

        # Warm up: every worker renders the card once into its own memory tier (and memo).
        _wrk(og, 1, connections, {})
        _wrk(bare_url, 1, connections, {})
        hit = not_modified = bare = 0.0
        for _ in range(rounds):
            bare = max(bare, _wrk(bare_url, seconds, connections, {}))
            hit = max(hit, _wrk(og, seconds, connections, {}))
            revalidate = _wrk(og, seconds, connections, {"If-None-Match": etag})
            not_modified = max(not_modified, revalidate)
        cold = _cold(cwd, base_env, uvicorn, seconds, connections)
        cores = str(os.cpu_count() or 1)
        env = {**base_env, "OGSHOT_RENDER_PROCESSES": cores}
        cold_processes = _cold(cwd, env, uvicorn, seconds, connections)

    return {
        "workers": workers,
        "seconds": seconds,
        "connections": connections,
        "rounds": rounds,
        "body_bytes": len(body),
        "bare_rps": round(bare, 1),
        "hit_rps": round(hit, 1),
        "not_modified_rps": round(not_modified, 1),
        "cold_rps": round(cold, 1),
        "cold_processes_rps": round(cold_processes, 1),
        "hit_over_bare": round(hit / bare, 3),
        "not_modified_over_bare": round(not_modified / bare, 3),
        "not_modified_over_hit": round(not_modified / hit, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds, best kept")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    try:
        figures = measure(args.workers, args.seconds, args.connections, args.rounds)
    except RuntimeError as exc:
        print(f"bench_http: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(
        f"workers={figures['workers']} connections={figures['connections']} "
        f"{figures['rounds']} x {figures['seconds']:g} s each, body {figures['body_bytes']} bytes"
    )
    print(f"{'endpoint':<28}{'req/s':>10}{'vs bare':>10}")
    print(f"{'bare Starlette (200)':<28}{figures['bare_rps']:>10.0f}{1:>10.2f}")
    print(
        f"{'ogshot cache hit (200)':<28}{figures['hit_rps']:>10.0f}"
        f"{figures['hit_over_bare']:>10.2f}"
    )
    print(
        f"{'ogshot If-None-Match (304)':<28}{figures['not_modified_rps']:>10.0f}"
        f"{figures['not_modified_over_bare']:>10.2f}"
    )
    print(f"{'ogshot cold card (200)':<28}{figures['cold_rps']:>10.0f}")
    print(f"{'  rendered in processes':<28}{figures['cold_processes_rps']:>10.0f}")
    print(f"304 / hit: {figures['not_modified_over_hit']:.2f}")
    for line in verdicts(figures):
        print(line)
    return 0


#: Targets: a cache hit at least this share of the bare endpoint's rate; a 304 at least a hit's.
HIT_OVER_BARE = 0.90
NOT_MODIFIED_OVER_HIT = 1.00


def verdicts(figures: dict[str, Any]) -> list[str]:
    """One line per target: the figure, the target, PASS or FAIL."""
    checks = (
        ("cache hit / bare Starlette", figures["hit_over_bare"], HIT_OVER_BARE),
        ("304 / cache hit", figures["not_modified_over_hit"], NOT_MODIFIED_OVER_HIT),
    )
    return [
        f"target {name} >= {goal:.2f}: {value:.3f} {'PASS' if value >= goal else 'FAIL'}"
        for name, value, goal in checks
    ]


if __name__ == "__main__":
    raise SystemExit(main())
