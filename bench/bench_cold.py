"""A cold title card over HTTP, what a crawler waits for: ogshot against @vercel/og.

    python -m bench.bench_cold [--n 100] [--vercel-modules DIR]

Starts ``ogshot serve`` (its own command line and defaults: the access log at INFO, written to a
file as a service's log is) and, when @vercel/og is installed, ``bench/vercel_og.mjs``: the same
card (ogshot's default layout, dark theme, mirrored) behind Node's own ``http`` module. Each gets
one keep-alive connection; requests go one at a time, taken in turn with ogshot's in-process
render + PNG (``make_card_bytes``) of a card of the same kind, timed on a thread of the
service's render threads' priority. Every request asks for a title never asked for before, on
both sides, so no cache of either side helps.

It also starts ``bench/floor_app.py``, the floor: a bare ASGI app under ``ogshot serve``'s own
HTTP stack (uvicorn and ogshot's connection protocol) that only hands the same render to a
thread, hashes its bytes there and answers them, timing the render there (``X-Render-Ms``).
What ogshot adds to a cold card over HTTP is then split in two, each server measured above the
render it did itself (``ogshot serve`` logs its render and encode spans on each request's
line): the HTTP stack, the thread hop and the ETag's hash (the floor's time above its render),
and ogshot's own request path (the difference).

Figures (medians, ms): ogshot over HTTP, ogshot in process, and the difference, the cost of
everything around the render (HTTP, parsing, key, admission, coalescing, the render thread's
hand-off, ETag, cache store, the log line); the floor's time above its render; @vercel/og over
HTTP and in process (its server times the render around ``ImageResponse``, sent back as
``X-Render-Ms``); the ratios.

@vercel/og needs ``npm install @vercel/og@0.11.1 satori@0.33.5`` in a folder outside the
repository, passed as ``--vercel-modules DIR`` (or ``OGSHOT_BENCH_VERCEL_MODULES=DIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from ogshot.card import Card
from ogshot.fonts import FONT_DIR, SEARCH_DIRS, FontSet
from ogshot.layouts import LayoutRegistry, builtin_dir
from ogshot.render import fit_box
from ogshot.service import make_card_bytes
from ogshot.workers import lower_thread_priority, tune_allocator

from .bench_http import _server, free_port
from .common import SITE, SUBTITLE, TITLES, KeepAlive, stop, summary

HERE = Path(__file__).resolve().parent


def vercel_modules(given: str | None) -> str | None:
    """The folder holding @vercel/og: the flag, else ``OGSHOT_BENCH_VERCEL_MODULES``."""
    return given or os.environ.get("OGSHOT_BENCH_VERCEL_MODULES") or None


def vercel_missing(modules: str | None) -> str | None:
    """Why @vercel/og cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not modules or not (Path(modules) / "node_modules" / "@vercel" / "og").is_dir():
        return (
            "no @vercel/og: run `npm install @vercel/og@0.11.1 satori@0.33.5` in a folder "
            "outside the repository and pass it as --vercel-modules (or "
            "OGSHOT_BENCH_VERCEL_MODULES)"
        )
    return None


@contextmanager
def _vercel_server(modules: str, log: Path) -> Iterator[int]:
    spec = json.dumps({"subtitle": SUBTITLE, "site": SITE})
    cmd = ["node", str(HERE / "vercel_og.mjs"), modules, str(FONT_DIR / "inter"), spec]
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"@vercel/og's server did not start: {log.read_text()[-300:]}")
            yield int(json.loads(line)["port"])
        finally:
            stop(proc)


def _query(**params: object) -> str:
    return urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


def measure(n: int = 100, modules: str | None = None) -> dict[str, Any]:
    """Run the benchmark; the figures as a dict (see the module docstring)."""
    tune_allocator()  # as the service does
    registry = LayoutRegistry.load(builtin_dir())
    layout = registry.get("default")
    fonts = FontSet.default()
    # @vercel/og's title sizes come from a font set of their own: the one that renders here in
    # process must not have seen the titles first.
    sizing = FontSet.from_dirs(SEARCH_DIRS)
    skipped = vercel_missing(modules)
    warm = 3
    total = n + warm

    def titles(tag: str) -> list[str]:
        return [f"{TITLES[i % len(TITLES)]}, part {i + 1}{tag}" for i in range(total)]

    over_http, in_process, peer = titles("a"), titles("b"), titles("c")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("OGSHOT_")}
    # The budget is charged as by default, at a rate this one client never reaches.
    base_env["OGSHOT_RATE_LIMIT"] = "1000000/minute"
    with tempfile.TemporaryDirectory(prefix="ogshot-bench-cold-") as tmp, ExitStack() as stack:
        cwd = Path(tmp)
        port = free_port()
        cmd = [sys.executable, "-m", "ogshot", "serve", "--port", str(port)]
        stack.enter_context(_server(cmd, base_env, cwd, f"http://127.0.0.1:{port}/healthz"))
        server_log = cwd / "server-0.log"  # bench_http._server's name for the first server
        ogshot = stack.enter_context(_closing(KeepAlive(port)))
        node: KeepAlive | None = None
        if skipped is None:
            assert modules is not None
            node_port = stack.enter_context(_vercel_server(modules, cwd / "node.log"))
            node = stack.enter_context(_closing(KeepAlive(node_port)))
        floor_port = free_port()
        floor_cmd = [sys.executable, "-m", "bench.floor_app", str(floor_port)]
        floor_env = {**base_env, "PYTHONPATH": str(HERE.parent)}
        stack.enter_context(
            _server(floor_cmd, floor_env, cwd, f"http://127.0.0.1:{floor_port}/healthz")
        )
        floor = stack.enter_context(_closing(KeepAlive(floor_port)))
        sizes = [fit_box(t, layout.title, sizing).size for t in peer]

        def ogshot_http(i: int) -> int:
            q = _query(title=over_http[i], subtitle=SUBTITLE, site=SITE, theme="dark")
            status, headers, body = ogshot.get(f"/og.png?{q}")
            if status != 200 or headers.get("x-ogshot-cache") != "miss":
                raise RuntimeError(f"ogshot answered {status} {headers} to a cold card")
            return len(body)

        # The in-process render runs on a thread of the render threads' own priority (the
        # service lowers theirs: workers.lower_thread_priority) and is timed on that thread:
        # on a busy machine a lower priority alone would otherwise count as HTTP overhead.
        renderer = stack.enter_context(
            ThreadPoolExecutor(max_workers=1, initializer=lower_thread_priority)
        )
        rendered: list[float] = []

        def render_timed(i: int) -> int:
            t0 = time.perf_counter()
            card = Card(title=in_process[i], subtitle=SUBTITLE, site=SITE, theme="dark")
            size = len(make_card_bytes(card, registry, fonts))
            rendered.append(time.perf_counter() - t0)
            return size

        def ogshot_in_process(i: int) -> int:
            return renderer.submit(render_timed, i).result()

        peer_render: list[float] = []

        def vercel_http(i: int) -> int:
            assert node is not None
            status, headers, body = node.get(f"/og.png?{_query(title=peer[i], size=sizes[i])}")
            if status != 200:
                raise RuntimeError(f"@vercel/og answered {status}: {body[:300]!r}")
            peer_render.append(float(headers["x-render-ms"]) / 1000)
            return len(body)

        floor_titles = titles("d")
        floor_render: list[float] = []

        def floor_http(i: int) -> int:
            q = _query(title=floor_titles[i], subtitle=SUBTITLE, site=SITE, theme="dark")
            status, headers, body = floor.get(f"/og.png?{q}")
            if status != 200:
                raise RuntimeError(f"the floor's server answered {status}")
            floor_render.append(float(headers["x-render-ms"]) / 1000)
            return len(body)

        sides = [ogshot_http, ogshot_in_process, floor_http]
        sides += [vercel_http] if node is not None else []
        samples: list[list[float]] = [[] for _ in sides]
        sizes_seen: list[int] = [0 for _ in sides]
        for i in range(total):
            for k, side in enumerate(sides):
                t0 = time.perf_counter()
                sizes_seen[k] = side(i)
                if i >= warm:
                    samples[k].append(time.perf_counter() - t0)
        served = server_renders(server_log)

    out: dict[str, Any] = {"n": n}
    in_process_times = rendered[warm:]  # timed on the render thread itself
    out["ogshot_http"] = summary(samples[0]) | {"bytes": sizes_seen[0]}
    out["ogshot_in_process"] = summary(in_process_times) | {"bytes": sizes_seen[1]}
    # The overhead: median of the per-round differences, each pair taken back to back.
    out["overhead_ms"] = _above_ms(samples[0], in_process_times)
    out["floor_http"] = summary(samples[2]) | {"bytes": sizes_seen[2]}
    # Like for like: each server's time above the render it did itself for that request (the
    # floor sends it back; ogshot serve logs its render and encode spans on the request's line).
    out["floor_overhead_ms"] = _above_ms(samples[2], floor_render[warm:])
    if len(served) == total:
        out["served_overhead_ms"] = _above_ms(samples[0], served[warm:])
        out["own_path_ms"] = out["served_overhead_ms"] - out["floor_overhead_ms"]
    if node is None:
        out["vercel_og"] = {"skipped": skipped}
        return out
    out["vercel_og_http"] = summary(samples[3]) | {"bytes": sizes_seen[3]}
    out["vercel_og_in_process"] = summary(peer_render[warm:])
    out["ratio_http"] = out["vercel_og_http"]["median_ms"] / out["ogshot_http"]["median_ms"]
    out["ratio_in_process"] = (
        out["vercel_og_in_process"]["median_ms"] / out["ogshot_in_process"]["median_ms"]
    )
    out["vercel_og_overhead_ms"] = _above_ms(samples[3], peer_render[warm:])
    return out


def _above_ms(over_http: list[float], renders: list[float]) -> float:
    """Median, in ms, of each request's time over HTTP above the render paired with it."""
    return statistics.median(h - r for h, r in zip(over_http, renders, strict=True)) * 1000


_SPAN = re.compile(r" (render|encode)_ms=([0-9.]+)")


def server_renders(log: Path) -> list[float]:
    """Seconds each card made by ``ogshot serve`` took to render and encode, in order, from its
    access log lines (``render_ms=`` and ``encode_ms=``)."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if " /og.png 200 " in line and "cache=miss" in line:
            spans = dict(_SPAN.findall(line))
            if len(spans) == 2:
                out.append((float(spans["render"]) + float(spans["encode"])) / 1000)
    return out


@contextmanager
def _closing(conn: KeepAlive) -> Iterator[KeepAlive]:
    try:
        yield conn
    finally:
        conn.close()


def rows(fig: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The table rows (label, summary) of these figures, for the README's table."""
    out = [
        ("cold title card over HTTP, ogshot (`ogshot serve`)", fig["ogshot_http"]),
        ("title card in process, ogshot (render + PNG)", fig["ogshot_in_process"]),
    ]
    if "vercel_og_http" in fig:
        out += [
            ("cold title card over HTTP, @vercel/og 0.11.1 (Node `http`)", fig["vercel_og_http"]),
            ("title card in process, @vercel/og 0.11.1", fig["vercel_og_in_process"]),
        ]
    return out


#: Target: the cold request's time above the in-process render.
OVERHEAD_TARGET_MS = 1.0
#: Target: @vercel/og's time over ogshot's for the same card, in process and over HTTP.
RATIO_TARGET = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="timed requests on each side")
    parser.add_argument("--vercel-modules", help="folder with @vercel/og installed by npm")
    args = parser.parse_args()
    fig = measure(args.n, vercel_modules(args.vercel_modules))
    for label, row in rows(fig):
        print(f"{label:<62} {row['median_ms']:7.2f} ms (p95 {row['p95_ms']:.2f})")
    verdict = "PASS" if fig["overhead_ms"] <= OVERHEAD_TARGET_MS else "FAIL"
    print(
        f"ogshot's cold overhead above its in-process render: {fig['overhead_ms']:.2f} ms "
        f"(target <= {OVERHEAD_TARGET_MS:g} ms: {verdict})"
    )
    if "own_path_ms" in fig:
        print(
            f"each server above the render it did itself: ogshot serve "
            f"{fig['served_overhead_ms']:.2f} ms; the floor (a bare ASGI app under ogshot "
            f"serve's HTTP stack doing the same render on a thread) "
            f"{fig['floor_overhead_ms']:.2f} ms; so ogshot's own request path: "
            f"{fig['own_path_ms']:.2f} ms"
        )
    if "ratio_http" in fig:
        print(
            f"@vercel/og / ogshot: {fig['ratio_http']:.2f}x over HTTP, "
            f"{fig['ratio_in_process']:.2f}x in process "
            f"(@vercel/og's own HTTP overhead {fig['vercel_og_overhead_ms']:.2f} ms)"
        )
        for what, key in (
            ("title card in process", "ratio_in_process"),
            ("cold title card over HTTP", "ratio_http"),
        ):
            verdict = "PASS" if fig[key] >= RATIO_TARGET else "FAIL"
            print(
                f"{what}, @vercel/og time / ogshot time: {fig[key]:.2f}x "
                f"(target >= {RATIO_TARGET:g}x: {verdict})"
            )
    else:
        print(f"@vercel/og skipped: {fig['vercel_og']['skipped']}")
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
