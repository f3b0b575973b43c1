"""Local Chromium captures: ogshot's warm provider against a naive Playwright capture.

    python -m bench.bench_chromium [--quick] [--json out.json]

The page is served on loopback: HTML, a stylesheet and a 1200×630 photograph-like JPEG. Both sides
use the same system Chromium with the same flags, each in its own browser, and run alternately so
that the machine's load falls on both alike.

- naive: what a first attempt does on a warm browser: new context, ``goto`` (waits for ``load``),
  PNG screenshot through Playwright, close the context. No guard.
- ogshot: :class:`~ogshot.capture.chromium.ChromiumCapture` (context made ahead of time,
  ``domcontentloaded`` plus a capped settle, screenshot straight from DevTools), with every
  connection through the egress guard.

Then captures per second at concurrency 1, 2 and 4, and resident memory of the browser (all its
processes), the Playwright driver and this Python process.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import io
import json
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from ogshot.capture import CaptureRequest
from ogshot.capture.chromium import ChromiumCapture, command_lines, find_chromium, tree_rss
from ogshot.settings import Settings

from .common import synthetic_capture

TARGET = 0.6  # ogshot's capture time over the naive one, at most

_HTML = """<!doctype html><html><head><meta charset="utf-8"><title>Bench page</title>
<meta property="og:title" content="A page to capture"><link rel="stylesheet" href="/site.css">
</head><body><header>ogshot bench</header><main><h1>A page to capture</h1>
<img src="/hero.jpg" width="1120" height="346" alt="">
<p>{text}</p></main></body></html>""".format(text="Lorem ipsum dolor sit amet. " * 60)

#: The same page under a consent banner, with an ad slot and an ad script.
_CLUTTERED = _HTML.replace(
    "</main>",
    '<ins class="adsbygoogle" style="display:block;height:250px;background:#0c0"></ins>'
    '<script async src="/pagead/js/adsbygoogle.js"></script></main>'
    '<div id="onetrust-banner-sdk" style="position:fixed;bottom:0;left:0;right:0;height:40%;'
    'background:#c00;color:#fff">We value your privacy.</div>',
)

_CSS = """body{margin:0;font:18px/1.5 sans-serif;background:#fafafc;color:#333}
header{background:#182038;color:#fff;padding:20px 40px}main{padding:0 40px}"""


def _hero() -> bytes:
    out = io.BytesIO()
    synthetic_capture(3).crop((40, 96, 1160, 442)).save(out, "JPEG", quality=85)
    return out.getvalue()


class _Pages(http.server.ThreadingHTTPServer):
    daemon_threads = True


def serve() -> tuple[_Pages, str]:
    files = {
        "/": (_HTML.encode(), "text/html; charset=utf-8"),
        "/site.css": (_CSS.encode(), "text/css"),
        "/hero.jpg": (_hero(), "image/jpeg"),
        "/cluttered": (_CLUTTERED.encode(), "text/html; charset=utf-8"),
        "/pagead/js/adsbygoogle.js": (b"/* ad */", "text/javascript"),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body, ctype = files.get(self.path.split("?")[0], (b"", "text/plain"))
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = _Pages(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _rss_self() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _driver_rss() -> int:
    """Playwright's driver (a Node process) and nothing under it but itself."""
    page = os.sysconf("SC_PAGE_SIZE")
    return sum(
        int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        for pid, line in command_lines()
        if b"playwright" in line and b"run-driver" in line
    )


async def measure(n: int, throughput_captures: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    server, origin = serve()
    url = origin + "/"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, capture="chromium", private_allowlist=origin
    )
    fig: dict[str, Any] = {}
    provider = ChromiumCapture(settings)
    # The same provider waiting for "load": what the default wait is chosen against.
    on_load = ChromiumCapture(settings.model_copy(update={"chromium_wait": "load"}))
    async with async_playwright() as pw:
        naive_browser = await pw.chromium.launch(
            executable_path=find_chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )

        async def naive() -> bytes:
            ctx = await naive_browser.new_context(viewport={"width": 1200, "height": 630})
            page = await ctx.new_page()
            await page.goto(url)
            png = await page.screenshot(type="png")
            await ctx.close()
            return png

        async def warm() -> bytes:
            shot = await provider.capture(CaptureRequest(url, width=1200, height=630))
            return shot.body

        async def warm_load() -> bytes:
            shot = await on_load.capture(CaptureRequest(url, width=1200, height=630))
            return shot.body

        await provider.start()
        await on_load.start()
        for _ in range(3):
            await naive()
            await warm()
            await warm_load()
        times: dict[str, list[float]] = {"naive": [], "ogshot": [], "ogshot_load": []}
        for _ in range(n):
            for name, fn in (("naive", naive), ("ogshot", warm), ("ogshot_load", warm_load)):
                t = time.perf_counter()
                await fn()
                times[name].append(time.perf_counter() - t)
                await asyncio.sleep(0.05)  # a moment between captures, as requests arrive
        await naive_browser.close()
        await on_load.aclose()
    for name, ts in times.items():
        fig[name] = {"median_ms": statistics.median(ts) * 1000, "p90_ms": _p90(ts) * 1000}
    fig["ratio"] = fig["ogshot"]["median_ms"] / fig["naive"]["median_ms"]
    fig["rss_mb"] = {
        "browser": tree_rss(provider.browser_pid or 0) / 2**20,
        "driver": _driver_rss() / 2**20,
        "service": _rss_self() / 2**20,
    }
    await provider.aclose()

    fig["per_second"] = {}
    for conc in (1, 2, 4):
        s = settings.model_copy(
            update={"chromium_concurrency": conc, "chromium_queue_timeout": 300}
        )
        p = ChromiumCapture(s)
        await p.start()
        await asyncio.gather(*(p.capture(CaptureRequest(f"{url}?w={i}")) for i in range(conc)))
        t = time.perf_counter()
        await asyncio.gather(
            *(p.capture(CaptureRequest(f"{url}?i={i}")) for i in range(throughput_captures))
        )
        fig["per_second"][conc] = throughput_captures / (time.perf_counter() - t)
        if conc == 4:
            fig["rss_mb"]["browser_at_4"] = tree_rss(p.browser_pid or 0) / 2**20
        await p.aclose()
    fig["blocking"] = await _blocking(settings, origin + "/cluttered", n)
    server.shutdown()
    return fig


async def _blocking(settings: Settings, url: str, n: int) -> dict[str, Any]:
    """Capture time on a cluttered page with and without OGSHOT_CHROMIUM_BLOCK, and what it
    left out."""
    plain = ChromiumCapture(settings)
    blocking = ChromiumCapture(settings.model_copy(update={"chromium_block": True}))
    await plain.start()
    await blocking.start()
    times: dict[str, list[float]] = {"off": [], "on": []}
    for i in range(n + 2):
        for name, p in (("off", plain), ("on", blocking)):
            t = time.perf_counter()
            await p.capture(CaptureRequest(f"{url}?i={i}", width=1200, height=630))
            if i >= 2:
                times[name].append(time.perf_counter() - t)
    out: dict[str, Any] = {k: statistics.median(v) * 1000 for k, v in times.items()}
    out["requests_left_out"] = blocking.blocked.requests / (n + 2)
    out["selectors_hidden"] = blocking.blocked.selectors / (n + 2)
    await plain.aclose()
    await blocking.aclose()
    return out


def _p90(ts: list[float]) -> float:
    return sorted(ts)[max(0, int(len(ts) * 0.9) - 1)]


def table(fig: dict[str, Any]) -> str:
    lines = [
        "| local capture (1200×630, loopback page) | median ms | p90 ms |",
        "|---|---:|---:|",
        f"| naive Playwright (new context, goto, PNG) | {fig['naive']['median_ms']:.0f} "
        f"| {fig['naive']['p90_ms']:.0f} |",
        f"| ogshot ChromiumCapture (guarded) | {fig['ogshot']['median_ms']:.0f} "
        f"| {fig['ogshot']['p90_ms']:.0f} |",
        f"| ogshot, waiting for `load` instead | {fig['ogshot_load']['median_ms']:.0f} "
        f"| {fig['ogshot_load']['p90_ms']:.0f} |",
        f"| ratio ogshot / naive (target ≤ {TARGET}) | {fig['ratio']:.2f}× | |",
        "",
        "| concurrency | captures/s |",
        "|---:|---:|",
    ]
    lines += [f"| {c} | {v:.1f} |" for c, v in fig["per_second"].items()]
    b = fig["blocking"]
    lines += [
        "",
        f"Blocking (cluttered page): {b['off']:.0f} ms off, {b['on']:.0f} ms on; per capture "
        f"{b['requests_left_out']:.0f} request(s) left out, {b['selectors_hidden']:.0f} "
        "hiding selectors.",
    ]
    rss = fig["rss_mb"]
    lines += [
        "",
        f"Memory (PSS): browser {rss['browser']:.0f} MB (all its processes; "
        f"{rss['browser_at_4']:.0f} MB at concurrency 4), "
        f"Playwright driver {rss['driver']:.0f} MB, "
        f"service process {rss['service']:.0f} MB.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    n, captures = (8, 12) if args.quick else (25, 40)
    fig = asyncio.run(measure(n, captures))
    print(table(fig))
    print(json.dumps(fig, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2))


if __name__ == "__main__":
    main()
