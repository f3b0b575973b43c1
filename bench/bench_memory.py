"""Resident memory after many distinct cards: the memory cache must bound it.

    python -m bench.bench_memory [--cards 10000]

A fresh process renders ``--cards`` distinct small-title PNG cards through the service, with
the memory cache at its default budget, four at a time; it reports its RSS and peak RSS
against that budget.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from typing import Any


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def _fill(cards: int) -> dict[str, Any]:
    from ogshot.cache import MemoryCache
    from ogshot.card import Card
    from ogshot.service import CardService
    from ogshot.settings import Settings

    settings = Settings(_env_file=None, capture="none")  # type: ignore[call-arg]
    service = CardService(settings)
    start_rss = _rss_mb()
    t0 = time.perf_counter()
    batch = 4
    for first in range(0, cards, batch):
        await asyncio.gather(
            *(
                service.card(Card(title=f"Card {i}", site="memory.test"))
                for i in range(first, min(cards, first + batch))
            )
        )
    elapsed = time.perf_counter() - t0
    cache = service.cache
    await service.aclose()
    budget_mb = settings.cache_memory_bytes / 2**20
    rss = _rss_mb()
    return {
        "cards": cards,
        "seconds": elapsed,
        "budget_mb": budget_mb,
        "cached_mb": cache.bytes_used / 2**20 if isinstance(cache, MemoryCache) else 0.0,
        "start_rss_mb": start_rss,
        "rss_mb": rss,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "over_budget_mb": rss - budget_mb,
    }


def figures(cards: int = 10000) -> dict[str, Any]:
    """Run the fill in a fresh interpreter, so nothing else in this process counts."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_memory", "--child", "--cards", str(cards)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=10000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_fill(args.cards))))
        return
    fig = figures(args.cards)
    print(
        f"{fig['cards']} cards in {fig['seconds']:.0f} s: RSS {fig['rss_mb']:.0f} MB "
        f"(peak {fig['peak_rss_mb']:.0f} MB) for a cache budget of {fig['budget_mb']:.0f} MB "
        f"holding {fig['cached_mb']:.0f} MB: {fig['over_budget_mb']:+.0f} MB over the budget"
    )
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
