"""Admission of work that misses the cache: a per-client budget, then a bounded gate.

Every card that has to be made (a capture, a render) passes :meth:`Admission.slot` first:

1. the client's budget (``OGSHOT_RATE_LIMIT``, a sliding window counter: in this process's
   memory by :class:`ClientCounts`, or in Redis through the ``limits`` package when
   ``OGSHOT_REDIS_URL`` is set, so replicas share one budget per client). Over it → 429
   ``rate_limited`` with ``Retry-After``;
2. the gate: at most ``OGSHOT_RENDER_CONCURRENCY`` cards made at once and at most
   ``OGSHOT_RENDER_QUEUE`` waiting for a turn. Both full → 503 ``overloaded`` with
   ``Retry-After``, at once.

Cache hits never come here, so they are never limited and never queue. A slot is re-entrant
within one task tree (a card's capture runs inside the card's slot), and the client is the one
:data:`ogshot.clients.CLIENT` names for the request that started the work.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Callable
from contextvars import ContextVar, Token

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from .clients import CLIENT, budget_key
from .errors import ConfigError, Overloaded, RateLimited
from .pacing import RefusedClients
from .settings import Settings

log = logging.getLogger("ogshot")

#: Set inside a slot, so that work started from there (a card's capture) is not charged twice.
_ADMITTED: ContextVar[bool] = ContextVar("ogshot_admitted", default=False)
#: Longest the budget's store may take before the request goes on without it (fail open).
STORE_TIMEOUT = 0.25
#: Clients whose counts one process holds in memory at once (see :class:`ClientCounts`).
MAX_CLIENTS = 16384


class ClientCounts:
    """Each client's sliding-window count of cards made, kept by ogshot in this process's memory.

    The same sliding window counter as with Redis (``limits``' ``SlidingWindowCounterRateLimiter``):
    time is cut into windows of ``period`` seconds; a client's count is what it was allowed in the
    window before, weighted by the share of that window still inside the sliding one, plus what it
    was allowed in the current window. A new card is allowed while that count is below ``limit``
    (the count plus one stays within it). A refusal is not counted.

    Memory is bounded two ways. A client's counts expire two windows after the start of the
    last window it asked for a card in (they weigh nothing by then); the clients are kept in the
    order of that window, so expired ones are always at the front and a walk to forget them
    (at most once every :attr:`SWEEP_EVERY` seconds) stops at the first live one.
    And at most ``maxsize`` clients are held: when the map is full after expired clients have
    gone, a new client is counted on one shared overflow budget instead. Live counts are never
    dropped: a client spraying new addresses cannot evict its own spent budgets to get fresh
    ones, nor grow the map; it only shares one more budget with the other newcomers until older
    clients expire.

    Not thread-safe, and needs no lock: it is only ever used from the event loop's thread, and
    :meth:`hit` never awaits, so no other task runs between its read and its write.
    """

    #: Seconds between walks for expired clients.
    SWEEP_EVERY = 1.0

    def __init__(
        self,
        limit: int,
        period: float,
        maxsize: int = MAX_CLIENTS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.period = period
        self.maxsize = maxsize
        self.clock = clock
        #: client key → [window index, count of the window before it, count of that window];
        #: in the order of the window index (oldest first).
        self._counts: dict[str, list[float]] = {}
        #: The shared counts of the clients that found the map full.
        self._overflow: list[float] = [0, 0, 0]
        self._sweep_at = float("-inf")
        self._warned = False

    def __len__(self) -> int:
        return len(self._counts)

    def hit(self, key: str) -> int:
        """Count one card for ``key`` if its budget allows it: 0 when it does, otherwise the
        seconds to wait before it may (its ``Retry-After``), from 1 up to the window's length."""
        # The common case (a client already counted in this window) runs in this method alone,
        # touching as little as it can: on a cold cache every line of code and data costs.
        now = self.clock()
        if now >= self._sweep_at:
            self.sweep(now)
        period = self.period
        window = now // period
        entry = self._counts.get(key)
        if entry is None or entry[0] != window:
            entry = self._turn(key, entry, window, now)
        before = entry[1]
        current = entry[2]
        # Seconds left in the current window: the share of the window before still inside the
        # sliding window, times that window's length.
        left = (window + 1) * period - now
        if before * left / period + current < self.limit:
            entry[2] = current + 1
            return 0
        return self._wait(before, current, left)

    def _turn(self, key: str, entry: list[float] | None, window: float, now: float) -> list[float]:
        """``key``'s counts brought to ``window``: a new client's, or the last window's count
        becoming the window before (moved to the back of the map, which stays in window order)."""
        counts = self._counts
        if entry is None:
            if len(counts) < self.maxsize or self._make_room(now):
                entry = counts[key] = [window, 0, 0]
                return entry
            entry = self._overflow
            if not self._warned:
                self._warned = True
                log.warning(
                    "the in-memory budget holds %d clients; new ones share one budget until "
                    "older counts expire",
                    self.maxsize,
                )
            if entry[0] == window:
                return entry
        elif entry[0] > window:
            return entry  # a clock that went back: count in the entry's window
        entry[1] = entry[2] if entry[0] == window - 1 else 0
        entry[2] = 0
        entry[0] = window
        if entry is not self._overflow:
            del counts[key]
            counts[key] = entry
        return entry

    def _wait(self, before: float, current: float, left: float) -> int:
        """The Retry-After of a refusal: until the weighted count is one lower (the window
        before's share shrinks by one card every period/before seconds) or the window ends."""
        period = self.period
        wait = left % (period / before) if before else period
        if current:
            wait = min(wait, left % period)
        elif not before:
            wait = 0.0  # a limit of 0: nothing to wait for, ask again in a second
        return min(max(1, math.ceil(wait)), math.ceil(period))

    def sweep(self, now: float) -> None:
        """Forget the clients whose counts have all expired (a window and more ago)."""
        self._sweep_at = now + self.SWEEP_EVERY
        counts = self._counts
        if not counts:
            return
        # A client last counted in window w weighs nothing from window w + 2 on.
        alive_from = now // self.period - 1
        expired = []
        for key, entry in counts.items():
            if entry[0] >= alive_from:
                break
            expired.append(key)
        for key in expired:
            del counts[key]
        if expired and len(counts) < self.maxsize:
            self._warned = False

    def _make_room(self, now: float) -> bool:
        """Whether forgetting expired clients made room for one more."""
        self.sweep(now)
        return len(self._counts) < self.maxsize


class Budget:
    """A per-client rate limit; ``None`` rate means no limit.

    Counted by :class:`ClientCounts` in this process's memory, or by ``limits`` in Redis when a
    Redis URL is given (every replica then shares one budget per client).
    """

    def __init__(self, rate: str, redis_url: str = "") -> None:
        self.item: RateLimitItem | None = None
        #: The in-memory counts, when there is no Redis.
        self.counts: ClientCounts | None = None
        self.storage: RedisStorage | None = None
        self.limiter: SlidingWindowCounterRateLimiter | None = None
        if rate.strip().lower() in ("", "0", "off", "none"):
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
            self.limiter = SlidingWindowCounterRateLimiter(self.storage)
        else:
            self.counts = ClientCounts(self.item.amount, self.item.get_expiry())

    @property
    def enabled(self) -> bool:
        return self.item is not None

    async def aclose(self) -> None:
        """Close the shared store's connections (a Redis client), if there are any."""
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()

    async def charge(self, client: str) -> None:
        """Count one unit of work for ``client``; raise RateLimited when over the budget."""
        counts = self.counts
        if counts is not None:
            wait = counts.hit(budget_key(client))
            if wait:
                raise self.refusal(wait)
            return
        if self.limiter is None or self.item is None:
            return
        key = budget_key(client)
        try:
            allowed = await asyncio.wait_for(self.limiter.hit(self.item, key), STORE_TIMEOUT)
            if allowed:
                return
            stats = await asyncio.wait_for(
                self.limiter.get_window_stats(self.item, key), STORE_TIMEOUT
            )
        except Exception as exc:  # a budget store that is down must not take the cards with it
            log.warning("rate-limit store unavailable, not counting: %r", exc)
            return
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        raise self.refusal(min(wait, self.item.get_expiry()))

    def refusal(self, retry_after: int) -> RateLimited:
        """The 429 of a client over its budget, to come back in ``retry_after`` seconds."""
        return RateLimited(
            f"too many new cards from this client (limit {self.item}); cached cards still answer",
            retry_after=retry_after,
        )


class Gate:
    """At most ``limit`` holders at once, at most ``queue`` waiting; beyond, Overloaded at once.

    A free turn is taken without waiting on anything (:meth:`try_acquire`); only a card that has
    to queue awaits, first come first served. A turn given back while cards wait goes straight
    to the first of them, so nobody arriving meanwhile can take it past the queue. Event loop
    thread only.
    """

    def __init__(self, limit: int, queue: int) -> None:
        self.limit = limit
        self.queue = queue
        self.in_flight = 0
        self.queued = 0
        #: The queue: each waiter's future, given a result when a turn is handed to it.
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_acquire(self) -> bool:
        """Take a free turn if there is one. (While cards wait for a turn none is free: a turn
        given back then goes to the first of them. Counting them here instead would strand a
        newcomer behind a waiter cancelled before it could leave the queue.)"""
        if self.in_flight < self.limit:
            self.in_flight += 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a turn, waiting in the queue for one if every turn is taken; raise Overloaded at
        once if the queue is full too. Every acquire that returns is paired with a release."""
        if self.try_acquire():
            return
        if self.queued >= self.queue:
            raise Overloaded(
                f"the server is making {self.in_flight} cards and {self.queued} more wait; "
                "try again shortly"
            )
        turn = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        self.queued += 1
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # handed a turn just as it was cancelled: pass it on
            raise
        finally:
            self.queued -= 1
            if not turn.done():
                turn.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(turn)

    def release(self) -> None:
        """Give a turn back: to the first card still waiting, or free."""
        waiters = self._waiters
        while waiters:
            turn = waiters.popleft()
            if not turn.done():
                turn.set_result(None)  # in_flight unchanged: the turn changes hands
                return
        self.in_flight -= 1


class _Slot:
    """One pass through :class:`Admission`, as ``async with admission.slot():``.

    A plain class rather than a generator-based context manager: it is entered on every card
    made, right after a render has left the caches cold, and a generator's machinery costs
    several times the work it wraps.
    """

    __slots__ = ("admission", "token")

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.token: Token[bool] | None = None

    async def __aenter__(self) -> None:
        if _ADMITTED.get():
            return  # inside a slot already (a card's capture): not charged twice
        admission = self.admission
        client = CLIENT.get()
        left = admission.refused.budget_left(client)
        if left > 0:
            raise admission.budget.refusal(max(1, math.ceil(left)))
        try:
            await admission.budget.charge(client)
        except RateLimited as exc:
            admission.refused.note(client, exc.retry_after or 1, budget=True)
            raise
        try:
            gate = admission.gate
            if not gate.try_acquire():
                await gate.acquire()
        except Overloaded as exc:
            admission.refused.note(client, exc.retry_after or 1, budget=False)
            raise
        self.token = _ADMITTED.set(True)

    async def __aexit__(self, *exc_info: object) -> None:
        token = self.token
        if token is not None:
            self.token = None
            _ADMITTED.reset(token)
            self.admission.gate.release()


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

    def slot(self) -> _Slot:
        """``async with admission.slot():`` around the work of a card that missed the cache: the
        client's budget is charged (429 over it), then the gate is passed (503 when full)."""
        return _Slot(self)
