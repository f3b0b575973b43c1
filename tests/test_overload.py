"""Overload on loopback: a burst of cold cards larger than the queue, against a real server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from .conftest import ogshot_serve

CONCURRENCY, QUEUE, BURST = 2, 4, 48


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _server_pid(base: str) -> int:
    """The pid of the process listening on ``base``'s port (ogshot serve, one worker)."""
    port = int(base.rsplit(":", 1)[1])
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "0A":  # LISTEN
                inodes.add(parts[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                link = str(fd.readlink())
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(proc.name)
        except OSError:
            continue
    raise AssertionError("no process listens there")


def test_a_burst_beyond_the_queue_gets_200s_and_503s_while_hits_keep_answering(
    tmp_path: Path,
) -> None:
    env = {
        "OGSHOT_CAPTURE": "none",
        "OGSHOT_RENDER_CONCURRENCY": str(CONCURRENCY),
        "OGSHOT_RENDER_QUEUE": str(QUEUE),
        "OGSHOT_RATE_LIMIT": "off",
    }
    with ogshot_serve(tmp_path, env=env) as base:
        hit = "/og.png?title=Already+made"
        assert httpx.get(base + hit, timeout=30).status_code == 200
        pid = _server_pid(base)
        rss_before = _rss_mb(pid)

        async def scene() -> tuple[list[httpx.Response], list[tuple[int, str, bool]]]:
            limits = httpx.Limits(max_connections=BURST + 4)
            async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
                cold = [
                    asyncio.create_task(http.get(f"/og.png?title=Cold+card+{i}&subtitle=burst"))
                    for i in range(BURST)
                ]
                hits: list[tuple[int, str, bool]] = []
                await asyncio.sleep(0.05)
                for _ in range(10):
                    r = await http.get(hit)
                    # Was the burst still in progress when this hit was answered?
                    busy = not all(t.done() for t in cold)
                    hits.append((r.status_code, r.headers.get("x-ogshot-cache", ""), busy))
                return list(await asyncio.gather(*cold)), hits

        answers, hits = asyncio.run(scene())
        codes = [r.status_code for r in answers]
        assert set(codes) <= {200, 503}, codes
        assert codes.count(200) >= CONCURRENCY
        assert codes.count(503) >= 1  # more arrived than the gate and the queue hold
        for r in answers:
            if r.status_code == 503:
                assert r.json()["error"] == "overloaded"
                assert r.headers["retry-after"] == "1"
                assert r.headers["cache-control"] == "no-store"
            else:
                assert r.headers["content-type"] == "image/png"
        # Hits were answered from the cache while cold cards were still being made.
        assert all(code == 200 and source == "hit" for code, source, _ in hits), hits
        assert any(busy for _, _, busy in hits), "the burst ended before any hit was answered"
        # Memory stays bounded: refusals cost nothing, at most the gate's worth was made.
        assert _rss_mb(pid) - rss_before < 150
        # Normal afterwards: a new card is made, nothing is queued.
        after = httpx.get(f"{base}/og.png?title=After+the+burst", timeout=30)
        assert after.status_code == 200 and after.headers["x-ogshot-cache"] == "miss"
