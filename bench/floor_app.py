"""The floor under a cold card over HTTP: what ``ogshot serve``'s HTTP stack costs by itself.

    python -m bench.floor_app PORT

A bare ASGI app under the same server as ``ogshot serve`` (uvicorn, ogshot's own connection
protocol, one process, the access log off): ``GET /og.png?title=...`` hands ogshot's own render
and PNG (``make_card_bytes``) of that card to one render thread (of the render threads' priority),
hashes the bytes there for the ETag as ogshot does (``etag_for``), and answers them with a
handful of headers, ``X-Render-Ms`` (the render and PNG, timed on that thread) among them.
Nothing else: no validation, key, cache, budget, coalescing, metrics or log line.
``bench_cold`` measures it beside ``ogshot serve``: the difference between the two is what
ogshot's own request path costs.
"""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

from ogshot.card import Card
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry, builtin_dir
from ogshot.service import etag_for, make_card_bytes
from ogshot.workers import lower_thread_priority, tune_allocator

Scope = dict[str, Any]


def make_app() -> Any:
    tune_allocator()
    registry = LayoutRegistry.load(builtin_dir())
    fonts = FontSet.default()
    executor = ThreadPoolExecutor(max_workers=1, initializer=lower_thread_priority)

    def render(params: dict[str, str]) -> tuple[bytes, str, float]:
        t0 = time.perf_counter()
        card = Card(**params)
        body = make_card_bytes(card, registry, fonts)
        took = time.perf_counter() - t0
        return body, etag_for(body), took

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"] != "/og.png":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        params = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        loop = asyncio.get_running_loop()
        body, etag, took = await loop.run_in_executor(executor, render, params)
        headers = [
            (b"etag", etag.encode()),
            (b"cache-control", b"public, max-age=86400"),
            (b"content-type", b"image/png"),
            (b"content-length", str(len(body)).encode()),
            (b"x-ogshot-cache", b"miss"),
            (b"x-render-ms", f"{took * 1000:.3f}".encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    import uvicorn

    from ogshot.cli import serve_protocol
    from ogshot.settings import Settings

    uvicorn.run(
        make_app(),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        http=serve_protocol(Settings(_env_file=None)),  # type: ignore[call-arg]
    )


if __name__ == "__main__":
    main()
