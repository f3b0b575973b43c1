"""HTTP requests per second: cold cards, cache hits and 304s, against a bare Starlette endpoint.

    python -m bench.bench_requests [--seconds 4] [--connections 8]

Each server runs under uvicorn (one worker) in its own process; ``wrk`` makes the load
(skipped with a message when it is not installed). ``cold`` asks for a new card on every
request (``cold_processes``: rendered in one worker process per core instead of threads),
``hit`` repeats one card, ``304`` repeats it with a matching ``If-None-Match``.
"""

from __future__ import annotations

import argparse
import contextlib
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
from pathlib import Path
from typing import Any

_COLD_LUA = """
counter = 0
request = function()
  counter = counter + 1
  local path = "/og.png?title=Cold%20card%20" .. counter .. "-" .. math.random(1, 1000000000)
  return wrk.format("GET", path)
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(factory: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``uvicorn --factory`` on a free port until the block ends; yields the base URL."""
    port = _free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--factory", factory, "--port", str(port)]
    cmd += ["--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/og.png?title=warm", timeout=5).read()
                break
            except OSError:
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def wrk(url: str, seconds: int, connections: int, extra: list[str] | None = None) -> float:
    """Requests per second that ``wrk`` reports."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", *(extra or []), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    expects_304 = any(arg.startswith("If-None-Match") for arg in extra or [])
    # wrk counts a 304 as "Non-2xx"; anywhere else that line means errors, not a measurement.
    if match is None or ("Non-2xx" in out and not expects_304):
        raise RuntimeError(f"wrk failed or saw errors:\n{out}")
    return float(match.group(1))


def figures(seconds: int = 4, connections: int = 8) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed"}
    out: dict[str, Any] = {}
    card_url = "/og.png?title=Ship%20social%20cards&site=ogshot.dev"
    with serve("bench.apps:ogshot_app") as base:
        with urllib.request.urlopen(base + card_url) as resp:
            etag, size = resp.headers["ETag"], len(resp.read())
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "cold.lua"
            script.write_text(_COLD_LUA)
            out["cold"] = wrk(base + "/og.png", seconds, connections, ["-s", str(script)])
        out["hit"] = wrk(base + card_url, seconds, connections)
        out["304"] = wrk(base + card_url, seconds, connections, ["-H", f"If-None-Match: {etag}"])
    # The same cold load with rendering in worker processes instead of threads.
    cores = str(os.cpu_count() or 1)
    with serve("bench.apps:ogshot_app", {"OGSHOT_RENDER_PROCESSES": cores}) as base:
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "cold.lua"
            script.write_text(_COLD_LUA)
            out["cold_processes"] = wrk(base + "/og.png", seconds, connections, ["-s", str(script)])
    with serve("bench.apps:bare_app", {"BENCH_BODY_BYTES": str(size)}) as base:
        out["bare"] = wrk(base + "/og.png", seconds, connections)
    out["body_bytes"] = size
    out["hit_vs_bare"] = out["hit"] / out["bare"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    fig = figures(args.seconds, args.connections)
    if "skipped" in fig:
        print(f"HTTP benchmark skipped: {fig['skipped']}")
    else:
        for name in ("cold", "cold_processes", "hit", "304", "bare"):
            print(f"{name:>5}: {fig[name]:9.0f} req/s")
        print(f"cache hits reach {fig['hit_vs_bare']:.0%} of the bare endpoint")
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
