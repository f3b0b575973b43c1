"""The in-memory budget (ClientCounts): limits' sliding window counter, bounded in memory."""

from __future__ import annotations

import asyncio
import math
import types
from unittest import mock

import limits.aio.storage.memory
import limits.aio.strategies
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from ogshot.budget import Budget, ClientCounts
from ogshot.errors import RateLimited


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limits_decisions(rate: str, start: float, steps: list[tuple[float, str]]) -> list[int]:
    """What ogshot's budget answered with limits' memory store (as it did before it had its
    own): 0 for an allowed hit, else the Retry-After of the refusal, for each (delay, key)."""
    clock = Clock(start)
    fake_time = types.SimpleNamespace(time=clock)
    item = parse(rate)

    async def run() -> list[int]:
        limiter = SlidingWindowCounterRateLimiter(MemoryStorage())
        answers = []
        for delay, key in steps:
            clock.now += delay
            if await limiter.hit(item, key):
                answers.append(0)
                continue
            stats = await limiter.get_window_stats(item, key)
            wait = max(1, math.ceil(stats.reset_time - clock()))
            answers.append(min(wait, item.get_expiry()))
        return answers

    with (
        mock.patch.object(limits.aio.storage.memory, "time", fake_time),
        mock.patch.object(limits.aio.strategies, "time", fake_time),
    ):
        return asyncio.run(run())


def own_decisions(rate: str, start: float, steps: list[tuple[float, str]]) -> list[int]:
    clock = Clock(start)
    item = parse(rate)
    counts = ClientCounts(item.amount, item.get_expiry(), clock=clock)
    answers = []
    for delay, key in steps:
        clock.now += delay
        answers.append(counts.hit(key))
    return answers


# Periods that are powers of two, times on a grid of 1/1024 s and limits up to 5 keep every
# step of both computations exact in binary floating point, so the two must agree to the
# last bit, at the edges of windows included (where hypothesis likes to go).
PERIODS = (1, 2, 4, 64)
START = float(2**20)  # whole windows of every period; limits wants the clock past one window


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[str, list[tuple[float, str]]]:
    limit = draw(st.integers(1, 5))
    period = draw(st.sampled_from(PERIODS))
    grain = period * 1024
    delay = st.one_of(
        st.integers(0, grain // 8),  # bursts within a window
        st.integers(0, 3 * grain),  # across windows, and past expiry
    ).map(lambda ticks: ticks / 1024)
    steps = draw(st.lists(st.tuples(delay, st.sampled_from("abc")), min_size=1, max_size=40))
    return f"{limit}/{period} second", steps


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.integers(0, 64 * 1024 - 1))
def test_own_counts_decide_as_limits_sliding_window_counter_does(
    scenario: tuple[str, list[tuple[float, str]]], offset: int
) -> None:
    """Every hit allowed or refused as limits' own limiter does on the same hits at the same
    times, and every refusal with the Retry-After the limits-based budget gave."""
    rate, steps = scenario
    start = START + offset / 1024
    assert own_decisions(rate, start, steps) == limits_decisions(rate, start, steps)


def test_same_as_limits_on_a_minute_window_at_ordinary_times() -> None:
    """A minute (not a power of two) at times off any grid: the same answers as limits."""
    steps = [(0.0, "a")] * 4 + [(13.37, "a"), (31.9, "a"), (7.25, "b"), (9.1, "a"), (2.2, "a")]
    steps += [(24.6, "a"), (0.4, "a"), (61.3, "a"), (150.0, "a"), (0.1, "a")]
    start = 1_764_000_017.123
    ours = own_decisions("3/minute", start, steps)
    assert ours == limits_decisions("3/minute", start, steps)
    assert ours.count(0) >= 6 and any(ours)  # both answers were exercised


def test_refusal_tells_the_time_until_the_weighted_count_drops() -> None:
    clock = Clock(600.0 + 15)  # 15 s into a minute window
    counts = ClientCounts(3, 60, clock=clock)
    assert [counts.hit("a") for _ in range(3)] == [0, 0, 0]
    # Three in this window: refused until it ends, 45 s from now.
    assert counts.hit("a") == 45
    clock.now = 660.0 + 10  # next window, 10 s in: 3 × 50/60 = 2.5 weighted, room for one
    assert counts.hit("a") == 0
    # 3 × 50/60 + 1 = 3.5: the old window's share drops by one every 20 s; next step in 10 s.
    assert counts.hit("a") == 10
    clock.now = 780.0  # two windows on: a fresh budget
    assert [counts.hit("a") for _ in range(3)] == [0, 0, 0]
    assert counts.hit("b") == 0  # others were never affected


def test_refusal_is_at_least_one_second() -> None:
    clock = Clock(600.0 + 59.5)  # half a second before the window ends
    counts = ClientCounts(2, 60, clock=clock)
    assert [counts.hit("a") for _ in range(3)] == [0, 0, 1]


def test_refusal_is_never_longer_than_the_window() -> None:
    clock = Clock(3600.0 * 10)
    counts = ClientCounts(1, 3600, clock=clock)
    assert counts.hit("a") == 0
    assert 1 <= counts.hit("a") <= 3600


def test_budget_charge_raises_rate_limited_with_that_retry_after() -> None:
    budget = Budget("2/minute")
    assert budget.counts is not None
    clock = Clock(6000.0 + 20)
    budget.counts.clock = clock

    async def scene() -> int | None:
        await budget.charge("192.0.2.1")
        await budget.charge("192.0.2.1")
        try:
            await budget.charge("192.0.2.1")
        except RateLimited as exc:
            return exc.retry_after
        return None

    assert asyncio.run(scene()) == 40


# --- Memory: expiry, the walk and the hard cap -------------------------------------------------


def test_a_client_is_forgotten_two_windows_after_its_last_counted_window() -> None:
    clock = Clock(6000.0)  # a window starts
    counts = ClientCounts(5, 60, clock=clock)
    counts.hit("a")
    clock.now = 6000.0 + 119.0  # still the window after: a's count still weighs
    counts.hit("b")
    assert len(counts) == 2
    clock.now = 6000.0 + 120.0  # a's counts weigh nothing any more
    counts.hit("c")
    assert len(counts) == 2  # a gone; b (counted a window later) and c held


def test_a_client_counted_again_later_is_kept_past_those_counted_before_it() -> None:
    """The walk stops at the first live client: one counted again must move behind the ones
    counted before it, or it would shield their expired counts from the walk."""
    clock = Clock(6000.0)
    counts = ClientCounts(5, 60, clock=clock)
    counts.hit("a")
    counts.hit("b")
    clock.now += 60  # next window: a again
    counts.hit("a")
    clock.now += 60  # b's counts have expired, a's have not
    counts.hit("c")
    assert len(counts) == 2
    assert counts.hit("b") == 0  # b starts afresh ...
    assert [counts.hit("a") for _ in range(5)].count(0) < 5  # ... a is still counted


def test_the_walk_for_expired_clients_runs_at_most_once_a_second() -> None:
    """Before this store, limits walked every client it held on every count: with thousands of
    clients in the window each card made paid for that walk. Now: once a second at most."""
    clock = Clock(6000.0)
    counts = ClientCounts(3, 60, clock=clock)
    walks = 0
    walk = counts.sweep

    def counted(now: float) -> None:
        nonlocal walks
        walks += 1
        walk(now)

    counts.sweep = counted  # type: ignore[method-assign]
    for i in range(500):
        clock.now += 0.001
        counts.hit(f"198.51.{i // 250}.{i % 250}")
    assert walks == 1
    assert [counts.hit("203.0.113.7") for _ in range(4)][-1] > 0  # still refuses
    clock.now += 1.0
    counts.hit("192.0.2.1")
    assert walks == 2
    assert len(counts) == 502
    clock.now += 180  # every count has expired; the next card's walk forgets them
    counts.hit("192.0.2.2")
    assert walks == 3
    assert len(counts) == 1


def test_the_map_of_clients_never_grows_past_its_cap() -> None:
    clock = Clock(6000.0)
    counts = ClientCounts(3, 60, maxsize=8, clock=clock)
    for i in range(1000):
        clock.now += 0.01
        counts.hit(f"k{i}")
        assert len(counts) <= 8


def test_a_spray_of_new_addresses_gets_no_more_than_its_budgets() -> None:
    """Past the cap, new clients share one budget, and live counts are never dropped: spraying
    addresses neither evicts a spent budget (to spend it again) nor grows memory."""
    clock = Clock(6000.0)
    counts = ClientCounts(3, 60, maxsize=8, clock=clock)
    allowed = 0
    for _ in range(3):
        for i in range(200):
            clock.now += 0.01
            allowed += sum(counts.hit(f"k{i}") == 0 for _ in range(5))
    # Eight held clients with three each, and one shared budget of three for the rest.
    assert allowed == 8 * 3 + 3
    assert len(counts) == 8
    # Once their counts have expired, there is room for new clients again.
    clock.now += 120
    assert counts.hit("later") == 0
    assert len(counts) == 1


def test_an_address_spray_from_one_ipv6_subscriber_is_one_budget() -> None:
    budget = Budget("4/minute")

    async def scene() -> int:
        allowed = 0
        for i in range(300):
            try:
                await budget.charge(f"2001:db8:1:2::{i:x}")
                allowed += 1
            except RateLimited:
                pass
        return allowed

    assert asyncio.run(scene()) == 4
    assert budget.counts is not None and len(budget.counts) == 1


def test_a_limit_of_zero_refuses_with_one_second() -> None:
    counts = ClientCounts(0, 60, clock=Clock(6000.0))
    assert counts.hit("a") == 1


@pytest.mark.parametrize("rate", ["off", "0", "", "none"])
def test_no_budget_counts_nothing(rate: str) -> None:
    budget = Budget(rate)
    assert not budget.enabled and budget.counts is None

    async def scene() -> None:
        for _ in range(10):
            await budget.charge("192.0.2.1")

    asyncio.run(scene())
