"""Every benchmark in one run, so that the ratios compare figures measured side by side.

    python -m bench [--quick] [--vercel-modules DIR] [--json results.json]

Prints a Markdown table per part (what the README shows) and, last, one JSON object with every
figure. Numbers move with the machine's load: compare ratios from the same run, not figures
across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from typing import Any

from . import bench_concurrency, bench_http, bench_memory, bench_render

TARGETS = {
    "title card vs @vercel/og": 4.0,
    "screenshot card vs Pillow default PNG": 10.0,
    "cache hits vs bare endpoint": 0.9,
}


def _http(seconds: int) -> dict[str, Any]:
    try:
        return bench_http.measure(workers=1, seconds=seconds, rounds=2)
    except RuntimeError as exc:  # wrk missing, a server that would not start
        return {"skipped": str(exc)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and cards")
    parser.add_argument("--vercel-modules", help="folder with @vercel/og installed by npm")
    parser.add_argument("--json", help="also write the JSON figures to this file")
    args = parser.parse_args()
    n, cards, seconds = (10, 1000, 2) if args.quick else (30, 10000, 4)

    fig: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "render": bench_render.figures(n, args.vercel_modules),
        "pools": bench_concurrency.figures(workers=2, cards=4 * n),
        "http": _http(seconds),
        "memory": bench_memory.figures(cards),
    }
    print(bench_render.table(fig["render"]))
    print()
    print("| pool (2 workers) | title cards/s | screenshot cards/s |")
    print("|---|---:|---:|")
    for name in fig["pools"]["title"]:
        title, shot = fig["pools"]["title"][name], fig["pools"]["screenshot"][name]
        print(f"| {name} | {title:.0f} | {shot:.1f} |")
    print()
    http = fig["http"]
    if "skipped" in http:
        print(f"HTTP: skipped ({http['skipped']})")
    else:
        print("| HTTP, one worker | requests/s |")
        print("|---|---:|")
        rows = (
            ("cold card, render threads", "cold_rps"),
            ("cold card, render processes", "cold_processes_rps"),
            ("cache hit", "hit_rps"),
            ("304 Not Modified", "not_modified_rps"),
            ("bare Starlette, same bytes", "bare_rps"),
        )
        for label, name in rows:
            print(f"| {label} | {http[name]:.0f} |")
    mem = fig["memory"]
    print()
    print(
        f"RSS after {mem['cards']} distinct cards: {mem['rss_mb']:.0f} MB (service "
        f"{mem['service_rss_mb']:.0f} MB, render workers {mem['workers_rss_mb']:.0f} MB), "
        f"cache budget {mem['budget_mb']:.0f} MB: "
        f"{mem['over_budget_mb']:+.0f} MB against a target of +150 MB."
    )
    ratios: dict[str, float] = {
        "screenshot card vs Pillow default PNG": fig["render"]["vs_pillow"]["ratio_total"],
    }
    if "ratio" in fig["render"]["vs_vercel_og"]:
        ratios["title card vs @vercel/og"] = fig["render"]["vs_vercel_og"]["ratio"]
    if "skipped" not in http:
        ratios["cache hits vs bare endpoint"] = http["hit_over_bare"]
    fig["ratios"] = ratios
    print()
    for name, value in ratios.items():
        verdict = "meets" if value >= TARGETS[name] else "misses"
        print(f"- {name}: {value:.2f} ({verdict} the target {TARGETS[name]})")
    out = json.dumps(fig)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(out + "\n")
    print(out)


if __name__ == "__main__":
    main()
