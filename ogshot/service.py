"""Making a card: key → cache → coalesce → capture → render → store.

This is the one road every card travels, from HTTP and from the command line alike. It knows
nothing of FastAPI: it takes a validated :class:`~ogshot.card.Card` and returns a
:class:`CardResult` whose entry carries the bytes, their media type and their ETag.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TypeVar

from cachetools import TTLCache
from PIL import Image
from xxhash import xxh3_128_hexdigest

from . import logs, metrics
from .budget import Admission
from .cache import Cache, Entry, TieredCache, make_cache
from .capture import CaptureError, CaptureProvider, NullCapture, make_provider
from .capture.decoded import DecodedCaptures
from .capture.images import decode
from .capture.store import PENDING, CaptureStore
from .card import CARD_FIELDS, Card
from .encode import ENCODER_VERSION, encode
from .errors import RateLimited
from .fonts import FontSet
from .layouts import LayoutRegistry, builtin_dir
from .netguard import UrlPolicy
from .pagemeta import PageMeta, PageMetaStore, meta_source
from .render import RENDERER_VERSION, render_card
from .settings import Settings
from .workers import (
    RELEASE_EVERY,
    ProcessRenderer,
    RenderThreads,
    release_memory,
    tune_allocator,
)

log = logging.getLogger("ogshot")
T = TypeVar("T")


@dataclass(frozen=True)
class CardResult:
    entry: Entry
    cache_control: str
    #: Why the card was made without its capture, or None for a complete card.
    fallback: str | None = None
    #: How it was served: ``hit``, ``stale`` (past its TTL, refreshed in the background or kept
    #: because the refresh failed), ``miss`` (made for this request) or ``coalesced`` (made for
    #: another request, here or in another worker, while this one waited).
    source: str = "miss"


def serving_threads() -> int:
    """Render threads behind HTTP when none are set: one core is left to the event loop.

    Render threads take turns at the GIL, and a render holds it for milliseconds at a time: with
    as many render threads as cores, the loop answering cache hits waits behind them (the hits'
    p99 during a storm of new cards went from 17x idle with two threads to under 10x with one, on
    two cores, and the one thread made more cards; README, Performance)."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


def build_threads() -> int:
    """Render threads for a build (``ogshot batch``, the MkDocs plugin): one per core, at most
    four; no event loop answers crawlers beside them."""
    return min(4, os.cpu_count() or 1)


def etag_for(body: bytes) -> str:
    """A strong, quoted ETag from the bytes themselves: it moves whenever they do.

    XXH3's 128 bits: a 100 KB card hashes in about 2 us, against 65 for SHA-256 with the CPU's
    SHA instructions, and a cold card waits for it. The ETag vouches for nothing but the bytes
    being the same ones, to a client that already holds them: any change of the bytes moves it
    (two different cards share one with odds of 2^-128), and no cache key, signature or kept
    capture depends on it (those are SHA-256 or BLAKE2b).
    """
    return '"' + xxh3_128_hexdigest(body) + '"'


def make_card_bytes(
    card: Card, registry: LayoutRegistry, fonts: FontSet, capture: Image.Image | None = None
) -> bytes:
    """Render and encode one card, synchronously. The CLI and the service both call this."""
    image = render_card(card, registry.get(card.template), fonts, capture)
    return encode(image, card.format, captured=capture is not None)


#: The card's field names, each with its JSON name and colon, in the order a sorted JSON
#: encoding lists them.
_SORTED_CARD_NAMES = tuple((name, json.dumps(name) + ":") for name in sorted(CARD_FIELDS))
#: One JSON string, as ``json.dumps(..., ensure_ascii=False)`` writes it.
_quoted: Callable[[str], str] = json.encoder.encode_basestring
#: Stands for the card's fields while the key's frame is cut (no field value can be this dict).
_FRAME_MARKER: dict[str, object] = {"\x00frame": 0}
_key_json = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


#: Waiting requests on one card's work from which those gone away are shed.
_PRUNE_WAITERS = 64


class _Waiters(list[asyncio.Future[CardResult]]):
    """The requests waiting on one card's work, and the length at which those gone away are
    next shed (see CardService._outcome)."""

    __slots__ = ("shed_at",)

    def __init__(self) -> None:
        super().__init__()
        self.shed_at = _PRUNE_WAITERS

#: How often a worker waiting on another worker's lease looks for the result.
_POLL_SECONDS = 0.025
#: After a failed refresh, serve the stale entry this long before trying again.
_REFRESH_BACKOFF = 30.0


class CardService:
    """Makes cards and keeps them; one per process, built from the settings at start-up.

    Cache policy, per key (ages past ``created``)::

        age < ttl                   fresh: served as is
        ttl <= age < ttl + swr      stale: served at once, one background refresh
        ttl + swr <= age < + sie    refreshed in the foreground; served stale if that fails
        older, or absent            made now

    A miss is made once: concurrent requests in this process share one task (singleflight), and
    with a shared tier one worker holds a short Redis lease while the others wait for its result
    (bounded by ``OGSHOT_CACHE_LOCK_WAIT`` plus the longest the holder may wait for its capture,
    after which they make it themselves).

    A card waits for its capture at most ``OGSHOT_CARD_DEADLINE`` seconds; then it is made
    without it, as a ``capture_pending`` fallback, while the capture goes on. That fallback is
    answered only until the capture lands: the first request after that makes the complete card.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        layouts: LayoutRegistry | None = None,
        fonts: FontSet | None = None,
        cache: Cache | None = None,
        capture: CaptureProvider | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.layouts = layouts or load_layouts(settings)
        self.fonts = fonts or FontSet.from_settings(settings)
        if not self.fonts.shapes:
            log.warning(
                "Pillow has no RAQM text layout (is libfribidi installed?): titles are drawn "
                "unshaped, and right-to-left and complex scripts come out wrong"
            )
        self.clock = clock
        if cache is None:
            self.cache = make_cache(settings, clock=clock)
        elif isinstance(cache, TieredCache):
            self.cache = cache
        else:
            self.cache = TieredCache([cache])
        self.capture = capture or NullCapture()
        policy = UrlPolicy.from_settings(settings)
        source = meta_source(self.capture, settings, policy)
        self.page_meta = PageMetaStore(source, self.cache, settings)
        self.captures = CaptureStore(self.capture, self.cache, settings, policy, self.page_meta)
        tune_allocator()
        self._processes = _process_renderer(settings, self.fonts)
        threads = settings.render_threads or serving_threads()
        if self._processes is not None:
            # Each thread then only waits on a worker process: one per process keeps them busy.
            threads = max(threads, self._processes.processes)
        self._executor = RenderThreads(threads)
        #: The per-client budget and the bounded gate that every cache miss passes (budget.py).
        self.admission = Admission.from_settings(
            settings, self._processes.processes if self._processes is not None else threads
        )
        self.captures.admission = self.admission
        #: Decoded captures by ETag: a new title on a captured page does not decode it again.
        self.decoded = DecodedCaptures()
        #: The key's JSON around the card's fields, per layout, capture choice and versions.
        self._key_frames: dict[tuple[object, ...], tuple[str, str]] = {}
        self._inflight: dict[str, asyncio.Task[CardResult]] = {}
        #: The requests waiting on each task of ``_inflight`` (see :meth:`_fly`).
        self._waiters: dict[asyncio.Task[CardResult], _Waiters] = {}
        self._meta_inflight: dict[str, asyncio.Task[PageMeta]] = {}
        self._refresh_failed: TTLCache[str, float] = TTLCache(
            maxsize=4096, ttl=_REFRESH_BACKOFF, timer=clock
        )
        self._card_cc = settings.card_cache_control()
        self._fallback_cc = settings.fallback_cache_control()
        self._swr = float(settings.cache_stale_while_revalidate)
        self._grace = float(
            max(settings.cache_stale_while_revalidate, settings.cache_stale_if_error)
        )
        #: How long a card waits for its capture; None when nothing is ever captured.
        self._capture_wait = settings.card_capture_wait() if self.captures.enabled else None
        # The lease holder may spend its whole capture wait before it even renders: a worker
        # waiting on it must wait that long too, or it would give up and make the card again.
        self._lock_wait = settings.cache_lock_wait + (self._capture_wait or 0.0)
        self._lease_ms = int(max(1.0, 2 * self._lock_wait) * 1000)
        #: How many cards this process has rendered: tests and metrics read it.
        self.renders = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> CardService:
        return cls(settings, capture=make_provider(settings))

    async def aclose(self) -> None:
        # Cancelled work is awaited before the tiers close: a card task's `finally` releases its
        # lease through the shared tier, and run after the pool closed it would dial a fresh
        # connection that nothing ever closes.
        tasks = [*self._inflight.values(), *self._meta_inflight.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.captures.aclose()
        await self.page_meta.aclose()
        await self.capture.aclose()
        await self.cache.aclose()
        await self.admission.aclose()
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._processes is not None:
            await asyncio.to_thread(self._processes.close)

    def key(self, card: Card) -> str:
        """sha256 over the canonical JSON of everything that determines the card's bytes
        (:meth:`key_material`, keys sorted, compact, UTF-8).

        A cold card waits for this, so the JSON around the card's own fields, the same for every
        card of a layout, is made once per layout and capture choice (:meth:`_key_frame`), and
        only the card's fields are encoded each time, in sorted order: the same text as encoding
        the whole mapping with its keys sorted, for a third of the time.
        """
        captured = bool(card.url) and self.capture.enabled
        # The versions are read each time: the frame is for the code as it is now.
        kind = (card.template, captured, RENDERER_VERSION, ENCODER_VERSION)
        frame = self._key_frames.get(kind)
        if frame is None:
            frame = self._key_frames[kind] = self._key_frame(card)
        # Every field of a card is a string (Card's annotations): each is one JSON string.
        fields = ",".join(
            [head + _quoted(getattr(card, name)) for name, head in _SORTED_CARD_NAMES]
        )
        raw = frame[0] + "{" + fields + "}" + frame[1]
        return "card:" + hashlib.sha256(raw.encode()).hexdigest()

    def _key_frame(self, card: Card) -> tuple[str, str]:
        """The key's JSON before and after the card's own fields, the same for every card of
        this card's layout and capture choice."""
        material = self.key_material(card)
        whole = _key_json({**material, "card": _FRAME_MARKER}, sort_keys=True)
        cut = _key_json(_FRAME_MARKER)
        if whole.count(cut) != 1:
            raise AssertionError("the key's frame did not come apart at the card")
        before, _, after = whole.partition(cut)
        return before, after

    def key_material(self, card: Card) -> dict[str, object]:
        """Everything that determines the card's bytes: the card, its layout's version and
        digest, the renderer, encoder and font set versions, and the capture backend."""
        layout = self.layouts.get(card.template)
        return {
            "card": card.canonical(),
            "layout": [layout.name, layout.version, layout.digest],
            "renderer": RENDERER_VERSION,
            "encoder": ENCODER_VERSION,
            "fonts": self.fonts.version,
            "capture": self.capture.name if card.url and self.capture.enabled else "none",
        }

    def result_for(self, entry: Entry, source: str) -> CardResult:
        cc = self._card_cc if entry.fallback is None else self._fallback_cc
        return CardResult(entry, cc, entry.fallback, source)

    def fresh_entry(self, key: str) -> Entry | None:
        """The fresh, complete entry in the memory tier, or None; counts and notes nothing."""
        entry = self.cache.peek(key)
        if entry is None or not entry.fresh(self.clock()) or entry.fallback == PENDING:
            return None
        return entry

    def fresh_hit(self, key: str) -> CardResult | None:
        """The fresh entry from the memory tier, synchronously, or None: the hot path's read."""
        entry = self.fresh_entry(key)
        if entry is None:
            # The normal road follows, and counts the read (a pending card may be out of date
            # by now: that road checks).
            return None
        # A card key (``card:...``) found fresh: what cache_read would work out again.
        metrics.FIGURES.cache_read("memory", "card", "hit")
        logs.note(card_key=key)
        return self.result_for(entry, "hit")

    async def card(self, card: Card) -> CardResult:
        """The card's bytes, from cache when possible; concurrent misses share one render."""
        return await self.card_for_key(self.key(card), card)

    async def card_for_key(self, key: str, card: Card) -> CardResult:
        """The card for an already computed ``key``; see the class docstring for the policy."""
        entry = self.cache.peek(key)
        if self.cache.memory is not None:
            metrics.cache_read("memory", key, entry, self.clock())
        logs.note(card_key=key)
        if entry is None:
            # Lower tiers are read inside the shared task: a herd costs one read, not one each.
            return await self._coalesced(key, card, None)
        return await self._serve(key, card, entry, self._coalesced)

    async def _serve(
        self,
        key: str,
        card: Card,
        entry: Entry,
        produce: Callable[[str, Card, Entry | None], Awaitable[CardResult]],
    ) -> CardResult:
        age = entry.age(self.clock())
        if age < entry.ttl:
            if entry.fallback == PENDING and await self._capture_landed(card):
                return await produce(key, card, None)
            return self.result_for(entry, "hit")
        if entry.fallback is not None:
            return await produce(key, card, None)  # a fallback is never served stale
        if age < entry.ttl + self._swr or key in self._refresh_failed:
            self._refresh_later(key, card, entry)
            return self.result_for(entry, "stale")
        return await produce(key, card, entry)

    def _refresh_later(self, key: str, card: Card, stale: Entry) -> None:
        task = self._inflight.get(key)
        if (task is not None and task is not asyncio.current_task()) or key in self._refresh_failed:
            return
        self._start(key, card, stale)

    async def _coalesced(self, key: str, card: Card, stale: Entry | None) -> CardResult:
        for attempt in (1, 2):
            task = self._inflight.get(key)
            leader = False
            if task is None:
                # No await between this look and the task's registration: a task that just ended
                # stored its entry before ending, so the memory tier has it.
                entry = self.fresh_entry(key)
                if entry is not None:
                    return self.result_for(entry, "hit")
                task = self._start(key, card, stale)
                leader = True
            if not leader:
                metrics.coalesced_wait("task")
            try:
                result = await self._outcome(task)
            except RateLimited:
                if leader or attempt == 2:
                    raise
                # The work this request joined was refused on another client's budget: ask
                # again, on this request's own.
                continue
            break
        if leader or result.source != "miss":
            return result
        return replace(result, source="coalesced")

    def _start(self, key: str, card: Card, stale: Entry | None) -> asyncio.Task[CardResult]:
        # The work runs in its own task, so that a client hanging up does not cancel it for the
        # others waiting on the same key.
        waiters = _Waiters()
        task = asyncio.create_task(
            self._fly(key, card, stale, waiters), name=f"card-{key[5:17]}"
        )
        self._inflight[key] = task
        self._waiters[task] = waiters
        task.add_done_callback(partial(self._settle, key))
        return task

    async def _fly(
        self, key: str, card: Card, stale: Entry | None, waiters: list[asyncio.Future[CardResult]]
    ) -> CardResult:
        """The shared work for one key, handing its outcome to every request waiting on it.

        Each request waits on a future of its own (:meth:`_outcome`): a request that goes away
        cancels only that. They are settled here, as the work ends, rather than from the task's
        own completion, which the event loop would only report on its next turn: a cold card's
        crawler waits one turn less.
        """
        try:
            result = await self._produce(key, card, stale)
        except asyncio.CancelledError:
            self._land(key)
            _hand(waiters, None)
            raise
        except Exception as exc:
            self._land(key)
            _hand(waiters, exc)
            raise
        self._land(key)
        _hand(waiters, result)
        return result

    def _land(self, key: str) -> None:
        """The running flight leaves the in-flight table before any of its waiters resumes: a
        request coming after them must not join work that has ended."""
        if self._inflight.get(key) is asyncio.current_task():
            del self._inflight[key]

    def _outcome(self, task: asyncio.Task[CardResult]) -> Awaitable[CardResult]:
        """What the shared work in ``task`` comes to, for one request, without cancelling the
        work when that request is cancelled."""
        if task.done():  # cancelled before it began: still in the table until it is settled
            return task
        waiter: asyncio.Future[CardResult] = asyncio.get_running_loop().create_future()
        waiters = self._waiters[task]
        if len(waiters) >= waiters.shed_at:
            # Requests that went away leave their cancelled futures here: shed them once the
            # list has doubled since it was last shed, so a crowd hanging up during a long
            # capture is not all held, and each request pays for the shedding once, on average.
            waiters[:] = [w for w in waiters if not w.done()]
            waiters.shed_at = max(_PRUNE_WAITERS, 2 * len(waiters))
        waiters.append(waiter)
        return waiter

    def _settle(self, key: str, task: asyncio.Task[CardResult]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        # Every waiter _fly did not settle is settled here, from the task's own outcome: the
        # task cancelled before it began (so _fly never ran), or ended by an exception beyond
        # Exception that _fly lets through.
        waiters = self._waiters.pop(task, ())
        if task.cancelled():
            _hand(waiters, None)
            return
        exc = task.exception()  # retrieved here: every waiter got it, or none is left
        _hand(waiters, exc if exc is not None else task.result())

    async def _produce(self, key: str, card: Card, stale: Entry | None) -> CardResult:
        if stale is None and not self.cache.in_memory_only:
            found = await self.cache.get_lower(key)
            if found is not None:
                return await self._serve(key, card, found, self._make_and_store)
        return await self._make_and_store(key, card, stale)

    async def _make_and_store(self, key: str, card: Card, stale: Entry | None) -> CardResult:
        if self.cache.in_memory_only:
            # No other process stores cards or takes leases: this process's own flight is all
            # the coordination there is, and nothing below memory to look in first.
            return await self._make_fresh(key, card, stale)
        # Behind the tier's backoff: a lock tier that fails means no coordination for a moment.
        token = await self.cache.acquire(key, self._lease_ms)
        try:
            if token is None:
                # The holder's answer, even a pending one: it is this moment's card.
                found = await self._wait_for_other(key)
            else:
                # Another worker may have stored it between our miss and our lease (a pending
                # card does not count: this task may be here because its capture has landed).
                found = await self.cache.get_lower(key)
                if found is not None and found.fallback == PENDING:
                    found = None
            if found is not None and found.fresh(self.clock()):
                return self.result_for(found, "coalesced")
            return await self._make_fresh(key, card, stale)
        finally:
            if token is not None:
                await self.cache.release(key, token)

    async def _make_fresh(self, key: str, card: Card, stale: Entry | None) -> CardResult:
        """Make the card and store it; on failure, the stale entry when there is one."""
        try:
            result = await self._make(key, card)
        except Exception:
            if stale is None:
                raise
            log.warning("refresh of %s failed; serving stale", key[:17], exc_info=True)
            self._refresh_failed[key] = self.clock()
            return self.result_for(stale, "stale")
        if result.fallback is not None and stale is not None:
            # stale-if-error: the complete stale card beats a fresh fallback.
            self._refresh_failed[key] = self.clock()
            return self.result_for(stale, "stale")
        await self.cache.set(key, result.entry)
        # _make's result says "miss" already: then no copy is made to say it again.
        return result if result.source == "miss" else replace(result, source="miss")

    async def _wait_for_other(self, key: str) -> Entry | None:
        """Wait, bounded, for the lease holder in another worker to store its result."""
        deadline = time.monotonic() + self._lock_wait
        while time.monotonic() < deadline:
            await asyncio.sleep(_POLL_SECONDS)
            entry = await self.cache.get_lower(key)
            if entry is not None and entry.fresh(self.clock()):
                metrics.coalesced_wait("lock", "found")
                return entry
        metrics.coalesced_wait("lock", "gave_up")
        log.warning("gave up waiting for another worker on %s; making it here", key[:17])
        return None

    def new_entry(
        self, body: bytes, media_type: str, fallback: str | None = None, etag: str | None = None
    ) -> Entry:
        """An entry for freshly made bytes: long-lived when complete, short and never served
        stale when it is a fallback. ``etag`` is :func:`etag_for` of the body, when the caller
        has it already."""
        if fallback is None:
            ttl, grace = float(self.settings.cache_ttl), self._grace
        else:
            ttl, grace = float(self.settings.fallback_ttl), 0.0
        return Entry(
            body=body,
            media_type=media_type,
            etag=etag or etag_for(body),
            created=self.clock(),
            ttl=ttl,
            grace=grace,
            fallback=fallback,
        )

    @property
    def in_flight(self) -> int:
        """Cards being made right now (captures and renders); /metrics reads it."""
        return self.admission.gate.in_flight

    @property
    def queued(self) -> int:
        """Cards waiting for a turn to be made; /metrics reads it."""
        return self.admission.gate.queued

    async def _make(self, key: str, card: Card) -> CardResult:
        waited = time.perf_counter()
        async with self.admission.slot():  # 429 over the client's budget, 503 when full
            metrics.observe_span("queue", time.perf_counter() - waited)
            started = time.monotonic()
            capture, fallback = await self._capture_for(card) if card.url else (None, None)
            if card.url and not card.title:
                # After the capture: the local browser has read the page's metadata while there.
                # What is left of the card deadline bounds this wait too.
                wait = None
                if self._capture_wait is not None:
                    wait = max(0.0, self._capture_wait - (time.monotonic() - started))
                card, meta_fallback = await self._with_page_meta(card, wait)
                fallback = fallback or meta_fallback
            render = partial(self._render_tagged, submitted=time.perf_counter())
            body, etag = await self._on_render_thread(render, card, capture)
        return self.result_for(self.new_entry(body, card.media_type, fallback, etag), "miss")

    def _on_render_thread(
        self,
        render: Callable[[Card, Image.Image | None], tuple[bytes, str]],
        card: Card,
        capture: Image.Image | None,
    ) -> asyncio.Future[tuple[bytes, str]]:
        """``render(card, capture)`` on a render thread; its outcome handed straight to the
        event loop as it ends.

        ``run_in_executor`` does the same through a chain of futures (the executor's, then a
        copy of its state onto the loop's): a cold card's crawler waits for that chain twice
        per card, once each way. Here the render thread sets the loop's own future, and a wait
        given up before its render began leaves that render undone, as a future cancelled in
        the executor's queue would; the threads shutting down with it still queued ends its
        wait.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[bytes, str]] = loop.create_future()
        # The render runs in the request's context: what it logs carries the request's id, and
        # its spans reach the request's log line.
        context = contextvars.copy_context()

        def run() -> None:
            if future.cancelled():  # its wait was given up before a thread took it
                return
            try:
                made = context.run(render, card, capture)
            except BaseException as exc:  # handed over, as run_in_executor would
                outcome: tuple[Callable[..., None], object] = (_fail, exc)
            else:
                outcome = (_succeed, made)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: none waits
                loop.call_soon_threadsafe(outcome[0], future, outcome[1])

        self._executor.call(run, lambda: loop.call_soon_threadsafe(future.cancel))
        return future

    async def _capture_for(self, card: Card) -> tuple[Image.Image | None, str | None]:
        """The decoded capture for a card, or None and the reason it could not be had.

        A capture failure never fails the card: the layout is drawn without it. A URL that the
        policy refuses does fail it (403), because the client asked for something not allowed.
        """
        if not card.url or not self.captures.enabled:
            return None, None
        if self.layouts.get(card.template).capture is None:
            return None, None  # a layout with no capture box: nothing to fetch
        try:
            request = self.captures.for_card(card.url)
            entry = await self.captures.get(request, wait=self._capture_wait)
            image = self.decoded.get(entry.etag)
            if image is None:
                loop = asyncio.get_running_loop()
                image = await loop.run_in_executor(
                    self._executor, decode, entry.body, self.settings.capture_max_pixels
                )
                self.decoded.put(entry.etag, image)
        except CaptureError as exc:
            log.warning("capture failed (%s): %s", exc.reason, exc.detail)
            return None, exc.reason
        return image, None

    async def _with_page_meta(
        self, card: Card, wait: float | None = None
    ) -> tuple[Card, str | None]:
        """The card with the page's own title (and description, site name where the card has
        none); without one, a fallback card titled with the host, kept only briefly. Past
        ``wait`` seconds the read goes on in the background and the card is ``capture_pending``."""
        self.captures.policy.check(card.url)
        meta = await self._page_meta_within(card.url, wait)
        if meta is None:
            return card.model_copy(update={"title": card.host}), PENDING
        if not meta.title:
            return card.model_copy(update={"title": card.host}), "no_page_title"
        update = {"title": meta.title}
        if not card.subtitle and meta.description:
            update["subtitle"] = meta.description
        if not card.site and meta.site:
            update["site"] = meta.site
        return card.model_copy(update=update), None

    async def _page_meta_within(self, url: str, wait: float | None) -> PageMeta | None:
        """The page's metadata, or None when it is not read within ``wait`` seconds; the read
        then goes on (one per URL at a time) and is cached for the next request."""
        task = self._meta_inflight.get(url)
        if task is None:
            task = asyncio.create_task(self.page_meta.get(url), name="page-meta")
            self._meta_inflight[url] = task
            task.add_done_callback(partial(self._settle_meta, url))
        try:
            async with asyncio.timeout(wait):  # None: no time limit
                return await asyncio.shield(task)
        except TimeoutError:
            return None

    def _settle_meta(self, url: str, task: asyncio.Task[PageMeta]) -> None:
        if self._meta_inflight.get(url) is task:
            del self._meta_inflight[url]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter got it already

    async def _capture_landed(self, card: Card) -> bool:
        """Whether a card made as ``capture_pending`` could now be made complete: its capture
        is in the cache (where it has a capture box) and so is its page's title (where the
        card needs one)."""
        if not card.url:
            return False
        try:
            if not card.title and await self.page_meta.cache.get(
                PageMetaStore.key(card.url)
            ) is None:
                return False
            if self.layouts.get(card.template).capture is None:
                return True
            return await self.captures.ready(self.captures.for_card(card.url))
        except Exception:  # never let the check fail the card: the pending one still answers
            log.warning("capture lookup failed for %s", card.url, exc_info=True)
            return False

    def _render_tagged(
        self, card: Card, capture: Image.Image | None, *, submitted: float
    ) -> tuple[bytes, str]:
        """On a render thread: the card's bytes and ETag. The steps' spans (the wait for this
        thread, the render, the encode) are plain numbers until they are noted together at the
        end, failed steps included."""
        spans = [("thread", time.perf_counter() - submitted)]
        try:
            body = self._render(card, capture, spans)
            # Hashed here: the event loop has other requests to answer meanwhile.
            return body, etag_for(body)
        finally:
            metrics.spans_done(spans, logs.current())

    def _render(
        self, card: Card, capture: Image.Image | None, spans: list[tuple[str, float]]
    ) -> bytes:
        """Render and encode, adding the ``render`` and ``encode`` spans to ``spans`` (the
        step that failed included)."""
        self.renders += 1
        step, began = "render", time.perf_counter()
        try:
            if self._processes is not None:
                # Drawing and encoding, in a worker process: one span.
                layout = self.layouts.get(card.template)
                body = self._processes.render(card, layout, capture, self.fonts)
            else:
                image = render_card(card, self.layouts.get(card.template), self.fonts, capture)
                drawn = time.perf_counter()
                spans.append((step, drawn - began))
                step, began = "encode", drawn
                body = encode(image, card.format, captured=capture is not None)
        finally:
            spans.append((step, time.perf_counter() - began))
        if self.renders % RELEASE_EVERY == 0:
            # Worker processes or not, this process decodes captures and holds the cache.
            release_memory()
        return body


def _hand(
    waiters: Iterable[asyncio.Future[CardResult]], outcome: CardResult | BaseException | None
) -> None:
    """Settle every waiter not settled yet: with the card, with the exception, or (None)
    cancelled."""
    for waiter in waiters:
        if waiter.done():
            continue
        if outcome is None:
            waiter.cancel()
        elif isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)


def _succeed(future: asyncio.Future[T], value: T) -> None:
    if not future.done():  # its request may have gone away meanwhile
        future.set_result(value)


def _fail(future: asyncio.Future[T], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _process_renderer(settings: Settings, fonts: FontSet) -> ProcessRenderer | None:
    """Worker processes only when asked for: they win on pure rendering, but behind HTTP on two
    cores the threads served more cold cards per second, in less memory (README, Performance)."""
    if settings.render_processes == 0 or not ProcessRenderer.usable(fonts):
        return None
    return ProcessRenderer(settings.render_processes, fonts.dirs)


def load_layouts(settings: Settings) -> LayoutRegistry:
    """Built-in layouts, then the user's folder (whose files win on a name clash)."""
    dirs = [builtin_dir()]
    if settings.templates_dir:
        dirs.append(Path(settings.templates_dir))
    return LayoutRegistry.load(*dirs)
