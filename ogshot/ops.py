"""Running it: probes, metrics, the per-request observer and the process's lifetime.

- ``GET|HEAD /healthz``: liveness, the process answers.
- ``GET|HEAD /readyz``: readiness, the capture provider is usable and Redis (when configured)
  answers within :data:`READY_TIMEOUT` seconds, even when it hangs; 503 otherwise.
- ``GET|HEAD /metrics``: Prometheus text format, every worker's figures (see ``metrics.py``); on
  its own port instead when ``OGSHOT_METRICS_PORT`` is set.

All three answer ``Cache-Control: no-store``: a CDN must never keep a probe's answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from . import logs, metrics
from .settings import Settings

log = logging.getLogger("ogshot")

#: Seconds a readiness check waits for Redis before calling it not ready.
READY_TIMEOUT = 1.0

NO_STORE = {"Cache-Control": "no-store"}

probes = APIRouter()
metrics_router = APIRouter()


async def healthz() -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


async def readyz(request: Request) -> JSONResponse:
    """Readiness: the capture provider is usable, and Redis answers when it is configured."""
    service = request.app.state.service
    checks: dict[str, str] = {}
    problems: list[str] = []

    provider = service.capture
    ready = getattr(provider, "ready", None)
    if ready is None:
        checks["capture"] = provider.name
    else:
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await ready()
            checks["capture"] = provider.name
        except Exception as exc:
            checks["capture"] = "unusable"
            problems.append(f"the {provider.name} capture provider is not usable ({exc!r})")
    breaker = getattr(provider, "breaker", None)
    if breaker is not None:
        # Informative only: cards still render (as fallbacks) while the upstream is failing, so a
        # replica is not taken out of rotation for it.
        checks["upstream_breaker"] = breaker.state

    for tier in service.cache.tiers:
        ping = getattr(tier, "ping", None)
        if ping is None:
            continue
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await ping()
            checks["redis"] = "ok"
        except TimeoutError:
            checks["redis"] = "timeout"
            problems.append(f"Redis did not answer within {READY_TIMEOUT:g} s")
        except Exception as exc:
            checks["redis"] = "error"
            problems.append(f"Redis failed: {type(exc).__name__}")

    if problems:
        body: dict[str, Any] = {"error": "not_ready", "detail": "; ".join(problems)}
        return JSONResponse({**body, "checks": checks}, status_code=503, headers=NO_STORE)
    return JSONResponse({"status": "ready", "checks": checks}, headers=NO_STORE)


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus metrics, summed over every worker process."""
    settings: Settings = request.app.state.settings
    metrics.sample(request.app.state.service)
    body, media_type = await asyncio.to_thread(metrics.exposition, settings.metrics_dir)
    return Response(body, media_type=media_type, headers=NO_STORE)


# HEAD comes with every GET route (ogshot.front.Front).
probes.add_api_route("/healthz", healthz, methods=["GET"])
probes.add_api_route("/readyz", readyz, methods=["GET"])
metrics_router.add_api_route(
    "/metrics", metrics_endpoint, methods=["GET"], response_class=Response
)


@asynccontextmanager
async def running(settings: Settings, service: Any) -> AsyncIterator[None]:
    """The serving process's lifetime around the service: gauges sampled while it runs; at the
    end, background refreshes finished (bounded by ``OGSHOT_SHUTDOWN_TIMEOUT``) before the
    service closes its browser, clients and pools, and this process leaves the metrics."""
    sampler = asyncio.create_task(metrics.sample_forever(service), name="ogshot-metrics")
    try:
        yield
    finally:
        sampler.cancel()
        with suppress(asyncio.CancelledError):
            await sampler
        pending = [t for t in service._inflight.values() if not t.done()]
        if pending:
            log.info("shutdown: finishing %d card(s) in progress", len(pending))
            await asyncio.wait(pending, timeout=settings.shutdown_timeout)
        metrics.FIGURES.flush()
        metrics.process_exited(settings.metrics_dir)


#: Routes polled by machines: their lines are debug-level, so that probes do not flood the log.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


def access_fields(ctx: dict[str, Any]) -> dict[str, Any]:
    """A request's context as the access log record's fields (absent ones left out)."""
    return {k: v for k, v in ctx.items() if v is not None}


class RouteNote:
    """Innermost middleware: notes the route the router matched, for the front layer's metrics
    and log line (``front.py``; the layers between them may hand the router a copy of the
    scope)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http" and scope.get("route") is not None:
                logs.note(route=route_of(scope))


def route_of(scope: Scope) -> str:
    """The matched route's path template (a bounded label), or ``unmatched``.

    The router leaves the route in the scope; the front layer answers cards before routing, and
    only ever for ``/og.png``.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "/og.png" if scope["path"] == "/og.png" else "unmatched"
