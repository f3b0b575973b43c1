"""The Redis tier: one cache and one set of short locks shared by every worker and replica.

Entries are stored in the same verified form as on disk, with a Redis expiry at the end of their
stale grace period. Locks are ``SET NX PX`` leases with a random token, released only by their
holder (a compare-and-delete script), and expire by themselves if the holder dies.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from typing import Any

import redis.asyncio as aioredis

from . import Clock, CorruptEntry, Entry, decode_entry, encode_entry

log = logging.getLogger("ogshot.cache")

_PREFIX = "ogshot:"
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisCache:
    def __init__(self, client: Any, *, clock: Clock = time.time) -> None:
        self.client = client
        self.clock = clock

    @classmethod
    def from_url(
        cls, url: str, *, clock: Clock = time.time, timeout: float = 1.0, max_connections: int = 32
    ) -> RedisCache:
        # Short timeouts: a slow or absent Redis must cost a request little (the tiered cache
        # then stops asking it for a while). A blocking pool: under a burst, requests queue for
        # a connection (up to the timeout) instead of failing on an exhausted pool.
        pool: Any = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
        )
        return cls(aioredis.Redis(connection_pool=pool), clock=clock)

    async def get(self, key: str) -> Entry | None:
        blob = await self.client.get(_PREFIX + key)
        if blob is None:
            return None
        try:
            entry = decode_entry(bytes(blob), key)
        except CorruptEntry as exc:
            # One bad value (a newer release's format during a rolling deploy, a stray write)
            # is that key's problem alone: a miss, and gone, never the whole tier marked down.
            log.warning("dropping undecodable Redis entry %s: %s", key[:20], exc)
            await self.client.delete(_PREFIX + key)
            return None
        return entry if entry.usable(self.clock()) else None

    async def set(self, key: str, entry: Entry) -> None:
        ms = math.ceil((entry.expires() - self.clock()) * 1000)
        if ms <= 0:
            return
        await self.client.set(_PREFIX + key, encode_entry(key, entry), px=ms)

    async def acquire(self, key: str, ttl_ms: int) -> str | None:
        token = secrets.token_hex(12)
        ok = await self.client.set(_PREFIX + "lock:" + key, token, nx=True, px=ttl_ms)
        return token if ok else None

    async def release(self, key: str, token: str) -> None:
        await self.client.eval(_RELEASE, 1, _PREFIX + "lock:" + key, token)

    async def ping(self) -> None:
        """Raises unless Redis answers (readiness)."""
        await self.client.ping()

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.client.connection_pool.disconnect()
