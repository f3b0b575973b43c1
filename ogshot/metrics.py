"""Prometheus instruments, and their exposition.

Every instrument lives here, at module level, as ``prometheus_client`` expects; the rest of the
package reports through the small functions below (one call per event), so that a reader of the
service sees what is measured without reading how.

Several worker processes (``ogshot serve --workers N``) share one picture through
``prometheus_client``'s multiprocess mode: each process writes its values to memory-mapped files in
``OGSHOT_METRICS_DIR`` (which ``ogshot serve`` makes, empties at start and hands to the library as
``PROMETHEUS_MULTIPROC_DIR`` before any worker starts: the library picks its storage when it is
imported), and a scrape, answered by any one process,
reads and sums all of them. Counters and histograms add up across workers; gauges say how they
combine (``livesum``: the live processes' sum; ``livemax``; ``liveall``: one series per process).

Gauges that describe a state rather than count events (memory, breaker, work waiting) are sampled
by each process every :data:`SAMPLE_SECONDS` and just before it answers a scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
from collections.abc import Callable, Iterator
from contextvars import copy_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics import MetricWrapperBase

from . import logs

if TYPE_CHECKING:
    from .cache import Entry

P = ParamSpec("P")
R = TypeVar("R")

#: Seconds between two samples of the state gauges in each process.
SAMPLE_SECONDS = 2.0

_DURATIONS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "ogshot_requests", "HTTP requests answered, by route and status.", ["route", "status"]
)
REQUEST_DURATION = Histogram(
    "ogshot_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route.",
    ["route"],
    buckets=_DURATIONS,
)
REQUESTS_IN_PROGRESS = Gauge(
    "ogshot_requests_in_progress", "HTTP requests being answered.", multiprocess_mode="livesum"
)
SPAN_DURATION = Histogram(
    "ogshot_span_duration_seconds",
    "Time spent in each step of making a card: queue (waiting for a turn among the cards being "
    "made), capture (the provider's call), thread (waiting for a render thread), render "
    "(drawing), encode (PNG/JPEG/WebP bytes).",
    ["span"],
    buckets=_DURATIONS,
)
CARDS = Counter(
    "ogshot_cards",
    "Cards answered, by how: hit, stale, miss (made for this request), coalesced (made for "
    "another request while this one waited).",
    ["source"],
)
CACHE_LOOKUPS = Counter(
    "ogshot_cache_lookups",
    "Cache reads by tier (memory, disk, redis), kind (card, capture) and outcome (hit, stale, "
    "miss).",
    ["tier", "kind", "outcome"],
)
COALESCED_WAITS = Counter(
    "ogshot_coalesced_waits",
    "Requests that waited for a card another request was making: in this process (task) or in "
    "another worker or replica (lock; outcome found or gave_up).",
    ["where", "outcome"],
)
CAPTURE_ERRORS = Counter(
    "ogshot_capture_errors", "Captures that failed, by reason (see the README).", ["reason"]
)
PACED_REQUESTS = Counter(
    "ogshot_paced_requests",
    "Requests read only after a pause because their client, just refused (429/503), asked again "
    "before its Retry-After (OGSHOT_REFUSAL_PAUSE).",
)
BREAKER_STATE = Gauge(
    "ogshot_upstream_breaker_state",
    "The upstream circuit breaker: 0 closed, 1 half-open, 2 open (the worst of the workers).",
    multiprocess_mode="livemax",
)
CARDS_IN_PROGRESS = Gauge(
    "ogshot_cards_in_progress",
    "Cards being made (captured and rendered) right now.",
    multiprocess_mode="livesum",
)
CARDS_QUEUED = Gauge(
    "ogshot_cards_queued",
    "Cards waiting for a turn to be made (past OGSHOT_RENDER_QUEUE, requests get 503).",
    multiprocess_mode="livesum",
)
RENDER_QUEUE = Gauge(
    "ogshot_render_queue",
    "Renders waiting for a free render thread.",
    multiprocess_mode="livesum",
)
RESIDENT_MEMORY = Gauge(
    "ogshot_process_resident_memory_bytes",
    "Resident memory of each serving process.",
    ["pid"],
    multiprocess_mode="liveall",
)

_BREAKER = {"closed": 0, "half_open": 1, "open": 2}


# --- Reporting ------------------------------------------------------------------------------------


_Metric = TypeVar("_Metric", bound=MetricWrapperBase)
#: Labelled children by metric and label values. ``labels()`` checks and joins the values and
#: takes a lock on every call, four times per request; the values come from small fixed sets
#: (routes, statuses, tiers, steps), so the children are kept, within a bound.
_CHILDREN: dict[tuple[int, tuple[str, ...]], MetricWrapperBase] = {}
_CHILDREN_KEPT = 4096


def _child(metric: _Metric, *values: str) -> _Metric:
    key = (id(metric), values)
    found = _CHILDREN.get(key)
    if found is None:
        if len(_CHILDREN) >= _CHILDREN_KEPT:
            _CHILDREN.clear()
        found = _CHILDREN[key] = metric.labels(*values)
    return found  # type: ignore[return-value]


def request_done(route: str, status: int, seconds: float, cache: str | None) -> None:
    _child(REQUESTS, route, str(status)).inc()
    _child(REQUEST_DURATION, route).observe(seconds)
    if cache:
        _child(CARDS, cache).inc()


def request_paced() -> None:
    PACED_REQUESTS.inc()


def cache_read(tier: str, key: str, entry: Entry | None, now: float) -> None:
    """One read of one cache tier, and what it found."""
    kind = "capture" if key.startswith("capture-") else "card"
    outcome = "miss" if entry is None else "hit" if entry.fresh(now) else "stale"
    _child(CACHE_LOOKUPS, tier, kind, outcome).inc()


def coalesced_wait(where: str, outcome: str = "found") -> None:
    COALESCED_WAITS.labels(where, outcome).inc()


def capture_error(reason: str) -> None:
    CAPTURE_ERRORS.labels(reason).inc()


def observe_span(name: str, seconds: float) -> None:
    """A step of making a card took this long: into its histogram and the request's log line."""
    _child(SPAN_DURATION, name).observe(seconds)
    logs.note_span(name, seconds)


@contextlib.contextmanager
def span(name: str) -> Iterator[None]:
    """Time a step of making a card (see :func:`observe_span`)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        observe_span(name, time.perf_counter() - start)


def queued(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` for an executor: the time it waits for a thread counts as the ``thread`` span, and
    it runs in the caller's context (so its spans reach the caller's request log line)."""
    submitted = time.perf_counter()
    context = copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        def inner() -> R:
            observe_span("thread", time.perf_counter() - submitted)
            return fn(*args, **kwargs)

        return context.run(inner)

    return run


# --- Sampled state --------------------------------------------------------------------------------


def resident_memory() -> int:
    """This process's resident set size in bytes (the peak, where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def sample(service: Any) -> None:
    """Set the state gauges from the service of this process."""
    RESIDENT_MEMORY.labels(str(os.getpid())).set(resident_memory())
    breaker = getattr(service.capture, "breaker", None)
    BREAKER_STATE.set(_BREAKER.get(breaker.state, 0) if breaker is not None else 0)
    CARDS_IN_PROGRESS.set(service.in_flight)
    CARDS_QUEUED.set(service.queued)
    queue = getattr(service._executor, "_work_queue", None)
    RENDER_QUEUE.set(queue.qsize() if queue is not None else 0)


async def sample_forever(service: Any) -> None:
    """Keep the gauges current, for the scrapes that another worker answers."""
    while True:
        sample(service)
        await asyncio.sleep(SAMPLE_SECONDS)


# --- Exposition -----------------------------------------------------------------------------------


def registry(folder: str) -> CollectorRegistry:
    """What a scrape reads: every process's files in ``folder`` (``OGSHOT_METRICS_DIR``) in
    multiprocess mode, else this process's own registry."""
    if folder:
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=folder)  # type: ignore[no-untyped-call]
        return merged
    return REGISTRY


def exposition(folder: str) -> tuple[bytes, str]:
    """The text format of every metric, and its media type."""
    return generate_latest(registry(folder)), CONTENT_TYPE_LATEST


def process_exited(folder: str) -> None:
    """Drop this process's live gauges from the shared picture (multiprocess mode only)."""
    if folder:
        multiprocess.mark_process_dead(os.getpid(), path=folder)  # type: ignore[no-untyped-call]


def prepare_dir(path: Path) -> None:
    """Make the multiprocess folder, emptied of a previous run's files (their counts would be
    added to this run's, and their dead processes' gauges kept)."""
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.db"):
        old.unlink(missing_ok=True)
