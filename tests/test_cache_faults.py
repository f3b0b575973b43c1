"""Shared-tier faults stay cheap and local: a hung Redis, one bad value, the disk's estimate."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ogshot.cache import Entry, TieredCache, encode_entry
from ogshot.cache.disk import DiskCache
from ogshot.cache.redis_tier import RedisCache
from ogshot.card import parse_card
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.service import CardService
from ogshot.settings import Settings

from .conftest import redis_process


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def entry(created: float, body: bytes = b"x" * 1000, ttl: float = 60.0) -> Entry:
    return Entry(body=body, media_type="image/png", etag='"e"', created=created, ttl=ttl)


# --- A Redis that hangs ------------------------------------------------------------------------


@pytest.fixture
def hung_redis(tmp_path: Path) -> Iterator[str]:
    """A real redis-server of this test's own, then paused (``SIGSTOP``): it accepts connections
    and never answers. Resumed and stopped in teardown."""
    with redis_process(tmp_path) as (url, proc):
        os.kill(proc.pid, signal.SIGSTOP)
        yield url


def test_a_hung_redis_costs_one_timeout_then_nothing_per_miss(
    hung_redis: str, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    settings = Settings(_env_file=None, capture="none", redis_url=hung_redis)  # type: ignore[call-arg]
    svc = CardService(settings, layouts=layouts, fonts=fonts)
    cards = [parse_card({"title": f"Hung Redis {i}"}) for i in range(5)]

    async def run() -> list[tuple[float, str]]:
        out = []
        try:
            for card in cards:  # five distinct misses
                t = time.monotonic()
                result = await svc.card(card)
                out.append((time.monotonic() - t, result.source))
        finally:
            await svc.aclose()
        return out

    timings = asyncio.run(run())
    assert [source for _, source in timings] == ["miss"] * 5
    # The Redis client's timeout is 1 s. The first miss pays for it once; then the tier rests
    # for its backoff, and leases rest with it: a miss costs a render, not a timeout.
    assert timings[0][0] < 3.0
    assert max(seconds for seconds, _ in timings[1:]) < 0.8, timings


def test_hung_redis_leases_rest_with_the_tier() -> None:
    # The stack's own lease calls share the tier's backoff: after one failure, none go out.
    class Hanging:
        def __init__(self) -> None:
            self.calls = 0

        async def get(self, key: str) -> Entry | None:
            self.calls += 1
            raise TimeoutError("no answer")

        async def set(self, key: str, entry: Entry) -> None:
            self.calls += 1
            raise TimeoutError("no answer")

        async def acquire(self, key: str, ttl_ms: int) -> str | None:
            self.calls += 1
            raise TimeoutError("no answer")

        async def release(self, key: str, token: str) -> None:
            self.calls += 1
            raise TimeoutError("no answer")

    async def run() -> tuple[int, list[str | None]]:
        shared = Hanging()
        stack = TieredCache([shared], locks=shared, backoff=5, clock=lambda: 0.0)
        tokens = []
        for i in range(3):
            token = await stack.acquire(f"k{i}", 1000)
            tokens.append(token)
            assert await stack.get_lower(f"k{i}") is None
            await stack.release(f"k{i}", token or "")
        return shared.calls, tokens

    calls, tokens = asyncio.run(run())
    assert calls == 1
    assert tokens == ["local"] * 3  # made here, uncoordinated, while the tier rests


# --- One undecodable value -----------------------------------------------------------------------


def test_one_undecodable_redis_value_is_a_miss_and_deleted_not_a_tier_down(
    redis_url: str,
) -> None:
    async def run() -> tuple[Entry | None, int, Entry | None]:
        now = time.time()
        cache = RedisCache.from_url(redis_url, clock=Clock(now))
        stack = TieredCache([cache], locks=cache)
        raw = redis.Redis.from_url(redis_url)
        try:
            good = entry(now)
            await stack.set("card:good", good)
            # As a newer release might write it during a rolling deploy: another format.
            raw.set("ogshot:card:new", b"OGSC\x02\n" + encode_entry("card:new", good)[6:])
            bad = await stack.get("card:new")
            left = int(raw.exists("ogshot:card:new"))
            still = await stack.get("card:good")  # the tier is still asked
            return bad, left, still
        finally:
            raw.close()
            await stack.aclose()

    bad, left, still = asyncio.run(run())
    assert bad is None
    assert left == 0
    assert still is not None and still.body == b"x" * 1000


# --- The disk tier's size estimate ---------------------------------------------------------------


def _on_disk(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.entry"))


def test_disk_overwrites_do_not_inflate_the_size_estimate(tmp_path: Path) -> None:
    now = time.time()
    disk = DiskCache(tmp_path, 10**8, clock=Clock(now))
    for i in range(50):
        disk.set_sync("card:same", entry(now, body=bytes([i]) * (1000 + i)))
    assert disk.bytes_used == _on_disk(tmp_path) > 0


def test_disk_expired_and_damaged_unlinks_leave_the_size_estimate(tmp_path: Path) -> None:
    clock = Clock(time.time())
    disk = DiskCache(tmp_path, 10**8, clock=clock)
    for i in range(10):
        disk.set_sync(f"card:{i}", entry(clock.now, ttl=60))
    assert disk.bytes_used == _on_disk(tmp_path) > 0
    # Damage one file, let the rest expire: every read deletes its file.
    damaged = bytearray(disk.path_for("card:0").read_bytes())
    damaged[-1] ^= 0xFF
    disk.path_for("card:0").write_bytes(bytes(damaged))
    assert disk.get_sync("card:0") is None
    clock.now += 120
    assert all(disk.get_sync(f"card:{i}") is None for i in range(1, 10))
    assert _on_disk(tmp_path) == 0
    assert disk.bytes_used == 0
