"""Cache tiers: the verified entry format, memory, disk and Redis tiers, and the tiered stack."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ogshot.cache import (
    CorruptEntry,
    Entry,
    MemoryCache,
    NullCache,
    TieredCache,
    decode_entry,
    encode_entry,
    make_cache,
)
from ogshot.cache.disk import DiskCache
from ogshot.cache.redis_tier import RedisCache
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.service import CardService
from ogshot.settings import Settings


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def entry(body: bytes = b"x" * 100, **kw: object) -> Entry:
    fields: dict[str, object] = {
        "media_type": "image/png",
        "etag": '"e"',
        "created": 1_000_000.0,
        "ttl": 60.0,
        "grace": 30.0,
    }
    fields.update(kw)
    return Entry(body=body, **fields)  # type: ignore[arg-type]


# --- The serialised form ---------------------------------------------------------------------


def test_encoded_entry_round_trips_with_all_metadata() -> None:
    e = entry(b"\x89PNG" + bytes(range(256)) * 10, fallback="capture_timeout", etag='"abc"')
    assert decode_entry(encode_entry("card:k", e), "card:k") == e


@pytest.mark.parametrize("cut", [0, 1, 10, 33, 60, -1, -100])
def test_truncated_entry_is_refused(cut: int) -> None:
    blob = encode_entry("k", entry(b"y" * 500))
    with pytest.raises(CorruptEntry):
        decode_entry(blob[:cut])


def test_flipped_byte_anywhere_is_refused() -> None:
    blob = bytearray(encode_entry("k", entry(b"z" * 300)))
    for pos in (0, 8, 20, 40, len(blob) // 2, len(blob) - 1):
        damaged = bytearray(blob)
        damaged[pos] ^= 0x40
        with pytest.raises(CorruptEntry):
            decode_entry(bytes(damaged))


def test_entry_stored_under_another_key_is_refused() -> None:
    with pytest.raises(CorruptEntry, match="another key"):
        decode_entry(encode_entry("card:a", entry()), "card:b")


# --- Memory ------------------------------------------------------------------------------------


def test_memory_tier_stays_within_its_bound_after_10k_cards() -> None:
    bound = 1024 * 1024
    cache = MemoryCache(bound)
    body = b"b" * 10_000

    async def fill() -> None:
        for i in range(10_000):
            await cache.set(f"card:{i}", entry(body, etag=f'"{i}"', created=time.time()))
            assert cache.bytes_used <= bound

    asyncio.run(fill())
    assert 50 <= len(cache) <= bound // 10_000
    assert cache.peek("card:9999") is not None  # the newest stay
    assert cache.peek("card:0") is None  # the oldest went


def test_memory_tier_refuses_an_entry_larger_than_its_bound() -> None:
    cache = MemoryCache(1000)
    asyncio.run(cache.set("k", entry(b"x" * 2000, created=time.time())))
    assert len(cache) == 0


def test_memory_tier_keeps_stale_entries_for_their_grace_then_drops_them() -> None:
    clock = Clock()
    cache = MemoryCache(10**6, clock=clock)
    asyncio.run(cache.set("k", entry(created=clock.now, ttl=60, grace=30)))
    clock.now += 80  # stale, inside grace
    got = cache.peek("k")
    assert got is not None and not got.fresh(clock.now)
    clock.now += 20  # past grace
    assert cache.peek("k") is None
    assert len(cache) == 0


# --- Disk --------------------------------------------------------------------------------------


def test_disk_tier_round_trip_and_survives_a_new_instance(tmp_path: Path) -> None:
    clock = Clock()
    e = entry(b"card-bytes" * 1000, created=clock.now, fallback=None)
    DiskCache(tmp_path, 10**7, clock=clock).set_sync("card:k", e)
    again = DiskCache(tmp_path, 10**7, clock=clock)
    assert again.get_sync("card:k") == e
    assert again.bytes_used > 10_000
    assert again.get_sync("card:other") is None


def test_disk_tier_drops_expired_entries(tmp_path: Path) -> None:
    clock = Clock()
    cache = DiskCache(tmp_path, 10**7, clock=clock)
    cache.set_sync("k", entry(created=clock.now, ttl=60, grace=30))
    clock.now += 91
    assert cache.get_sync("k") is None
    assert not cache.path_for("k").exists()


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_disk_tier_never_serves_a_damaged_file(tmp_path: Path, damage: str) -> None:
    clock = Clock()
    cache = DiskCache(tmp_path, 10**7, clock=clock)
    cache.set_sync("k", entry(b"q" * 5000, created=clock.now))
    path = cache.path_for("k")
    blob = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(blob[: len(blob) - 100]))
    elif damage == "flip":
        blob[len(blob) - 10] ^= 1
        path.write_bytes(bytes(blob))
    else:
        path.write_bytes(b"")
    assert cache.get_sync("k") is None
    assert not path.exists()


def test_disk_tier_evicts_least_recently_used_to_stay_in_bound(tmp_path: Path) -> None:
    clock = Clock()
    bound = 1_000_000
    cache = DiskCache(tmp_path, bound, clock=clock)
    for i in range(40):
        cache.set_sync(f"k{i}", entry(os.urandom(100_000), created=clock.now))
        on_disk = sum(p.stat().st_size for p in tmp_path.rglob("*.entry"))
        assert on_disk <= bound + 110_000  # at most the one write that triggers eviction
    on_disk = sum(p.stat().st_size for p in tmp_path.rglob("*.entry"))
    assert on_disk <= bound
    assert cache.get_sync("k39") is not None
    assert cache.get_sync("k0") is None


def test_disk_tier_removes_orphaned_temporary_files_at_start(tmp_path: Path) -> None:
    DiskCache(tmp_path, 10**6)
    sub = tmp_path / "ab"
    sub.mkdir()
    old = sub / ".tmp-dead"
    old.write_bytes(b"half an entry")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    young = sub / ".tmp-live"
    young.write_bytes(b"another worker is writing this")
    DiskCache(tmp_path, 10**6)
    assert not old.exists()
    assert young.exists()


WRITER = textwrap.dedent(
    """
    import sys, time
    from ogshot.cache import Entry
    from ogshot.cache.disk import DiskCache

    cache = DiskCache(sys.argv[1], 10**10)
    size = int(sys.argv[2])
    i = 0
    while True:
        key = f"card:{i % 4}"
        body = bytes([i % 251]) * size
        cache.set_sync(key, Entry(body, "image/png", f'"{i}"', time.time(), 3600.0, 0.0))
        if i == 0:
            print("ready", flush=True)
        i += 1
    """
)


def test_writer_killed_mid_write_leaves_nothing_that_serves_bad_bytes(tmp_path: Path) -> None:
    size = 8 * 1024 * 1024
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), str(size)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        # Kill while a later write is under way: its temporary file exists.
        deadline = time.monotonic() + 20
        while not list(tmp_path.rglob(".tmp-*")) and time.monotonic() < deadline:
            time.sleep(0.001)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert list(tmp_path.rglob(".tmp-*")), "the writer was not caught mid-write"
    cache = DiskCache(tmp_path, 10**10)
    served = 0
    for k in range(4):
        got = cache.get_sync(f"card:{k}")
        if got is None:
            continue
        served += 1
        i = int(got.etag.strip('"'))
        assert i % 4 == k
        assert got.body == bytes([i % 251]) * size  # whole and the writer's own bytes
    assert served >= 1


# --- Redis -------------------------------------------------------------------------------------


def test_redis_tier_round_trip_expiry_and_locks(redis_url: str) -> None:
    async def run() -> None:
        clock = Clock(time.time())
        cache = RedisCache.from_url(redis_url, clock=clock)
        try:
            e = entry(b"r" * 4000, created=clock.now, ttl=60, grace=30, fallback="blocked")
            await cache.set("card:k", e)
            assert await cache.get("card:k") == e
            pttl = await cache.client.pttl("ogshot:card:k")
            assert 85_000 < pttl <= 90_000  # expires at the end of its grace
            assert await cache.get("card:nope") is None

            token = await cache.acquire("card:k", 5000)
            assert token is not None
            assert await cache.acquire("card:k", 5000) is None
            await cache.release("card:k", "not-the-holder")
            assert await cache.acquire("card:k", 5000) is None
            await cache.release("card:k", token)
            assert await cache.acquire("card:k", 5000) is not None
        finally:
            await cache.aclose()

    asyncio.run(run())


# --- The stack ---------------------------------------------------------------------------------


class Broken:
    def __init__(self) -> None:
        self.calls = 0

    async def get(self, key: str) -> Entry | None:
        self.calls += 1
        raise ConnectionError("down")

    async def set(self, key: str, entry: Entry) -> None:
        self.calls += 1
        raise ConnectionError("down")


def test_lower_tier_hit_fills_the_memory_tier(tmp_path: Path) -> None:
    async def run() -> None:
        clock = Clock(time.time())
        disk = DiskCache(tmp_path, 10**7, clock=clock)
        e = entry(created=clock.now)
        disk.set_sync("k", e)
        memory = MemoryCache(10**6, clock=clock)
        stack = TieredCache([memory, disk])
        assert stack.peek("k") is None
        assert await stack.get("k") == e
        assert stack.peek("k") == e

    asyncio.run(run())


def test_a_failing_tier_is_logged_skipped_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def run() -> None:
        now = [0.0]
        broken = Broken()
        memory = MemoryCache(10**6)
        stack = TieredCache([memory, broken], backoff=5, clock=lambda: now[0])
        assert await stack.get("k") is None
        await stack.set("k", entry(created=time.time()))
        assert memory.peek("k") is not None  # the good tier still got it
        assert broken.calls == 1  # the write was skipped: the tier is resting
        now[0] = 6.0
        assert await stack.get_lower("k") is None
        assert broken.calls == 2

    asyncio.run(run())
    assert "failed in Broken" in caplog.text


def test_a_redis_that_is_down_costs_nothing_but_a_log_line() -> None:
    from .conftest import free_port

    async def run() -> None:
        down = RedisCache.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
        stack = TieredCache([MemoryCache(10**6), down], locks=down)
        await stack.set("k", entry(created=time.time()))
        assert await stack.get("k") is not None  # from memory
        assert await stack.get_lower("k") is None
        await stack.aclose()

    asyncio.run(run())


def test_make_cache_picks_tiers_from_settings(tmp_path: Path, redis_url: str) -> None:
    def tiers(**kw: object) -> list[str]:
        s = Settings(_env_file=None, **kw)  # type: ignore[call-arg]
        return [type(t).__name__ for t in make_cache(s).tiers]

    assert tiers() == ["MemoryCache"]
    assert tiers(cache_memory_mb=0) == []
    assert tiers(cache_dir=str(tmp_path)) == ["MemoryCache", "DiskCache"]
    assert tiers(cache_memory_mb=0, redis_url=redis_url) == ["RedisCache"]
    stack = make_cache(Settings(_env_file=None, redis_url=redis_url))  # type: ignore[call-arg]
    assert isinstance(stack.locks, RedisCache)
    asyncio.run(stack.aclose())


def test_null_cache_keeps_nothing() -> None:
    async def run() -> Entry | None:
        c = NullCache()
        await c.set("k", entry())
        return await c.get("k")

    assert asyncio.run(run()) is None


# --- Through the service -----------------------------------------------------------------------


def test_restart_keeps_disk_entries(
    tmp_path: Path, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    from ogshot.card import parse_card

    settings = Settings(_env_file=None, capture="none", cache_dir=str(tmp_path))  # type: ignore[call-arg]
    card = parse_card({"title": "Kept across restarts"})

    async def serve_once() -> tuple[str, bytes, int, str]:
        svc = CardService(settings, layouts=layouts, fonts=fonts)
        try:
            r = await svc.card(card)
            return r.entry.etag, r.entry.body, svc.renders, r.source
        finally:
            await svc.aclose()

    etag1, body1, renders1, source1 = asyncio.run(serve_once())
    etag2, body2, renders2, source2 = asyncio.run(serve_once())
    assert (renders1, source1) == (1, "miss")
    assert (renders2, source2) == (0, "hit")
    assert (etag2, body2) == (etag1, body1)


def test_only_a_memory_tier_without_shared_leases_counts_as_memory_only(tmp_path: Path) -> None:
    """The service skips the lower tiers and the lease when the cache is memory only: any tier
    below memory, or leases another process could take, must say otherwise."""

    class Leases:
        async def acquire(self, key: str, ttl_ms: int) -> str | None:
            return "token"

        async def release(self, key: str, token: str) -> None:
            return None

    memory = MemoryCache(10**6)
    assert TieredCache([memory]).in_memory_only
    assert TieredCache([]).in_memory_only
    assert not TieredCache([memory, DiskCache(str(tmp_path), 10**6)]).in_memory_only
    assert not TieredCache([DiskCache(str(tmp_path), 10**6)]).in_memory_only
    assert not TieredCache([memory], locks=Leases()).in_memory_only
