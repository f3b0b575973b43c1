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
import math
import os
import resource
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.metrics import MetricWrapperBase

from . import logs

if TYPE_CHECKING:
    from .cache import Entry


#: Seconds between two samples of the state gauges in each process.
SAMPLE_SECONDS = 2.0

_DURATIONS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: The request duration histogram's bucket bounds, as prometheus_client adds the last one.
_BOUNDS = (*_DURATIONS, math.inf)


class _HandOver:
    """Registered before every instrument: reading the registry begins with a hand-over."""

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        FIGURES.flush()
        return []


# Before any instrument, so that it is collected first (see RequestFigures).
REGISTRY.register(_HandOver())

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


class RequestFigures:
    """Every request's figures, kept as plain numbers and handed to ``prometheus_client`` in
    batches.

    Counted one by one, a cache hit's figures (its request, duration, card source, cache
    lookup, and the requests in progress) are seven locked increments: more time than the rest
    of the hit; a card made adds four timed steps (spans) while its crawler waits. Here they are
    a few dict entries, handed to the instruments:

    - when the registry of this process is read (a scrape, or ``OGSHOT_METRICS_PORT``'s
      server): :data:`REGISTRY` collects :class:`_HandOver` before any instrument;
    - at each :func:`sample` (every :data:`SAMPLE_SECONDS`, and before every scrape);
    - in multiprocess mode, where other processes read the shared files, also once per turn
      of the event loop in which figures were added (a callback), so that a scrape answered
      by another worker counts every request answered before it began.

    ``in_progress`` (the front layer counts requests in and out) is set on its gauge at each
    hand-over. Figures added outside an event loop in multiprocess mode go straight in.
    """

    def __init__(self, shared: bool) -> None:
        #: Requests being answered now.
        self.in_progress = 0
        self._shared = shared
        #: Scrapes may run on another thread (the metrics port's server).
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, int, str | None], int] = {}
        #: Per route: the count in each duration bucket, then the sum of the durations.
        self._durations: dict[str, list[float]] = {}
        self._lookups: dict[tuple[str, str, str], int] = {}
        #: Per step of making a card: as ``_durations``.
        self._spans: dict[str, list[float]] = {}
        self._scheduled = False

    def request_done(self, route: str, status: int, seconds: float, cache: str | None) -> None:
        key = (route, status, cache)
        with self._lock:
            requests = self._requests
            requests[key] = requests.get(key, 0) + 1
            _observe(self._durations, route, seconds)
        if self._shared and not self._scheduled:
            self._schedule()

    def spans_done(self, spans: list[tuple[str, float]]) -> None:
        """Steps of making a card took these times (render threads add these too)."""
        with self._lock:
            for name, seconds in spans:
                _observe(self._spans, name, seconds)
        if self._shared and not self._scheduled:
            self._schedule()

    def cache_read(self, tier: str, kind: str, outcome: str) -> None:
        labels = (tier, kind, outcome)
        with self._lock:
            self._lookups[labels] = self._lookups.get(labels, 0) + 1
        if self._shared and not self._scheduled:
            self._schedule()

    def _schedule(self) -> None:
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # no event loop in this thread: nothing would run a callback
            self.flush()
            return
        self._scheduled = True

    def flush(self) -> None:
        """Hand every figure kept so far to the instruments."""
        with self._lock:
            self._scheduled = False
            requests, self._requests = self._requests, {}
            durations, self._durations = self._durations, {}
            lookups, self._lookups = self._lookups, {}
            spans, self._spans = self._spans, {}
        REQUESTS_IN_PROGRESS.set(self.in_progress)
        for labels, n in lookups.items():
            _child(CACHE_LOOKUPS, *labels).inc(n)
        cards: dict[str, int] = {}
        for (route, status, cache), n in requests.items():
            _child(REQUESTS, route, str(status)).inc(n)
            if cache:
                cards[cache] = cards.get(cache, 0) + n
        for cache, n in cards.items():
            _child(CARDS, cache).inc(n)
        for route, per_bucket in durations.items():
            add_observations(_child(REQUEST_DURATION, route), per_bucket[:-1], per_bucket[-1])
        for name, per_bucket in spans.items():
            add_observations(_child(SPAN_DURATION, name), per_bucket[:-1], per_bucket[-1])


def _observe(table: dict[str, list[float]], name: str, seconds: float) -> None:
    """One duration into ``table[name]``: the count in each bucket of ``_BOUNDS``, then the sum."""
    per_bucket = table.get(name)
    if per_bucket is None:
        per_bucket = table[name] = [0] * (len(_BOUNDS) + 1)
    per_bucket[bisect_left(_BOUNDS, seconds)] += 1
    per_bucket[-1] += seconds


def add_observations(histogram: Histogram, per_bucket: list[float], total: float) -> None:
    """What ``histogram.observe(v)`` for many values does: ``per_bucket[i]`` of them fell in
    the ``i``-th bucket (the first bound not below them), and they add up to ``total``.

    Reaches into the histogram's buckets and sum (``prometheus_client`` has no call for many
    observations at once); a test holds the result to what ``observe`` gives.
    """
    buckets = histogram._buckets
    for i, n in enumerate(per_bucket):
        if n:
            buckets[i].inc(n)
    histogram._sum.inc(total)


#: The one tally of this process. Multiprocess mode is prometheus_client's own choice, made when
#: it was imported (see the module docstring).
FIGURES = RequestFigures(shared=values.ValueClass is not values.MutexValue)


def request_done(route: str, status: int, seconds: float, cache: str | None) -> None:
    """A request was answered: its route template, status, duration and card source."""
    FIGURES.request_done(route, status, seconds, cache)


def request_paced() -> None:
    PACED_REQUESTS.inc()


def cache_read(tier: str, key: str, entry: Entry | None, now: float) -> None:
    """One read of one cache tier, and what it found."""
    kind = "capture" if key.startswith("capture-") else "card"
    outcome = "miss" if entry is None else "hit" if entry.fresh(now) else "stale"
    FIGURES.cache_read(tier, kind, outcome)


def coalesced_wait(where: str, outcome: str = "found") -> None:
    COALESCED_WAITS.labels(where, outcome).inc()


def capture_error(reason: str) -> None:
    CAPTURE_ERRORS.labels(reason).inc()


def observe_span(name: str, seconds: float) -> None:
    """A step of making a card took this long: into its histogram and the request's log line."""
    spans_done([(name, seconds)], logs.current())


@contextlib.contextmanager
def span(name: str) -> Iterator[None]:
    """Time a step of making a card (see :func:`observe_span`)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        observe_span(name, time.perf_counter() - start)


def spans_done(spans: list[tuple[str, float]], ctx: dict[str, Any] | None) -> None:
    """Steps of making a card, noted together: into their histograms (under one lock) and, when
    the request's log fields are given, its line."""
    FIGURES.spans_done(spans)
    if ctx is not None:
        for name, seconds in spans:
            ctx[name + "_ms"] = round(seconds * 1000, 2)


# --- Sampled state --------------------------------------------------------------------------------


def resident_memory() -> int:
    """This process's resident set size in bytes (the peak, where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def sample(service: Any) -> None:
    """Set the state gauges from the service of this process, and hand over the requests'
    figures kept so far."""
    FIGURES.flush()
    RESIDENT_MEMORY.labels(str(os.getpid())).set(resident_memory())
    breaker = getattr(service.capture, "breaker", None)
    BREAKER_STATE.set(_BREAKER.get(breaker.state, 0) if breaker is not None else 0)
    CARDS_IN_PROGRESS.set(service.in_flight)
    CARDS_QUEUED.set(service.queued)
    RENDER_QUEUE.set(service._executor.queued())


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
