"""Decoded captures kept in memory, so a new title on an already-captured page skips the decode.

A capture's bytes are named by their ETag (a hash of the bytes), so an entry can never go stale:
the same ETag is the same image. The store is bounded by decoded bytes and by entries, least
recently used first out; an image larger than the whole budget is decoded every time and never
kept. Images handed out are shared between render threads: the renderer never draws on a capture
(it fits a copy into the card), so sharing is safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from PIL import Image

#: Decoded bytes kept at most: a handful of full-page captures.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: Entries kept at most, whatever their size.
DEFAULT_MAX_ENTRIES = 32


def image_bytes(image: Image.Image) -> int:
    """What a decoded image holds in memory, near enough: pixels times bands."""
    return image.width * image.height * len(image.getbands())


class DecodedCaptures:
    """A small, thread-safe LRU of decoded captures keyed by the capture's ETag."""

    def __init__(
        self, max_bytes: int = DEFAULT_MAX_BYTES, max_entries: int = DEFAULT_MAX_ENTRIES
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._items: OrderedDict[str, tuple[Image.Image, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        """Decoded bytes held now."""
        return self._bytes

    def get(self, key: str) -> Image.Image | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: str, image: Image.Image) -> None:
        size = image_bytes(image)
        if not key or size > self.max_bytes or self.max_entries < 1:
            return  # too big to keep (or no key to keep it under): decoded each time
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (image, size)
            self._bytes += size
            while self._bytes > self.max_bytes or len(self._items) > self.max_entries:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
