"""Captures kept apart from cards: checked, cached on their own key, and coalesced.

A capture's key is made of the provider and what was captured (URL, viewport, format, full page,
delay) and nothing of the card, so a new title or layout over the same page reuses the capture.
Keys live in their own namespace (``capture-…``) of the service's cache, next to card keys.

One capture per key at a time, everywhere: in a process, callers share one task; across
workers sharing Redis, the worker holding the capture's lease captures and the others wait for
its result in the shared tier. The lease lasts as long as a capture may take
(:meth:`~ogshot.settings.Settings.capture_budget`), and the others wait that long too, so a
slow capture is never taken over and made a second time.

A caller may wait less than the capture takes (``wait=``, the card deadline): it then gets a
``capture_pending`` :class:`CaptureError` at once, while the capture goes on in the background,
within its budget, and lands in the cache for the next caller. Every provider gets this
behaviour, because it lives here rather than in a provider.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING

from .. import metrics
from ..cache import LOCAL, Cache, Entry, TieredCache
from ..netguard import UrlPolicy
from ..pagemeta import PageMetaStore
from ..settings import Settings
from . import CaptureError, CaptureProvider, CaptureRequest
from .images import decode

if TYPE_CHECKING:
    from ..budget import Admission

log = logging.getLogger("ogshot")

#: What a card asks the provider for: a viewport the shape of the card itself.
CARD_CAPTURE = {"width": 1200, "height": 630, "format": "png"}

KEY_PREFIX = "capture-"

#: The reason a card is made without its capture because the capture is still running.
PENDING = "capture_pending"
#: How often a worker waiting on another worker's capture looks for it.
_POLL_SECONDS = 0.05
#: Past the capture's budget, the lease and the wait last this much longer: the holder stores
#: its result a moment after its capture ends.
_LEASE_MARGIN = 5.0


class CaptureStore:
    """Get a capture: policy check → cache → one upstream call per key at a time → store."""

    def __init__(
        self,
        provider: CaptureProvider,
        cache: Cache,
        settings: Settings,
        policy: UrlPolicy,
        meta: PageMetaStore | None = None,
    ) -> None:
        self.provider = provider
        self.cache = cache if isinstance(cache, TieredCache) else TieredCache([cache])
        self.settings = settings
        self.policy = policy
        #: Where what a provider read from the page is kept (the local browser reads it).
        self.meta = meta
        #: Set by the service: a capture that misses the cache passes the client's budget and
        #: the gate first (re-entrant, so a card's own capture is not counted twice).
        self.admission: Admission | None = None
        self._inflight: dict[str, asyncio.Task[Entry]] = {}
        #: The longest one capture may take; a safety net around any provider's own timeouts.
        self.budget = settings.capture_budget()
        self._lease_ms = int((self.budget + _LEASE_MARGIN) * 1000)

    @property
    def enabled(self) -> bool:
        return self.provider.enabled

    def key(self, request: CaptureRequest) -> str:
        material = {
            "provider": self.provider.name,
            "url": request.url,
            "width": request.width,
            "height": request.height,
            "format": request.format,
            "full_page": request.full_page,
            "delay": request.delay,
        }
        raw = json.dumps(material, sort_keys=True, separators=(",", ":"))
        return KEY_PREFIX + hashlib.sha256(raw.encode()).hexdigest()

    def for_card(self, url: str) -> CaptureRequest:
        return CaptureRequest(url=url, **CARD_CAPTURE)  # type: ignore[arg-type]

    async def get(self, request: CaptureRequest, *, wait: float | None = None) -> Entry:
        """The capture's bytes; raises :class:`CaptureError` or ``Forbidden``.

        With ``wait``, gives up waiting after that many seconds with a ``capture_pending``
        error; the capture itself goes on and is cached when it lands.
        """
        if not self.provider.enabled:
            raise CaptureError(
                "capture_off", "captures are switched off on this server", status=503
            )
        self.policy.check(request.url)
        key = self.key(request)
        entry = await self.cache.get(key)
        if entry is not None:
            return entry
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch(key, request), name=f"capture-{key[8:20]}")
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._settle(key, t))
        try:
            async with asyncio.timeout(wait):  # None: no time limit
                return await asyncio.shield(task)
        except TimeoutError:
            raise CaptureError(
                PENDING,
                f"the capture is not ready after {wait:g} s; it goes on in the background",
                status=504,
            ) from None

    async def ready(self, request: CaptureRequest) -> bool:
        """Whether the capture is in the cache now (made here or by another worker)."""
        return await self.cache.get(self.key(request)) is not None

    def _settle(self, key: str, task: asyncio.Task[Entry]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: every waiter got it already

    async def _fetch(self, key: str, request: CaptureRequest) -> Entry:
        token = await self.cache.acquire(key, self._lease_ms)
        try:
            if token is None:
                found, token = await self._wait_for_other(key)
                if found is not None:
                    return found
            else:
                # Another worker may have stored it between our miss and our lease.
                found = await self.cache.get_lower(key)
                if found is not None:
                    return found
            return await self._capture(key, request)
        finally:
            if token is not None:
                await self.cache.release(key, token)

    async def _wait_for_other(self, key: str) -> tuple[Entry | None, str | None]:
        """Wait for the worker holding the capture's lease to store its result.

        Returns the result, or, when the lease comes free without one (its holder failed or
        died), the lease taken over and no result. The wait is bounded by the lease's own life.
        """
        give_up = time.monotonic() + self._lease_ms / 1000 + _LEASE_MARGIN
        while time.monotonic() < give_up:
            await asyncio.sleep(_POLL_SECONDS)
            found = await self.cache.get_lower(key)
            if found is not None:
                return found, None
            token = await self.cache.acquire(key, self._lease_ms)
            if token is not None:
                return await self.cache.get_lower(key), token
        log.warning("gave up waiting for another worker's capture %s", key[:20])
        return None, LOCAL

    async def _capture(self, key: str, request: CaptureRequest) -> Entry:
        try:
            async with asyncio.timeout(self.budget + _LEASE_MARGIN):
                async with self.admission.slot() if self.admission is not None else nullcontext():
                    with metrics.span("capture"):
                        capture = await self.provider.capture(request)
        except TimeoutError:
            metrics.capture_error("upstream_timeout")
            raise CaptureError(
                "upstream_timeout", f"the capture took over {self.budget:g} s", status=504
            ) from None
        except CaptureError as exc:
            metrics.capture_error(exc.reason)
            raise
        if capture.meta is not None and self.meta is not None:
            await self.meta.put(request.url, capture.meta)
        # Decoded once, off the event loop, before it is kept: a header that promised an image
        # over bytes that do not decode must not sit in the cache for a day.
        await asyncio.to_thread(decode, capture.body, self.settings.capture_max_pixels)
        entry = Entry(
            body=capture.body,
            media_type=capture.media_type,
            etag='"' + hashlib.blake2b(capture.body, digest_size=16).hexdigest() + '"',
            created=time.time(),
            ttl=float(self.settings.cache_ttl),
        )
        try:
            await self.cache.set(key, entry)
        except Exception:  # a cache that cannot store must not fail the capture
            log.exception("cache write failed for %s", key[:20])
        return entry

    async def aclose(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)
