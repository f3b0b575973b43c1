"""Making a card: key → cache → coalesce → capture → render → store.

This is the one road every card travels, from HTTP and from the command line alike. It knows
nothing of FastAPI: it takes a validated :class:`~ogshot.card.Card` and returns a
:class:`CardResult` whose entry carries the bytes, their media type and their ETag.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .cache import Cache, Entry, MemoryCache, NullCache
from .capture import CaptureProvider, NullCapture, make_provider
from .card import Card
from .encode import ENCODER_VERSION, encode
from .fonts import FontSet
from .layouts import LayoutRegistry, builtin_dir
from .render import RENDERER_VERSION, render_card
from .settings import Settings
from .workers import ProcessRenderer, tune_allocator

log = logging.getLogger("ogshot")


@dataclass(frozen=True)
class CardResult:
    entry: Entry
    cache_control: str
    #: Why the card was made without its capture, or None for a complete card.
    fallback: str | None = None


def etag_for(body: bytes) -> str:
    """A strong, quoted ETag from the bytes themselves: it moves whenever they do."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def make_card_bytes(
    card: Card, registry: LayoutRegistry, fonts: FontSet, capture: Image.Image | None = None
) -> bytes:
    """Render and encode one card, synchronously. The CLI and the service both call this."""
    image = render_card(card, registry.get(card.template), fonts, capture)
    return encode(image, card.format)


class CardService:
    """Makes cards and keeps them; one per process, built from the settings at start-up."""

    def __init__(
        self,
        settings: Settings,
        *,
        layouts: LayoutRegistry | None = None,
        fonts: FontSet | None = None,
        cache: Cache | None = None,
        capture: CaptureProvider | None = None,
    ) -> None:
        self.settings = settings
        self.layouts = layouts or load_layouts(settings)
        self.fonts = fonts or FontSet.default()
        if cache is None:
            max_bytes = settings.cache_memory_bytes
            cache = MemoryCache(max_bytes) if max_bytes > 0 else NullCache()
        self.cache = cache
        self.capture = capture or NullCapture()
        tune_allocator()
        self._processes = _process_renderer(settings, self.fonts)
        threads = settings.render_threads or min(4, os.cpu_count() or 1)
        if self._processes is not None:
            # Each thread then only waits on a worker process: one per process keeps them busy.
            threads = max(threads, self._processes.processes)
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ogshot-render")
        self._inflight: dict[str, asyncio.Task[CardResult]] = {}
        #: How many cards this process has rendered: tests and metrics read it.
        self.renders = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> CardService:
        return cls(settings, capture=make_provider(settings))

    async def aclose(self) -> None:
        await self.capture.aclose()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def key(self, card: Card) -> str:
        """sha256 over the canonical JSON of everything that determines the card's bytes."""
        layout = self.layouts.get(card.template)
        material = {
            "card": card.canonical(),
            "layout": [layout.name, layout.version, layout.digest],
            "renderer": RENDERER_VERSION,
            "encoder": ENCODER_VERSION,
            "fonts": self.fonts.version,
            "capture": self.capture.name if card.url and self.capture.enabled else "none",
        }
        raw = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(raw.encode()).hexdigest()

    async def card(self, card: Card) -> CardResult:
        """The card's bytes, from cache when possible; concurrent misses share one render."""
        key = self.key(card)
        entry = await self.cache.get(key)
        if entry is not None:
            return CardResult(entry, self.settings.card_cache_control())
        task = self._inflight.get(key)
        if task is None:
            # The work runs in its own task, so that a client hanging up does not cancel it
            # for the others waiting on the same key.
            task = asyncio.create_task(self._make(key, card), name=f"card-{key[:12]}")
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._settle(key, t))
        return await asyncio.shield(task)

    def _settle(self, key: str, task: asyncio.Task[CardResult]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter already got it, or none is left

    async def _make(self, key: str, card: Card) -> CardResult:
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(self._executor, self._render, card, None)
        entry = Entry(
            body=body,
            media_type=card.media_type,
            etag=etag_for(body),
            created=time.time(),
            ttl=float(self.settings.cache_ttl),
        )
        try:
            await self.cache.set(key, entry)
        except Exception:  # a cache that cannot store must not fail the card
            log.exception("cache write failed for %s", key[:12])
        return CardResult(entry, self.settings.card_cache_control())

    def _render(self, card: Card, capture: Image.Image | None) -> bytes:
        self.renders += 1
        if self._processes is not None:
            layout = self.layouts.get(card.template)
            return self._processes.render(card, layout, capture, self.fonts)
        return make_card_bytes(card, self.layouts, self.fonts, capture)


def _process_renderer(settings: Settings, fonts: FontSet) -> ProcessRenderer | None:
    """Worker processes only when asked for: they win on pure rendering, but behind HTTP on two
    cores the threads served more cold cards per second, in less memory (README, Performance)."""
    if settings.render_processes == 0 or not ProcessRenderer.usable(fonts):
        return None
    return ProcessRenderer(settings.render_processes)


def load_layouts(settings: Settings) -> LayoutRegistry:
    """Built-in layouts, then the user's folder (whose files win on a name clash)."""
    dirs = [builtin_dir()]
    if settings.templates_dir:
        dirs.append(Path(settings.templates_dir))
    return LayoutRegistry.load(*dirs)
