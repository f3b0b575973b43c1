"""Overload: do cache hits stay fast while a crowd asks for distinct new cards?

One real ``ogshot serve`` on loopback. A few cards are made first (the hits). Then:

1. idle: a probe process asks for the hits one after another and times them;
2. load: ``--clients`` concurrent connections (default 200) for ``--duration`` seconds (default
   60) from ``wrk`` (C, so the load generator takes little of the two cores), ``--hit-share``
   of them asking for the made cards, the rest for distinct new ones, behind
   ``X-Forwarded-For`` addresses (the server trusts 127.0.0.1 as its proxy, so each address has
   its own budget), while the same probe runs again;
3. after: the probe once more, to see the service normal again.

Prints the probe's p50/p99 idle, under load and after, the ratio load/idle, the load clients'
own hit latencies, counts of 200/429/503 and of anything else (must be 0), how many requests the
server paced (refused clients asking again before their ``Retry-After``), the server's CPU time
during the load and its RSS before and after; then the target, plainly: ``PASS`` or ``FAIL``,
hits' p99 under load within 10x of idle, with the ratio. The exit status is 1 on a FAIL or on
errors of any other kind. Run it with the render threads (default) or worker processes
(``--processes N``) to compare them.

    python -m bench.bench_overload [--clients 200] [--duration 60] [--processes 0]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
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


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _metric(base: str, name: str) -> float:
    """One unlabelled series from the server's /metrics (0 when absent)."""
    for line in httpx.get(f"{base}/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


#: The target: hits' p99 under load at most this many times their p99 idle.
TARGET_RATIO = 10.0


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


def _wrk(
    base: str, mode: str, connections: int, seconds: float, addresses: int, think_ms: int
) -> Any:
    """Start wrk (C, so the load costs the two cores little) for hits or distinct cold cards."""
    script = Path(__file__).with_name("overload.lua")
    return subprocess.Popen(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            str(max(2, connections)),
            "-d",
            f"{int(seconds)}s",
            "--timeout",
            "60s",
            "-s",
            str(script),
            base,
            "--",
            mode,
            str(os.getpid()),
            str(addresses),
            str(len(HITS)),
            str(think_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def _wrk_result(proc: Any) -> dict[str, Any]:
    out, _ = proc.communicate()
    line = [x for x in out.splitlines() if x.startswith("{")]
    if not line:
        raise SystemExit(f"wrk printed no result: {out}")
    result: dict[str, Any] = json.loads(line[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    ap.add_argument("--idle", type=float, default=8.0, help="seconds of idle probing")
    ap.add_argument("--hit-share", type=float, default=0.5, help="share of clients asking hits")
    ap.add_argument("--processes", type=int, default=0, help="OGSHOT_RENDER_PROCESSES")
    ap.add_argument("--threads", type=int, default=0, help="OGSHOT_RENDER_THREADS (0: default)")
    ap.add_argument("--rate-limit", default="120/minute", help="OGSHOT_RATE_LIMIT per client")
    ap.add_argument("--think-ms", type=int, default=200, help="pause of a hit client")
    ap.add_argument("--addresses", type=int, default=20, help="client addresses per wrk thread")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OGSHOT_")}
    env.update(
        OGSHOT_CAPTURE="none",
        OGSHOT_RENDER_PROCESSES=str(args.processes),
        OGSHOT_RENDER_THREADS=str(args.threads),
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

            paced_before = _metric(base, "ogshot_paced_requests_total")
            cpu_before = _cpu_s(server.pid)
            ctx = multiprocessing.get_context("spawn")
            here, there = ctx.Pipe()
            prober = ctx.Process(target=_probe, args=(base, args.duration, there))
            prober.start()
            n_hit = int(args.clients * args.hit_share)
            hit_load = _wrk(base, "hit", n_hit, args.duration, args.addresses, args.think_ms)
            cold_load = _wrk(base, "cold", args.clients - n_hit, args.duration, args.addresses, 0)
            hit_result, cold_result = _wrk_result(hit_load), _wrk_result(cold_load)
            loaded, loaded_err = here.recv()
            prober.join()
            cpu_load = _cpu_s(server.pid) - cpu_before
            paced = _metric(base, "ogshot_paced_requests_total") - paced_before
            rss_after = _rss_mb(server.pid)
            after, after_err = probe(base, min(args.idle, 5.0))
        finally:
            server.terminate()
            server.wait(timeout=30)

    def total(key: str) -> int:
        return int(hit_result[key]) + int(cold_result[key])

    other_load = total("other_status") + total("socket_errors")
    figures = {
        "clients": args.clients,
        "duration_s": args.duration,
        "render_processes": args.processes,
        "render_threads": args.threads or "default",
        "probe_idle_p50_ms": round(_pct(idle, 50), 2),
        "probe_idle_p99_ms": round(_pct(idle, 99), 2),
        "probe_load_p50_ms": round(_pct(loaded, 50), 2),
        "probe_load_p99_ms": round(_pct(loaded, 99), 2),
        "probe_after_p99_ms": round(_pct(after, 99), 2),
        "p99_ratio_load_over_idle": round(_pct(loaded, 99) / _pct(idle, 99), 1),
        "probe_requests_idle_load": [len(idle), len(loaded)],
        "wrk_hit_clients_p50_p99_ms": [hit_result["p50_ms"], hit_result["p99_ms"]],
        "wrk_hits_200": hit_result["200"],
        "wrk_cold_p50_p99_ms": [cold_result["p50_ms"], cold_result["p99_ms"]],
        "status_200": total("200"),
        "status_429": total("429"),
        "status_503": total("503"),
        "status_200_cold": cold_result["200"],
        "other_errors": other_load + idle_err + loaded_err + after_err,
        "refusals_without_retry_after": total("no_retry_after"),
        "requests_paced": int(paced),
        "server_cpu_s_during_load": round(cpu_load, 1),
        "server_rss_mb_before_after": [round(rss_before, 1), round(rss_after, 1)],
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }
    ratio = _pct(loaded, 99) / _pct(idle, 99)
    met = ratio <= TARGET_RATIO
    clean = figures["other_errors"] == 0 and figures["refusals_without_retry_after"] == 0
    figures["target_met"] = met
    mode = f"{args.processes} render processes" if args.processes else "render threads"
    if args.threads and not args.processes:
        mode = f"{args.threads} render threads"
    if args.json:
        print(json.dumps(figures))
    else:
        width = max(len(k) for k in figures)
        for k, v in figures.items():
            print(f"{k:<{width}}  {v}")
        print(
            f"{'PASS' if met else 'FAIL'}: hits' p99 under load {_pct(loaded, 99):.2f} ms is "
            f"{ratio:.1f}x their p99 idle {_pct(idle, 99):.2f} ms (target: within "
            f"{TARGET_RATIO:g}x; {mode}, {args.clients} clients, {args.duration:g} s)"
        )
        print(
            f"{'PASS' if clean else 'FAIL'}: {figures['other_errors']} answers other than "
            f"200/429/503, {figures['refusals_without_retry_after']} refusals without Retry-After"
        )
    if not (met and clean):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
