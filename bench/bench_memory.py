"""Resident memory after many distinct cards: the memory cache must bound it.

    python -m bench.bench_memory [--cards 10000]

A fresh process renders ``--cards`` distinct small-title PNG cards through the service, with
the memory cache at its default budget, four at a time; it reports the RSS of the service
and of its render worker processes, against that budget.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any


def _rss_mb(pid: int | str = "self") -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                children = [int(c) for c in fh.read().split()]
        except FileNotFoundError:
            continue
        for child in children:
            found.append(child)
            found.extend(_descendants(child))
    return found


def _tree_rss_mb() -> tuple[float, float]:
    """RSS of this process, and of its descendants (render workers and their helpers)."""
    return _rss_mb(), sum(_rss_mb(pid) for pid in _descendants(os.getpid()))


async def _fill(cards: int) -> dict[str, Any]:
    from ogshot.card import Card
    from ogshot.service import CardService
    from ogshot.settings import Settings

    # One client making thousands of cards: no budget (OGSHOT_RATE_LIMIT) would let it.
    settings = Settings(_env_file=None, capture="none", rate_limit="off")  # type: ignore[call-arg]
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
    memory = service.cache.memory
    own, workers = _tree_rss_mb()
    await service.aclose()
    budget_mb = settings.cache_memory_bytes / 2**20
    rss = own + workers
    return {
        "cards": cards,
        "seconds": elapsed,
        "budget_mb": budget_mb,
        "cached_mb": memory.bytes_used / 2**20 if memory is not None else 0.0,
        "start_rss_mb": start_rss,
        "rss_mb": rss,
        "service_rss_mb": own,
        "workers_rss_mb": workers,
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
        f"(service {fig['service_rss_mb']:.0f} MB, render workers {fig['workers_rss_mb']:.0f} MB)"
        f" for a cache budget of {fig['budget_mb']:.0f} MB "
        f"holding {fig['cached_mb']:.0f} MB: {fig['over_budget_mb']:+.0f} MB over the budget"
    )
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
