"""The per-client budget's charge on a cache miss, in memory: ogshot's own counts against limits.

    python -m bench.bench_budget [--n 5000] [--rounds 7]

Times ``await Budget.charge(client)`` warm, in one event loop, ``n`` charges a round, rounds
taken in turn with the way the budget was counted before ogshot kept its own counts: limits'
asyncio ``MemoryStorage`` (walking its clients at most once a second) under its
``SlidingWindowCounterRateLimiter``, the client's key parsed by ``ipaddress`` every time. Two
mixes of clients: a few (8 addresses, IPv4 and IPv6), and many (2,000 addresses in the
window). The rate is high enough that nothing is refused: the common case, a card allowed.

Then cold: each charge timed alone after 32 MB of other memory has been copied, so that the
CPU's caches hold none of the charge's code or data, as after a render on the server.

Figures: median microseconds per charge for each side, and the ratio. Targets: a charge costs
at most 3 us warm on a quiet machine (it cost ~22 us), and at least 10 times less than through
limits in the same run (the ratio holds on a loaded machine too).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from typing import Any

from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from ogshot.budget import Budget
from ogshot.clients import budget_key

TARGET_US = 3.0
TARGET_RATIO = 10.0
RATE = "100000000/minute"


class _WalkedOncePerSecond(MemoryStorage):
    """limits' memory store as ogshot ran it: its walk for expired keys at most once a second."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.swept = float("-inf")

    async def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now - self.swept < 1.0:
            return
        self.swept = now
        await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]


class LimitsBudget:
    """The in-memory charge as it was, on limits (kept here only to be measured against)."""

    def __init__(self, rate: str) -> None:
        self.item = parse(rate)
        self.limiter = SlidingWindowCounterRateLimiter(_WalkedOncePerSecond())
        self.parse_key = budget_key.__wrapped__  # the key parsed on every charge, as before

    async def charge(self, client: str) -> None:
        key = self.parse_key(client)
        if await self.limiter.hit(self.item, key):
            return
        stats = await self.limiter.get_window_stats(self.item, key)
        raise RuntimeError(f"refused (reset {stats.reset_time}): the bench rate is too low")


FEW = [f"198.51.100.{i}" for i in range(6)] + ["2001:db8:1:2::1", "2001:db8:7:7::9"]
MANY = [f"10.{i // 250}.{i % 250}.1" for i in range(1000)] + [
    f"2001:db8:{i:x}::1" for i in range(1000)
]


async def per_charge_us(budget: Any, clients: list[str], n: int) -> float:
    charge = budget.charge
    count = len(clients)
    t0 = time.perf_counter()
    for i in range(n):
        await charge(clients[i % count])
    return (time.perf_counter() - t0) / n * 1e6


async def measure(n: int, rounds: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for mix, clients in (("few clients", FEW), ("2,000 clients", MANY)):
        old, new = LimitsBudget(RATE), Budget(RATE)
        for side in (old, new):  # fill the window, warm every path
            for client in clients:
                await side.charge(client)
        timings: dict[str, list[float]] = {"limits": [], "own": []}
        for _ in range(rounds):
            timings["limits"].append(await per_charge_us(old, clients, n))
            timings["own"].append(await per_charge_us(new, clients, n))
            await asyncio.sleep(0)  # let limits' walk run when it is due, as a server's loop does
        results[mix] = {side: statistics.median(t) for side, t in timings.items()}
    return results


async def cold_us(budget: Any, clients: list[str], n: int) -> list[float]:
    charge = budget.charge
    src, dst = bytearray(32 << 20), bytearray(32 << 20)
    times = []
    for i in range(n):
        dst[:] = src  # push the charge's code and data out of every cache level
        t0 = time.perf_counter()
        await charge(clients[i % len(clients)])
        times.append((time.perf_counter() - t0) * 1e6)
    return times


async def measure_cold(n: int) -> dict[str, float]:
    old, new = LimitsBudget(RATE), Budget(RATE)
    for side in (old, new):
        for client in FEW:
            await side.charge(client)
    timings: dict[str, list[float]] = {"limits": [], "own": []}
    for _ in range(5):  # in turn, in five slices
        timings["limits"] += await cold_us(old, FEW, n // 5)
        timings["own"] += await cold_us(new, FEW, n // 5)
    return {side: statistics.median(t) for side, t in timings.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5000, help="charges per round")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--cold", type=int, default=200, help="charges timed cold, per side")
    args = ap.parse_args()
    results = asyncio.run(measure(args.n, args.rounds))
    cold = asyncio.run(measure_cold(args.cold))
    worst = 0.0
    least = math.inf
    print(
        f"Budget.charge, warm, in memory (median us per charge, {args.rounds} rounds of {args.n})"
    )
    for mix, r in results.items():
        ratio = r["limits"] / r["own"] if r["own"] else math.inf
        worst = max(worst, r["own"])
        least = min(least, ratio)
        print(
            f"  {mix:14s} limits {r['limits']:7.2f}   own {r['own']:6.2f}   ({ratio:.1f}x faster)"
        )
    print(f"cold, after 32 MB of other memory (median us per charge, {args.cold} each side)")
    ratio = cold["limits"] / cold["own"] if cold["own"] else math.inf
    mix = "few clients"
    print(f"  {mix:14s} limits {cold['limits']:7.2f}   own {cold['own']:6.2f}   ({ratio:.1f}x)")
    verdict = "MET" if worst <= TARGET_US else "MISSED"
    print(f"target: a charge <= {TARGET_US:g} us warm: {verdict} (worst {worst:.2f} us)")
    verdict = "MET" if least >= TARGET_RATIO else "MISSED"
    print(f"target: >= {TARGET_RATIO:g}x less than limits, warm: {verdict} (least {least:.1f}x)")


if __name__ == "__main__":
    main()
