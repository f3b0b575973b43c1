"""Overload: do cache hits stay fast while a crowd asks for distinct new cards?

One real ``ogshot serve`` on loopback. A few cards are made first (the hits). Then:

1. idle: a probe process asks for the hits one after another and times them;
2. load: ``--clients`` concurrent clients (default 200) for ``--duration`` seconds (default 60),
   ``--hit-share`` of them asking for the made cards, the rest for distinct new ones, each
   client behind its own X-Forwarded-For (the server trusts 127.0.0.1 as its proxy, so every
   client has its own budget), while the same probe runs again;
3. after: the probe once more, to see the service normal again.

Prints the probe's p50/p99 idle, under load and after, the ratio load/idle, the load clients'
own hit latencies, counts of 200/429/503 and of anything else (must be 0), and the server's RSS
before and after. Run it with the render threads (default) or worker processes
(``--processes N``) to compare them.

    python -m bench.bench_overload [--clients 200] [--duration 60] [--processes 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

HITS = [f"/og.png?title=Hit+card+{i}&subtitle=made+before+the+storm" for i in range(16)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000


def _probe(base: str, seconds: float, out: Any) -> None:
    """One client, one request at a time, hits only: the latency a crawler sees."""
    times: list[float] = []
    errors = 0
    with httpx.Client(base_url=base, timeout=30) as client:
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            t0 = time.perf_counter()
            r = client.get(HITS[i % len(HITS)])
            times.append(time.perf_counter() - t0)
            if r.status_code != 200 or r.headers.get("x-ogshot-cache") != "hit":
                errors += 1
            i += 1
            time.sleep(0.002)
    out.send((times, errors))


def probe(base: str, seconds: float) -> tuple[list[float], int]:
    """Run the probe in its own process, so the load's client work does not slow its clock."""
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_probe, args=(base, seconds, there))
    proc.start()
    result: tuple[list[float], int] = here.recv()
    proc.join()
    return result


async def _load(base: str, clients: int, hit_share: float, seconds: float) -> dict[str, Any]:
    codes: Counter[str] = Counter()
    hit_times: list[float] = []
    retry_after_missing = 0
    n_hit_clients = int(clients * hit_share)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        end = time.monotonic() + seconds

        async def client(n: int) -> None:
            nonlocal retry_after_missing
            hits = n < n_hit_clients
            headers = {"X-Forwarded-For": f"10.{n // 250}.{n % 250}.1"}
            i = 0
            while time.monotonic() < end:
                path = HITS[(n + i) % len(HITS)] if hits else f"/og.png?title=Cold+{n}-{i}&v=ov"
                t0 = time.perf_counter()
                try:
                    r = await http.get(path, headers=headers)
                except httpx.HTTPError as exc:
                    codes[type(exc).__name__] += 1
                    await asyncio.sleep(0.05)
                    continue
                if hits:
                    hit_times.append(time.perf_counter() - t0)
                codes[str(r.status_code)] += 1
                if r.status_code in (429, 503):
                    if "retry-after" not in r.headers:
                        retry_after_missing += 1
                    # A polite client: wait as told (capped so the bench keeps pressing).
                    await asyncio.sleep(min(float(r.headers.get("retry-after", 1)), 1.0))
                i += 1

        await asyncio.gather(*(client(n) for n in range(clients)))
    return {
        "codes": dict(codes),
        "hit_times": hit_times,
        "retry_after_missing": retry_after_missing,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    ap.add_argument("--idle", type=float, default=8.0, help="seconds of idle probing")
    ap.add_argument("--hit-share", type=float, default=0.5, help="share of clients asking hits")
    ap.add_argument("--processes", type=int, default=0, help="OGSHOT_RENDER_PROCESSES")
    ap.add_argument("--rate-limit", default="120/minute", help="OGSHOT_RATE_LIMIT per client")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OGSHOT_")}
    env.update(
        OGSHOT_CAPTURE="none",
        OGSHOT_RENDER_PROCESSES=str(args.processes),
        OGSHOT_RATE_LIMIT=args.rate_limit,
        OGSHOT_TRUSTED_PROXIES="127.0.0.1",
    )
    exe = Path(sys.executable).with_name("ogshot")
    with tempfile.TemporaryDirectory() as cwd:
        server = subprocess.Popen(
            [str(exe), "serve", "--port", str(port), "--log-level", "error"],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("server did not start")
                time.sleep(0.1)
            for path in HITS:
                assert httpx.get(base + path, timeout=30).status_code == 200
            rss_before = _rss_mb(server.pid)
            idle, idle_err = probe(base, args.idle)

            ctx = multiprocessing.get_context("spawn")
            here, there = ctx.Pipe()
            prober = ctx.Process(target=_probe, args=(base, args.duration, there))
            prober.start()
            load = asyncio.run(_load(base, args.clients, args.hit_share, args.duration))
            loaded, loaded_err = here.recv()
            prober.join()
            rss_after = _rss_mb(server.pid)
            after, after_err = probe(base, min(args.idle, 5.0))
        finally:
            server.terminate()
            server.wait(timeout=30)

    codes = load["codes"]
    other = {k: v for k, v in codes.items() if k not in ("200", "429", "503")}
    figures = {
        "clients": args.clients,
        "duration_s": args.duration,
        "render_processes": args.processes,
        "probe_idle_p50_ms": round(_pct(idle, 50), 2),
        "probe_idle_p99_ms": round(_pct(idle, 99), 2),
        "probe_load_p50_ms": round(_pct(loaded, 50), 2),
        "probe_load_p99_ms": round(_pct(loaded, 99), 2),
        "probe_after_p99_ms": round(_pct(after, 99), 2),
        "p99_ratio_load_over_idle": round(_pct(loaded, 99) / _pct(idle, 99), 1),
        "probe_requests_idle_load": [len(idle), len(loaded)],
        "load_client_hits_p50_ms": round(_pct(load["hit_times"], 50), 1),
        "load_client_hits_p99_ms": round(_pct(load["hit_times"], 99), 1),
        "status_200": codes.get("200", 0),
        "status_429": codes.get("429", 0),
        "status_503": codes.get("503", 0),
        "other_errors": sum(other.values()) + idle_err + loaded_err + after_err,
        "other_detail": other,
        "refusals_without_retry_after": load["retry_after_missing"],
        "server_rss_mb_before_after": [round(rss_before, 1), round(rss_after, 1)],
    }
    if args.json:
        print(json.dumps(figures))
        return
    width = max(len(k) for k in figures)
    for k, v in figures.items():
        print(f"{k:<{width}}  {v}")
    if figures["other_errors"]:
        print("FAIL: errors other than 200/429/503", file=sys.stderr)
    if figures["p99_ratio_load_over_idle"] > 10:
        print("MISS: hits' p99 under load is over 10x idle", file=sys.stderr)


if __name__ == "__main__":
    main()
