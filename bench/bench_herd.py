"""A herd: 200 identical requests for a card no cache holds, all at once.

    python -m bench.bench_herd [--requests 200]

They go through the whole app (ASGI, in process), for a card with a page capture; the capture
provider is a stand-in that counts its calls and answers after 50 ms with a synthetic page (a
real upstream lives on the internet). The service must capture once and render once; every
request gets the same 200 and the same bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import time
from typing import Any

import httpx

from ogshot.api import create_app
from ogshot.capture import Capture, CaptureRequest
from ogshot.service import CardService
from ogshot.settings import Settings

from .common import synthetic_capture


class CountingCapture:
    """A capture provider that counts its calls and answers after ``delay`` seconds."""

    name = "bench:counting"
    enabled = True

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self.calls = 0
        out = io.BytesIO()
        synthetic_capture(4).save(out, "PNG")
        self.body = out.getvalue()

    async def capture(self, request: CaptureRequest) -> Capture:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return Capture(self.body, "image/png")

    async def aclose(self) -> None:
        return None


async def _herd(requests: int) -> dict[str, Any]:
    settings = Settings(_env_file=None, capture="http")  # type: ignore[call-arg]
    provider = CountingCapture()
    service = CardService(settings, capture=provider)
    app = create_app(settings, service=service)
    query = {"title": "A herd of crawlers", "url": "https://example.com/herd"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            t0 = time.perf_counter()
            replies = await asyncio.gather(
                *(client.get("/og.png", params=query) for _ in range(requests))
            )
            elapsed = time.perf_counter() - t0
    statuses = sorted({r.status_code for r in replies})
    bodies = {r.content for r in replies}
    return {
        "requests": requests,
        "seconds": elapsed,
        "statuses": statuses,
        "distinct_bodies": len(bodies),
        "fallbacks": sum(1 for r in replies if "x-ogshot-fallback" in r.headers),
        "captures": provider.calls,
        "renders": service.renders,
    }


def figures(requests: int = 200) -> dict[str, Any]:
    """Captures and renders that ``requests`` identical cold requests cost."""
    log = logging.getLogger("ogshot")
    level = log.level
    log.setLevel(logging.ERROR)  # the start-up warning about an open capture server
    try:
        return asyncio.run(_herd(requests))
    finally:
        log.setLevel(level)


def holds(fig: dict[str, Any]) -> bool:
    """One capture, one render, and the same complete card for every request."""
    return bool(
        fig["captures"] == 1
        and fig["renders"] == 1
        and fig["statuses"] == [200]
        and fig["distinct_bodies"] == 1
        and fig["fallbacks"] == 0
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    fig = figures(args.requests)
    print(
        f"{fig['requests']} identical cold requests: {fig['captures']} capture(s), "
        f"{fig['renders']} render(s), statuses {fig['statuses']}, "
        f"{fig['distinct_bodies']} distinct body, in {fig['seconds']:.2f} s: "
        f"{'PASS' if holds(fig) else 'FAIL'}"
    )
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
