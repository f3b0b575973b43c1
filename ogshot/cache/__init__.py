"""Result caches: a small protocol and the tiers behind it.

An :class:`Entry` is a finished body with the metadata needed to answer requests without touching
the bytes again: its media type, its ETag (computed once, when it is made), when it was made, how
long it is fresh, how long past that it may still be served stale, and why it is a fallback, if it
is one. Every tier keeps that metadata with the bytes, so a hit in any tier answers a 304 at once.

Tiers, chosen by settings (:func:`make_cache`)::

    memory  (OGSHOT_CACHE_MEMORY_MB)   per process, LRU bounded by bytes
    disk    (OGSHOT_CACHE_DIR)         per machine, atomic files, survives restarts
    redis   (OGSHOT_REDIS_URL)         shared by every worker and replica; also lends locks

:class:`TieredCache` reads them top-down and fills the upper tiers on a lower hit. A tier that fails
is logged and skipped for a moment; a cache problem never fails a request.

Keys are arbitrary strings: cards and captures live side by side under distinct prefixes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cachetools import LRUCache

from .. import metrics
from ..settings import Settings

log = logging.getLogger("ogshot.cache")

Clock = Callable[[], float]


@dataclass(frozen=True)
class Entry:
    body: bytes
    media_type: str
    etag: str
    created: float = field(default_factory=time.time)
    #: Seconds the entry is fresh.
    ttl: float = 86400.0
    #: Seconds past ``ttl`` that the entry is kept, to be served stale; then a tier drops it.
    grace: float = 0.0
    #: Why the body was made without its capture; None for a complete result.
    fallback: str | None = None

    def age(self, now: float) -> float:
        return now - self.created

    def fresh(self, now: float | None = None) -> bool:
        return ((time.time() if now is None else now) - self.created) < self.ttl

    def usable(self, now: float) -> bool:
        """Fresh, or still inside its stale grace period."""
        return now - self.created < self.ttl + self.grace

    def expires(self) -> float:
        """When every tier may forget the entry."""
        return self.created + self.ttl + self.grace


class Cache(Protocol):
    async def get(self, key: str) -> Entry | None: ...

    async def set(self, key: str, entry: Entry) -> None: ...


class Locks(Protocol):
    """Short leases that let one producer among many processes make a result.

    ``acquire`` returns a token when the caller holds the lease, None when another holder has it.
    """

    async def acquire(self, key: str, ttl_ms: int) -> str | None: ...

    async def release(self, key: str, token: str) -> None: ...


class CorruptEntry(ValueError):
    """Bytes that do not decode to a whole, verified entry."""


# --- Serialised form, shared by the disk and Redis tiers ---------------------------------------
#
#   magic (6) | meta length (u32) | body length (u64) | blake2b-128 of meta+body (16) | meta | body
#
# The lengths catch truncation, the digest catches torn or flipped bytes: a reader either gets the
# whole entry that a writer meant, or nothing.

_MAGIC = b"OGSC\x01\n"
_HEAD = struct.Struct(">6sIQ16s")


def encode_entry(key: str, entry: Entry) -> bytes:
    meta = json.dumps(
        {
            "key": key,
            "media_type": entry.media_type,
            "etag": entry.etag,
            "created": entry.created,
            "ttl": entry.ttl,
            "grace": entry.grace,
            "fallback": entry.fallback,
        },
        separators=(",", ":"),
    ).encode()
    digest = hashlib.blake2b(meta, digest_size=16)
    digest.update(entry.body)
    return b"".join(
        (_HEAD.pack(_MAGIC, len(meta), len(entry.body), digest.digest()), meta, entry.body)
    )


def decode_entry(blob: bytes, key: str | None = None) -> Entry:
    """The entry in ``blob``; raises :class:`CorruptEntry` unless it is whole and verified."""
    if len(blob) < _HEAD.size:
        raise CorruptEntry("shorter than a header")
    magic, meta_len, body_len, want = _HEAD.unpack_from(blob)
    if magic != _MAGIC:
        raise CorruptEntry("bad magic")
    if len(blob) != _HEAD.size + meta_len + body_len:
        raise CorruptEntry("length does not match the header")
    view = memoryview(blob)
    meta_raw = view[_HEAD.size : _HEAD.size + meta_len]
    body = view[_HEAD.size + meta_len :]
    digest = hashlib.blake2b(meta_raw, digest_size=16)
    digest.update(body)
    if digest.digest() != want:
        raise CorruptEntry("checksum mismatch")
    try:
        meta = json.loads(bytes(meta_raw))
        if key is not None and meta["key"] != key:
            raise CorruptEntry("entry belongs to another key")
        return Entry(
            body=bytes(body),
            media_type=str(meta["media_type"]),
            etag=str(meta["etag"]),
            created=float(meta["created"]),
            ttl=float(meta["ttl"]),
            grace=float(meta["grace"]),
            fallback=None if meta["fallback"] is None else str(meta["fallback"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptEntry(f"bad metadata: {exc}") from None


# --- Tiers ---------------------------------------------------------------------------------------


class NullCache:
    """No caching at all: every read misses, every write is dropped."""

    async def get(self, key: str) -> Entry | None:
        return None

    async def set(self, key: str, entry: Entry) -> None:
        return None


#: The token of a lease taken without any shared lock (none configured, or the tier is down).
LOCAL = "local"


class NullLocks:
    """One process alone: the in-process singleflight is all the coordination there is."""

    async def acquire(self, key: str, ttl_ms: int) -> str | None:
        return LOCAL

    async def release(self, key: str, token: str) -> None:
        return None


class MemoryCache:
    """An in-process LRU bounded by the bytes of the bodies it holds."""

    def __init__(self, max_bytes: int, *, clock: Clock = time.time) -> None:
        self.max_bytes = max_bytes
        self.clock = clock
        self._lru: LRUCache[str, Entry] = LRUCache(maxsize=max_bytes, getsizeof=_entry_size)

    def peek(self, key: str) -> Entry | None:
        """Synchronous read for the hot path: the entry if it is still usable."""
        entry = self._lru.get(key)
        if entry is not None and not entry.usable(self.clock()):
            self._lru.pop(key, None)
            return None
        return entry

    async def get(self, key: str) -> Entry | None:
        return self.peek(key)

    async def set(self, key: str, entry: Entry) -> None:
        if _entry_size(entry) > self.max_bytes:
            return
        self._lru[key] = entry

    @property
    def bytes_used(self) -> int:
        return int(self._lru.currsize)

    def __len__(self) -> int:
        return len(self._lru)


def _tier_name(tier: Cache) -> str:
    return type(tier).__name__.removesuffix("Cache").lower() or "cache"


def _entry_size(entry: Entry) -> int:
    # The body dominates; a fixed allowance covers the entry object, its strings and the key.
    return len(entry.body) + 512


class TieredCache:
    """Reads top-down, fills upper tiers on a lower hit, writes everywhere; never raises.

    A tier that fails is skipped for ``backoff`` seconds, so a Redis that is down costs one
    timeout per window rather than one per request.
    """

    def __init__(
        self,
        tiers: Sequence[Cache],
        *,
        locks: Locks | None = None,
        backoff: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.tiers = list(tiers)
        self.locks: Locks = locks or NullLocks()
        self.memory = next((t for t in self.tiers if isinstance(t, MemoryCache)), None)
        #: Whether entries live in this process's memory alone (or nowhere) and no other
        #: process takes leases: then no tier below memory is worth a look and no lease a wait.
        self.in_memory_only = isinstance(self.locks, NullLocks) and all(
            t is self.memory for t in self.tiers
        )
        self.backoff = backoff
        self._clock = clock
        self._down_until = [0.0] * len(self.tiers)
        # The locks share their tier's backoff (Redis lends both): a Redis that hangs is
        # skipped for reads, writes and leases alike. Locks of their own get a slot of their own.
        lender: object = self.locks
        held = [i for i, tier in enumerate(self.tiers) if tier is lender]
        if held:
            self._lock_slot = held[0]
        else:
            self._lock_slot = len(self._down_until)
            self._down_until.append(0.0)

    def peek(self, key: str) -> Entry | None:
        """The memory tier alone, synchronously: the hot path asks nothing slower."""
        return self.memory.peek(key) if self.memory is not None else None

    async def get(self, key: str) -> Entry | None:
        return await self._read(key, skip_memory=False)

    async def get_lower(self, key: str) -> Entry | None:
        """Skip the memory tier: what other processes may have stored meanwhile."""
        return await self._read(key, skip_memory=True)

    async def _read(self, key: str, *, skip_memory: bool) -> Entry | None:
        """The first tier's entry, copied into every tier above it."""
        for i, tier in enumerate(self.tiers):
            if (skip_memory and tier is self.memory) or not self._up(i):
                continue
            try:
                entry = await tier.get(key)
            except Exception as exc:
                self._failed(i, "read", exc)
                continue
            metrics.cache_read(_tier_name(tier), key, entry, time.time())
            if entry is not None:
                for upper in range(i):
                    await self._set_one(upper, key, entry)
                return entry
        return None

    async def set(self, key: str, entry: Entry) -> None:
        for i in range(len(self.tiers)):
            await self._set_one(i, key, entry)

    async def _set_one(self, i: int, key: str, entry: Entry) -> None:
        if not self._up(i):
            return
        try:
            await self.tiers[i].set(key, entry)
        except Exception as exc:
            self._failed(i, "write", exc)

    async def acquire(self, key: str, ttl_ms: int) -> str | None:
        """A lease on ``key`` (see :class:`Locks`), or :data:`LOCAL` when the lock tier is down or
        fails: no coordination for a moment rather than a timeout on every miss."""
        if not self._up(self._lock_slot):
            return LOCAL
        try:
            return await self.locks.acquire(key, ttl_ms)
        except Exception as exc:
            self._failed(self._lock_slot, "lock", exc)
            return LOCAL

    async def release(self, key: str, token: str) -> None:
        if token == LOCAL or not self._up(self._lock_slot):
            return  # nothing was taken, or the lease expires by itself
        try:
            await self.locks.release(key, token)
        except Exception as exc:
            self._failed(self._lock_slot, "lock release", exc)

    def _up(self, i: int) -> bool:
        return self._down_until[i] <= self._clock()

    def _failed(self, i: int, what: str, exc: Exception) -> None:
        name = type(self.tiers[i] if i < len(self.tiers) else self.locks).__name__
        log.warning("cache %s failed in %s (skipped for %.0f s): %r", what, name, self.backoff, exc)
        self._down_until[i] = self._clock() + self.backoff

    async def aclose(self) -> None:
        for tier in self.tiers:
            close = getattr(tier, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception as exc:  # closing a broken connection is not worth a crash
                    log.warning("closing %s failed: %r", type(tier).__name__, exc)


def make_cache(settings: Settings, *, clock: Clock = time.time) -> TieredCache:
    """The tiers the settings ask for, top-down; an empty stack caches nothing."""
    tiers: list[Cache] = []
    locks: Locks | None = None
    if settings.cache_memory_bytes > 0:
        tiers.append(MemoryCache(settings.cache_memory_bytes, clock=clock))
    if settings.cache_dir:
        from .disk import DiskCache

        tiers.append(
            DiskCache(settings.cache_dir, int(settings.cache_dir_mb * 1024 * 1024), clock=clock)
        )
    redis_url = settings.redis_url.get_secret_value()
    if redis_url:
        from .redis_tier import RedisCache

        shared = RedisCache.from_url(redis_url, clock=clock)
        tiers.append(shared)
        locks = shared
    return TieredCache(tiers, locks=locks)
