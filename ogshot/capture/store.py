"""Captures kept apart from cards: checked, cached on their own key, and coalesced.

A capture's key is made of the provider and what was captured (URL, viewport, format, full page,
delay) and nothing of the card, so a new title or layout over the same page reuses the capture.
Keys live in their own namespace (``capture-…``) of the service's cache, next to card keys.
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
from ..cache import Cache, Entry
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
        self.cache = cache
        self.settings = settings
        self.policy = policy
        #: Where what a provider read from the page is kept (the local browser reads it).
        self.meta = meta
        #: Set by the service: a capture that misses the cache passes the client's budget and
        #: the gate first (re-entrant, so a card's own capture is not counted twice).
        self.admission: Admission | None = None
        self._inflight: dict[str, asyncio.Task[Entry]] = {}

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

    async def get(self, request: CaptureRequest) -> Entry:
        """The capture's bytes; raises :class:`CaptureError` or ``Forbidden``."""
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
        return await asyncio.shield(task)

    def _settle(self, key: str, task: asyncio.Task[Entry]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: every waiter got it already

    async def _fetch(self, key: str, request: CaptureRequest) -> Entry:
        async with self.admission.slot() if self.admission is not None else nullcontext():
            try:
                with metrics.span("capture"):
                    capture = await self.provider.capture(request)
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
