"""Budgets per client (429) and the bounded gate (503) on work that misses the cache."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from ogshot import budget as budget_module
from ogshot.api import create_app
from ogshot.budget import Admission, Budget, Gate
from ogshot.card import Card
from ogshot.clients import CLIENT
from ogshot.errors import ConfigError, Overloaded, RateLimited
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.service import CardService
from ogshot.settings import Settings

from .conftest import ogshot_serve


def app_client(
    layouts: LayoutRegistry, fonts: FontSet, peer: str = "127.0.0.1", **extra: object
) -> Iterator[tuple[TestClient, CardService]]:
    settings = Settings(_env_file=None, capture="none", **extra)  # type: ignore[call-arg]
    service = CardService(settings, layouts=layouts, fonts=fonts)
    app = create_app(settings, service=service)
    with TestClient(app, raise_server_exceptions=False, client=(peer, 50000)) as c:
        yield c, service


@pytest.fixture
def limited(layouts: LayoutRegistry, fonts: FontSet) -> Iterator[tuple[TestClient, CardService]]:
    yield from app_client(layouts, fonts, rate_limit="3/minute")


def test_budget_counts_misses_only_and_answers_429_with_retry_after(
    limited: tuple[TestClient, CardService],
) -> None:
    client, service = limited
    for i in range(3):
        assert client.get(f"/og.png?title=budget+{i}").status_code == 200
    r = client.get("/og.png?title=budget+3")
    assert r.status_code == 429
    assert r.json()["error"] == "rate_limited"
    assert r.headers["cache-control"] == "no-store"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert service.renders == 3
    # Cache hits are never limited: the fast path and the route alike.
    for _ in range(5):
        assert client.get("/og.png?title=budget+0").status_code == 200
        assert client.get("/og.png?theme=auto&title=budget%200").status_code == 200


def test_untrusted_peers_cannot_forge_their_address(
    layouts: LayoutRegistry, fonts: FontSet
) -> None:
    for client, _ in app_client(layouts, fonts, rate_limit="2/minute"):
        codes = [
            client.get(
                f"/og.png?title=forge+{i}", headers={"X-Forwarded-For": f"1.2.3.{i}"}
            ).status_code
            for i in range(4)
        ]
        assert codes == [200, 200, 429, 429]


def test_a_trusted_proxy_gives_each_client_its_own_budget(
    layouts: LayoutRegistry, fonts: FontSet
) -> None:
    for client, _ in app_client(
        layouts, fonts, peer="10.0.0.2", rate_limit="2/minute", trusted_proxies="10.0.0.0/8"
    ):

        def get(title: str, xff: str, c: TestClient = client) -> int:
            return c.get(
                f"/og.png?title={title}", headers={"X-Forwarded-For": xff}
            ).status_code

        assert [get(f"p{i}", "198.51.100.1") for i in range(3)] == [200, 200, 429]
        # Another client behind the same proxy has its own budget ...
        assert [get(f"q{i}", "198.51.100.2") for i in range(2)] == [200, 200]
        # ... and the first one cannot escape by writing a hop of its own to the left.
        assert get("p9", "203.0.113.77, 198.51.100.1") == 429
    # The same headers from a peer that is not a trusted proxy count against the peer.
    for client, _ in app_client(
        layouts, fonts, peer="192.0.2.1", rate_limit="2/minute", trusted_proxies="10.0.0.0/8"
    ):
        codes = [
            client.get(f"/og.png?title=r{i}", headers={"X-Forwarded-For": f"1.1.1.{i}"}).status_code
            for i in range(3)
        ]
        assert codes == [200, 200, 429]


def test_coalesced_request_is_not_refused_on_another_clients_budget(
    settings: Settings, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    service = CardService(
        settings.model_copy(update={"rate_limit": "1/minute"}), layouts=layouts, fonts=fonts
    )
    card = Card(title="shared by two clients")

    async def as_client(name: str, c: Card) -> object:
        CLIENT.set(name)
        try:
            return (await service.card(c)).source
        except RateLimited as exc:
            return exc.code

    async def scene() -> list[object]:
        assert await as_client("a", Card(title="a's one card")) == "miss"
        # a (over budget) starts the work on `card`; b joins it and must not share a's 429.
        return list(await asyncio.gather(as_client("a", card), as_client("b", card)))

    try:
        assert asyncio.run(scene()) == ["rate_limited", "miss"]
    finally:
        asyncio.run(service.aclose())


@contextlib.asynccontextmanager
async def _turn(gate: Gate) -> AsyncIterator[None]:
    """A turn of the gate, held for the block (as Admission's slot holds one)."""
    await gate.acquire()
    try:
        yield
    finally:
        gate.release()


def test_gate_admits_limit_queues_queue_and_refuses_the_rest_at_once() -> None:
    async def scene() -> None:
        gate = Gate(limit=2, queue=1)
        release = asyncio.Event()
        entered: list[int] = []

        async def holder(i: int) -> None:
            async with _turn(gate):
                entered.append(i)
                await release.wait()

        tasks = [asyncio.create_task(holder(i)) for i in range(3)]
        await asyncio.sleep(0.01)
        assert (gate.in_flight, gate.queued, entered) == (2, 1, [0, 1])
        with pytest.raises(Overloaded) as err:
            async with _turn(gate):
                pass
        assert err.value.retry_after == 1
        release.set()
        await asyncio.gather(*tasks)
        assert (gate.in_flight, gate.queued, sorted(entered)) == (0, 0, [0, 1, 2])

    asyncio.run(scene())


def test_gate_counts_survive_cancelled_waiters() -> None:
    async def scene() -> None:
        gate = Gate(limit=1, queue=4)
        hold = asyncio.Event()

        async def holder() -> None:
            async with _turn(gate):
                await hold.wait()

        first = asyncio.create_task(holder())
        await asyncio.sleep(0)
        waiters = [asyncio.create_task(holder()) for _ in range(3)]
        await asyncio.sleep(0.01)
        assert gate.queued == 3
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        assert (gate.in_flight, gate.queued) == (1, 0)
        hold.set()
        await first
        assert (gate.in_flight, gate.queued) == (0, 0)

    asyncio.run(scene())


def test_bad_rate_limit_setting_is_refused() -> None:
    with pytest.raises(ConfigError):
        Budget("lots per minute")
    assert not Budget("off").enabled


def test_budget_store_that_is_down_fails_open() -> None:
    budget = Budget("1/minute", "redis://127.0.0.1:1/0")  # nothing listens on port 1

    async def scene() -> None:
        await budget.charge("x")
        await budget.charge("x")  # would be over budget, but the store cannot say so

    asyncio.run(scene())


def test_budget_is_shared_by_two_servers_through_redis(redis_server: str, tmp_path: Path) -> None:
    url = redis_server.rsplit("/", 1)[0] + "/7"
    redis.Redis.from_url(url).flushdb()
    env = {"OGSHOT_REDIS_URL": url, "OGSHOT_RATE_LIMIT": "4/minute", "OGSHOT_CAPTURE": "none"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        ogshot_serve(tmp_path / "a", env=env) as a,
        ogshot_serve(tmp_path / "b", env=env) as b,
    ):
        codes = [
            httpx.get(
                f"{base}/og.png", params={"title": f"shared budget {i}"}, timeout=30
            ).status_code
            for i, base in enumerate([a, b, a, b, a, b])
        ]
        assert codes == [200, 200, 200, 200, 429, 429]
        # Cards already made are hits on either server, budget or not.
        assert httpx.get(f"{a}/og.png", params={"title": "shared budget 0"}).status_code == 200


def test_ogshot_serve_believes_no_proxy_header_it_was_not_told_to(tmp_path: Path) -> None:
    """uvicorn's own proxy-header handling (which trusts 127.0.0.1 by default) is off: a local
    client cannot pick a new address, and a new budget, with X-Forwarded-For."""
    env = {"OGSHOT_RATE_LIMIT": "2/minute", "OGSHOT_CAPTURE": "none"}
    with ogshot_serve(tmp_path, env=env) as base:
        codes = [
            httpx.get(
                f"{base}/og.png",
                params={"title": f"xff {i}"},
                headers={"X-Forwarded-For": f"198.51.100.{i}", "Forwarded": f"for=192.0.2.{i}"},
                timeout=30,
            ).status_code
            for i in range(3)
        ]
    assert codes == [200, 200, 429]


def test_a_budget_store_that_never_answers_lets_the_card_through_in_time() -> None:
    """A Redis budget store that accepts the connection and then says nothing: the charge gives
    up after STORE_TIMEOUT and the card goes on (fail open), rather than hanging with it."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    try:
        store = Budget("5/minute", f"redis://127.0.0.1:{port}/0")

        async def charge() -> float:
            t0 = time.perf_counter()
            await store.charge("203.0.113.9")
            return time.perf_counter() - t0

        elapsed = asyncio.run(charge())
    finally:
        silent.close()
    assert elapsed < budget_module.STORE_TIMEOUT + 1.0


def test_a_slot_inside_a_slot_is_neither_charged_nor_gated_again() -> None:
    """A card's capture runs inside the card's slot: it must not spend the client's budget a
    second time, nor wait for a second turn of the gate the card already holds."""
    admission = Admission(Budget("1/minute"), Gate(1, 0))

    async def scene() -> None:
        CLIENT.set("192.0.2.1")
        async with admission.slot():
            async with admission.slot():  # charged again: 429; gated again: 503
                assert admission.gate.in_flight == 1
        assert admission.gate.in_flight == 0
        with pytest.raises(RateLimited):  # out of the slot, the next card is charged again
            async with admission.slot():
                pass

    asyncio.run(scene())


def test_a_slot_is_given_back_when_its_work_fails_or_is_cancelled() -> None:
    admission = Admission(Budget("off"), Gate(1, 0))

    async def scene() -> None:
        with pytest.raises(ValueError):
            async with admission.slot():
                raise ValueError("the render failed")
        assert admission.gate.in_flight == 0
        started = asyncio.Event()

        async def work() -> None:
            async with admission.slot():
                started.set()
                await asyncio.sleep(30)

        task = asyncio.create_task(work())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert admission.gate.in_flight == 0
        async with admission.slot():  # the one turn is free again, and this one is marked
            async with admission.slot():
                pass

    asyncio.run(scene())


def test_a_turn_handed_to_a_waiter_cancelled_at_that_moment_is_passed_on() -> None:
    """A turn given back goes straight to the first card waiting. If that card is cancelled
    before it runs, the turn must go on to the next one (not be lost, which would shrink the
    gate for good), and nobody arriving meanwhile may take it past the queue."""

    async def scene() -> None:
        gate = Gate(limit=1, queue=4)
        await gate.acquire()
        served: list[str] = []

        async def waiter(name: str) -> None:
            await gate.acquire()
            served.append(name)
            gate.release()

        first = asyncio.create_task(waiter("first"))
        second = asyncio.create_task(waiter("second"))
        await asyncio.sleep(0)
        assert gate.queued == 2
        gate.release()  # handed to the first ...
        first.cancel()  # ... which is cancelled before it runs
        assert not gate.try_acquire()  # a newcomer does not jump the queue
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, 5)
        assert served == ["second"]
        assert (gate.in_flight, gate.queued) == (0, 0)
        assert gate.try_acquire()

    asyncio.run(scene())


def test_a_free_turn_is_taken_while_a_cancelled_waiter_has_not_yet_left_the_queue() -> None:
    """A waiter cancelled, then the turn given back with nobody else waiting: the turn is free,
    even before the cancelled task has run to leave the queue. A newcomer must take it, not
    queue behind a waiter that is gone (nothing would ever hand it a turn)."""

    async def scene() -> None:
        gate = Gate(limit=1, queue=4)
        await gate.acquire()
        waiter = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        newcomer = asyncio.create_task(gate.acquire())  # runs before the waiter's cancellation
        waiter.cancel()
        gate.release()
        await asyncio.wait_for(newcomer, 5)
        assert gate.in_flight == 1
        with pytest.raises(asyncio.CancelledError):
            await waiter
        gate.release()
        assert (gate.in_flight, gate.queued) == (0, 0)

    asyncio.run(scene())
