"""Every benchmark in one run, so that the ratios compare figures measured side by side.

    python -m bench [--quick] [--vercel-modules DIR] [--json results.json] [--readme README.md]

@vercel/og is the peer of the title card: ``npm install @vercel/og@0.11.1 satori@0.33.5`` in a
folder outside the repository, and pass that folder as ``--vercel-modules`` (or set
``OGSHOT_BENCH_VERCEL_MODULES``); without it, its rows and targets are skipped.

Prints the Markdown tables the README shows (the figures of this one run), then every target
with PASS or FAIL, and last one JSON object with every figure. ``--readme README.md`` also puts
the tables and targets into the README's Performance section, between its bench-run markers.
Numbers move with the machine's load: compare ratios from the same run, not figures across
runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

from . import bench_cold, bench_concurrency, bench_herd, bench_http, bench_memory, bench_render

#: Targets: (what, at least / at most, the bound).
TARGETS = {
    "cold title card over HTTP, @vercel/og time / ogshot time": ("at least", 5.0),
    "title card in process, @vercel/og time / ogshot time": ("at least", 5.0),
    "screenshot card, Pillow default PNG time / ogshot time": ("at least", 10.0),
    "cache hits, requests/s against a bare Starlette endpoint": ("at least", 0.9),
    "cold title card over HTTP, ms above ogshot's in-process render": ("at most", 1.0),
    "RSS after the distinct cards, MB above the cache budget": ("at most", 150.0),
}


def _http(seconds: int) -> dict[str, Any]:
    try:
        return bench_http.measure(workers=1, seconds=seconds, rounds=2)
    except RuntimeError as exc:  # wrk missing, a server that would not start
        return {"skipped": str(exc)}


def targets(fig: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every target of the run: (what, the figure and the target, PASS / FAIL / SKIPPED)."""
    cold, render, http, mem, herd = (
        fig["cold"],
        fig["render"],
        fig["http"],
        fig["memory"],
        fig["herd"],
    )
    measured: dict[str, float | None] = {
        "cold title card over HTTP, @vercel/og time / ogshot time": cold.get("ratio_http"),
        "title card in process, @vercel/og time / ogshot time": cold.get("ratio_in_process"),
        "screenshot card, Pillow default PNG time / ogshot time": render["vs_pillow"][
            "ratio_total"
        ],
        "cache hits, requests/s against a bare Starlette endpoint": http.get("hit_over_bare"),
        "cold title card over HTTP, ms above ogshot's in-process render": cold["overhead_ms"],
        "RSS after the distinct cards, MB above the cache budget": mem["over_budget_mb"],
    }
    out = []
    for name, value in measured.items():
        kind, bound = TARGETS[name]
        goal = f"{'>=' if kind == 'at least' else '<='} {bound:g}"
        if name.startswith("RSS"):
            name = name.replace("the distinct cards", f"{mem['cards']:,} distinct cards")
        if value is None:
            out.append((name, f"skipped (target {goal})", "SKIPPED"))
            continue
        ok = value >= bound if kind == "at least" else value <= bound
        out.append((name, f"{value:.2f} (target {goal})", "PASS" if ok else "FAIL"))
    herd_line = (
        f"{herd['captures']} capture, {herd['renders']} render, statuses {herd['statuses']}, "
        f"{herd['distinct_bodies']} distinct body (target 1 capture, 1 render)"
    )
    out.append(
        (
            f"{herd['requests']} identical cold requests",
            herd_line,
            "PASS" if bench_herd.holds(herd) else "FAIL",
        )
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and cards")
    parser.add_argument("--vercel-modules", help="folder with @vercel/og installed by npm")
    parser.add_argument("--json", help="also write the JSON figures to this file")
    parser.add_argument(
        "--readme", help="also put the report into this README's bench-run block (README.md)"
    )
    args = parser.parse_args()
    n, cold_n, cards, seconds = (10, 30, 1000, 2) if args.quick else (30, 100, 10000, 4)
    modules = bench_cold.vercel_modules(args.vercel_modules)

    fig: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),
        },
        "cold": bench_cold.measure(cold_n, modules),
        "render": bench_render.figures(n),
        "pools": bench_concurrency.figures(workers=2, cards=4 * n),
        "http": _http(seconds),
        "memory": bench_memory.figures(cards),
        "herd": bench_herd.figures(200),
    }
    report = "\n".join(report_lines(fig))
    print(report)
    out = json.dumps(fig)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(out + "\n")
    if args.readme:
        replace_block(Path(args.readme), report)
    print()
    print(out)


#: The README's run lies between these two lines; ``--readme`` replaces what is between them.
BEGIN, END = "<!-- bench run: begin -->", "<!-- bench run: end -->"


def replace_block(readme: Path, report: str) -> None:
    """Put ``report`` between the markers in ``readme`` (the Performance section's run)."""
    text = readme.read_text()
    head, sep, rest = text.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SystemExit(f"{readme}: no '{BEGIN}' ... '{END}' block to replace")
    readme.write_text(f"{head}{BEGIN}\n\n{report}\n\n{END}{tail}")


def report_lines(fig: dict[str, Any]) -> list[str]:
    """The run as Markdown: the tables, the cold-request line, the memory line, the targets."""
    lines: list[str] = []
    say = lines.append
    cold = fig["cold"]
    say(bench_render.table(fig["render"], bench_cold.rows(cold)))
    say("")
    cold_line = (
        f"Cold title card over HTTP: {cold['overhead_ms']:.2f} ms above the in-process render"
    )
    if "own_path_ms" in cold:
        cold_line += (
            f" ({cold['served_overhead_ms']:.2f} ms above the server's own render, of which "
            f"{cold['floor_overhead_ms']:.2f} ms is the HTTP stack, the render thread's hop and "
            f"the hash alone, as a bare ASGI app under `ogshot serve`'s server doing the same "
            f"render takes them, `bench/floor_app.py`, and {cold['own_path_ms']:.2f} ms ogshot's "
            f"own request path)"
        )
    if "ratio_http" in cold:
        cold_line += (
            f"; @vercel/og {cold['ratio_http']:.2f}x slower over HTTP, "
            f"{cold['ratio_in_process']:.2f}x in process (its own HTTP adds "
            f"{cold['vercel_og_overhead_ms']:.2f} ms)."
        )
    else:
        cold_line += f"; @vercel/og skipped: {cold['vercel_og']['skipped']}."
    say(cold_line)
    say("")
    say("| pool (2 workers) | title cards/s | screenshot cards/s |")
    say("|---|---:|---:|")
    for name in fig["pools"]["title"]:
        title, shot = fig["pools"]["title"][name], fig["pools"]["screenshot"][name]
        say(f"| {name} | {title:.0f} | {shot:.1f} |")
    say("")
    http = fig["http"]
    if "skipped" in http:
        say(f"HTTP: skipped ({http['skipped']})")
    else:
        say("| HTTP, one worker | requests/s |")
        say("|---|---:|")
        rows = (
            ("cold card, render threads", "cold_rps"),
            ("cold card, render processes", "cold_processes_rps"),
            ("cache hit", "hit_rps"),
            ("304 Not Modified", "not_modified_rps"),
            ("bare Starlette, same bytes", "bare_rps"),
        )
        for label, name in rows:
            say(f"| {label} | {http[name]:.0f} |")
    mem = fig["memory"]
    say("")
    say(
        f"RSS after {mem['cards']} distinct cards: {mem['rss_mb']:.0f} MB (service "
        f"{mem['service_rss_mb']:.0f} MB, render workers {mem['workers_rss_mb']:.0f} MB), "
        f"cache budget {mem['budget_mb']:.0f} MB."
    )
    load = ", ".join(f"{x:.1f}" for x in fig["machine"]["load_average"])
    say("")
    say(f"Targets ({fig['machine']['cpus']} CPUs, load average at the start {load}):")
    say("")
    verdicts = targets(fig)
    fig["targets"] = {name: verdict for name, _, verdict in verdicts}
    for name, figure, verdict in verdicts:
        say(f"- {verdict}: {name}: {figure}")
    vp = fig["render"]["vs_pillow"]
    say(
        f"- (for fairness) screenshot card, Pillow PNG compress level 1 time / ogshot time: "
        f"{vp['ratio_level1_total']:.2f} end to end, {vp['ratio_level1_encode']:.2f} encode only"
    )
    return lines


if __name__ == "__main__":
    main()
