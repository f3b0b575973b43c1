"""Result caches: a small protocol and the tiers behind it.

An :class:`Entry` is a finished response body with the metadata needed to answer conditional
requests without touching the bytes again (its ETag is computed once, when it is made).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from cachetools import LRUCache


@dataclass(frozen=True)
class Entry:
    body: bytes
    media_type: str
    etag: str
    created: float = field(default_factory=time.time)
    #: Seconds the entry is fresh; after that a tier may drop it.
    ttl: float = 86400.0

    def fresh(self, now: float | None = None) -> bool:
        return ((time.time() if now is None else now) - self.created) < self.ttl


class Cache(Protocol):
    async def get(self, key: str) -> Entry | None: ...

    async def set(self, key: str, entry: Entry) -> None: ...


class NullCache:
    """No caching at all (``OGSHOT_CACHE_MEMORY_MB=0`` and no other tier)."""

    async def get(self, key: str) -> Entry | None:
        return None

    async def set(self, key: str, entry: Entry) -> None:
        return None


class MemoryCache:
    """An in-process LRU bounded by the bytes of the images it holds."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lru: LRUCache[str, Entry] = LRUCache(maxsize=max_bytes, getsizeof=_entry_size)

    async def get(self, key: str) -> Entry | None:
        entry = self._lru.get(key)
        if entry is not None and not entry.fresh():
            self._lru.pop(key, None)
            return None
        return entry

    async def set(self, key: str, entry: Entry) -> None:
        if _entry_size(entry) > self.max_bytes:
            return
        self._lru[key] = entry

    @property
    def bytes_used(self) -> int:
        return int(self._lru.currsize)

    def __len__(self) -> int:
        return len(self._lru)


def _entry_size(entry: Entry) -> int:
    # The body dominates; a fixed allowance covers the entry object and key.
    return len(entry.body) + 256
