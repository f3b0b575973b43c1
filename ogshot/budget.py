"""Admission of work that misses the cache: a per-client budget, then a bounded gate.

Every card that has to be made (a capture, a render) passes :meth:`Admission.slot` first:

1. the client's budget (``OGSHOT_RATE_LIMIT``, counted with the ``limits`` package; in memory,
   or in Redis when ``OGSHOT_REDIS_URL`` is set, so replicas share one budget per client). Over
   it → 429 ``rate_limited`` with ``Retry-After``;
2. the gate: at most ``OGSHOT_RENDER_CONCURRENCY`` cards made at once and at most
   ``OGSHOT_RENDER_QUEUE`` waiting for a turn. Both full → 503 ``overloaded`` with
   ``Retry-After``, at once.

Cache hits never come here, so they are never limited and never queue. A slot is re-entrant
within one task tree (a card's capture runs inside the card's slot), and the client is the one
:data:`ogshot.clients.CLIENT` names for the request that started the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable
from contextvars import ContextVar
from typing import Any, TypeVar

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from .clients import CLIENT, budget_key
from .errors import ConfigError, Overloaded, RateLimited
from .pacing import RefusedClients
from .settings import Settings

log = logging.getLogger("ogshot")

#: Set inside a slot, so that work started from there (a card's capture) is not charged twice.
_ADMITTED: ContextVar[bool] = ContextVar("ogshot_admitted", default=False)
T = TypeVar("T")
#: Longest the budget's store may take before the request goes on without it (fail open).
STORE_TIMEOUT = 0.25


class SweptMemoryStorage(MemoryStorage):
    """limits' in-memory store, walking its clients for expired counts at most once a second.

    limits starts that walk (a task that visits every client key it holds) on every count: with
    many clients in the window, every card made pays for a walk over all of them. Each read
    already drops its own key once expired, so the walk only gives memory back, and once a
    second keeps the store as bounded (keys live two windows, plus at most that second).
    """

    #: Seconds between walks.
    SWEEP_EVERY = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.swept = float("-inf")

    # limits' own hook, by its name-mangled name: every count calls it.
    async def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now - self.swept < self.SWEEP_EVERY:
            return
        self.swept = now
        await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]


class Budget:
    """A per-client rate limit; ``None`` rate means no limit."""

    def __init__(self, rate: str, redis_url: str = "") -> None:
        self.item: RateLimitItem | None = None
        if rate.strip().lower() in ("", "0", "off", "none"):
            self.storage: Storage | None = None
            self.limiter: SlidingWindowCounterRateLimiter | None = None
            return
        try:
            self.item = parse(rate)
        except ValueError:
            raise ConfigError(
                f"OGSHOT_RATE_LIMIT: '{rate}' is not a rate such as '600/minute' or '20/second'"
            ) from None
        if redis_url:
            scheme, sep, rest = redis_url.partition("://")
            self.storage = RedisStorage(
                f"async+{scheme}{sep}{rest}", implementation="redispy", key_prefix="ogshot-budget"
            )
        else:
            self.storage = SweptMemoryStorage()
        self.limiter = SlidingWindowCounterRateLimiter(self.storage)

    @property
    def enabled(self) -> bool:
        return self.limiter is not None

    async def aclose(self) -> None:
        """Close the shared store's connections (a Redis client), if there are any."""
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()

    async def charge(self, client: str) -> None:
        """Count one unit of work for ``client``; raise RateLimited when over the budget."""
        if self.limiter is None or self.item is None:
            return
        key = budget_key(client)
        try:
            allowed = await self._bounded(self.limiter.hit(self.item, key))
            if allowed:
                return
            stats = await self._bounded(self.limiter.get_window_stats(self.item, key))
        except Exception as exc:  # a budget store that is down must not take the cards with it
            log.warning("rate-limit store unavailable, not counting: %r", exc)
            return
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        raise self.refusal(min(wait, self.item.get_expiry()))

    def _bounded(self, step: Awaitable[T]) -> Awaitable[T]:
        """A step of the store, bounded by STORE_TIMEOUT when the store is across a network.

        The in-memory store never waits on anything: the timeout's task and timer would only
        add about a tenth of a millisecond to every card made while the crawler waits.
        """
        if isinstance(self.storage, MemoryStorage):
            return step
        return asyncio.wait_for(step, STORE_TIMEOUT)

    def refusal(self, retry_after: int) -> RateLimited:
        """The 429 of a client over its budget, to come back in ``retry_after`` seconds."""
        return RateLimited(
            f"too many new cards from this client (limit {self.item}); cached cards still answer",
            retry_after=retry_after,
        )



class Gate:
    """At most ``limit`` holders at once, at most ``queue`` waiting; beyond, Overloaded at once."""

    def __init__(self, limit: int, queue: int) -> None:
        self.limit = limit
        self.queue = queue
        self.in_flight = 0
        self.queued = 0
        self._waiters: asyncio.Semaphore | None = None

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._waiters is None:
            self._waiters = asyncio.Semaphore(self.limit)
        sem = self._waiters
        if sem.locked():
            if self.queued >= self.queue:
                raise Overloaded(
                    f"the server is making {self.in_flight} cards and {self.queued} more wait; "
                    "try again shortly"
                )
            self.queued += 1
            try:
                await sem.acquire()
            finally:
                self.queued -= 1
        else:
            await sem.acquire()
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            sem.release()


class Admission:
    """The budget, then the gate: what every cache miss passes before any work.

    Every refusal is remembered in :attr:`refused` until its ``Retry-After`` (see pacing.py): a
    client refused for its budget has its next new cards refused from that memory, without a
    round trip to the rate-limit store, until the time it was given has passed.
    """

    def __init__(self, budget: Budget, gate: Gate, refused: RefusedClients | None = None) -> None:
        self.budget = budget
        self.gate = gate
        self.refused = refused if refused is not None else RefusedClients()

    @classmethod
    def from_settings(cls, settings: Settings, workers: int) -> Admission:
        # Cards being made wait on a capture (I/O) as often as they render (CPU): as many as
        # the upstream may serve at once, and never fewer than two per render worker.
        concurrency = settings.render_concurrency or max(settings.upstream_concurrency, 2 * workers)
        budget = Budget(settings.rate_limit, settings.redis_url.get_secret_value())
        return cls(budget, Gate(concurrency, settings.render_queue))

    async def aclose(self) -> None:
        await self.budget.aclose()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if _ADMITTED.get():
            yield
            return
        client = CLIENT.get()
        left = self.refused.budget_left(client)
        if left > 0:
            raise self.budget.refusal(max(1, math.ceil(left)))
        try:
            await self.budget.charge(client)
        except RateLimited as exc:
            self.refused.note(client, exc.retry_after or 1, budget=True)
            raise
        entered = False
        try:
            async with self.gate.slot():
                entered = True
                token = _ADMITTED.set(True)
                try:
                    yield
                finally:
                    _ADMITTED.reset(token)
        except Overloaded as exc:
            if not entered:
                self.refused.note(client, exc.retry_after or 1, budget=False)
            raise
