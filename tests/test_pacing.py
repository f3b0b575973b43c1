"""Refused clients remembered until their Retry-After, and their connections paced (pacing.py)."""

from __future__ import annotations

import asyncio
import re
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ogshot.api import create_app
from ogshot.budget import Admission, Budget, Gate
from ogshot.clients import CLIENT, ClientRule, parse_networks
from ogshot.errors import Overloaded, RateLimited
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.pacing import Pacer, RefusedClients
from ogshot.service import CardService
from ogshot.settings import Settings

from .conftest import ogshot_serve


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- The memory of refusals -----------------------------------------------------------------------


def test_refused_client_is_remembered_until_its_retry_after() -> None:
    clock = Clock()
    refused = RefusedClients(clock=clock)
    refused.note("198.51.100.7", 30, budget=True)
    assert refused.left("198.51.100.7") == 30
    assert refused.budget_left("198.51.100.7") == 30
    assert refused.left("198.51.100.8") == 0
    clock.now += 29.5
    assert refused.left("198.51.100.7") == pytest.approx(0.5)
    clock.now += 1
    assert refused.left("198.51.100.7") == 0
    assert len(refused) == 0


def test_a_503_is_remembered_for_pacing_but_not_as_a_spent_budget() -> None:
    clock = Clock()
    refused = RefusedClients(clock=clock)
    refused.note("198.51.100.7", 1, budget=False)
    assert refused.left("198.51.100.7") == 1
    assert refused.budget_left("198.51.100.7") == 0
    # A later, longer 429 extends both; a later, shorter 503 shortens neither.
    refused.note("198.51.100.7", 20, budget=True)
    refused.note("198.51.100.7", 1, budget=False)
    assert (refused.left("198.51.100.7"), refused.budget_left("198.51.100.7")) == (20, 20)


def test_an_ipv6_client_is_remembered_by_its_64_as_its_budget_is() -> None:
    refused = RefusedClients(clock=Clock())
    refused.note("2001:db8:1:2::1", 10, budget=True)
    assert refused.left("2001:db8:1:2:ffff::9") == 10
    assert refused.left("2001:db8:1:3::1") == 0


def test_the_memory_of_refusals_is_bounded() -> None:
    refused = RefusedClients(maxsize=100, clock=Clock())
    for i in range(10_000):
        refused.note(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", 60, budget=True)
    assert len(refused) == 100
    # The newest are kept, the oldest forgotten (then simply not held or remembered).
    assert refused.left("10.0.39.15") == 60  # client 9999
    assert refused.left("10.0.0.0") == 0


# --- The pacer's decision -------------------------------------------------------------------------

HEAD = b"GET /og.png?title=new+one HTTP/1.1\r\nHost: x\r\n%s\r\n"


def pacer(pause: float = 1.0, trusted: str = "", hits: tuple[bytes, ...] = ()) -> Pacer:
    clock = Clock()
    refused = RefusedClients(clock=clock)
    return Pacer(
        refused,
        ClientRule(parse_networks(trusted)),
        pause,
        lambda method, target: method == b"GET" and target in hits,
    )


def test_a_refused_client_asking_again_is_held_at_most_the_pause() -> None:
    p = pacer(pause=1.0)
    assert p.hold_for("192.0.2.1", HEAD % b"") == 0  # nobody refused yet
    p.refused.note("192.0.2.1", 30, budget=True)
    assert p.hold_for("192.0.2.1", HEAD % b"") == 1.0  # bounded by the pause, not 30 s
    assert p.hold_for("192.0.2.2", HEAD % b"") == 0  # someone else
    p.refused.note("192.0.2.3", 1, budget=False)
    p.refused.clock.now += 0.75  # type: ignore[attr-defined]
    assert p.hold_for("192.0.2.3", HEAD % b"") == pytest.approx(0.25)  # what is left of it
    # Bytes too few to be a request line are held all the same: the peer is the client.
    assert p.hold_for("192.0.2.1", b"G") == 1.0


def test_a_repeat_hit_is_never_held_even_for_a_refused_client() -> None:
    p = pacer(hits=(b"/og.png?title=made",))
    p.refused.note("192.0.2.1", 30, budget=True)
    assert p.hold_for("192.0.2.1", b"GET /og.png?title=made HTTP/1.1\r\nHost: x\r\n\r\n") == 0
    assert p.hold_for("192.0.2.1", b"GET /og.png?title=other HTTP/1.1\r\nHost: x\r\n\r\n") == 1


def test_pause_zero_holds_nothing() -> None:
    p = pacer(pause=0)
    p.refused.note("192.0.2.1", 30, budget=True)
    assert p.hold_for("192.0.2.1", HEAD % b"") == 0


def test_behind_a_trusted_proxy_only_the_refused_clients_requests_are_held() -> None:
    p = pacer(trusted="10.0.0.0/8")
    p.refused.note("198.51.100.1", 30, budget=True)
    refused_one = HEAD % b"X-Forwarded-For: 198.51.100.1\r\n"
    assert p.hold_for("10.0.0.2", refused_one) == 1
    assert p.hold_for("10.0.0.2", HEAD % b"x-forwarded-for:  198.51.100.1 \r\n") == 1
    assert p.hold_for("10.0.0.2", HEAD % b"Forwarded: for=198.51.100.1\r\n") == 1
    # Another client on the same proxy connection goes at once, whatever it writes on the left.
    assert p.hold_for("10.0.0.2", HEAD % b"X-Forwarded-For: 198.51.100.2\r\n") == 0
    assert p.hold_for("10.0.0.2", HEAD % b"X-Forwarded-For: 198.51.100.1, 198.51.100.2\r\n") == 0
    # So does the proxy's own request, and a head not yet whole (proxies send heads whole).
    assert p.hold_for("10.0.0.2", HEAD % b"") == 0
    assert p.hold_for("10.0.0.2", refused_one[:-4]) == 0
    # The same header from an untrusted peer names nobody: the peer is the client.
    assert p.hold_for("192.0.2.9", refused_one) == 0


def test_refusal_pause_setting_is_bounded() -> None:
    assert Settings(_env_file=None).refusal_pause == 1.0  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, refusal_pause=60)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, refusal_pause=-1)  # type: ignore[call-arg]


# --- The budget remembers -------------------------------------------------------------------------


class CountingBudget(Budget):
    def __init__(self, rate: str) -> None:
        super().__init__(rate)
        self.asked = 0

    async def charge(self, client: str) -> None:
        self.asked += 1
        await super().charge(client)


def test_refused_client_is_refused_from_memory_without_asking_the_store_again() -> None:
    clock = Clock()
    budget = CountingBudget("1/hour")
    admission = Admission(budget, Gate(4, 4), RefusedClients(clock=clock))

    async def ask(client: str) -> object:
        CLIENT.set(client)
        try:
            async with admission.slot():
                return "admitted"
        except RateLimited as exc:
            return exc.retry_after

    async def scene() -> list[object]:
        return [await ask("192.0.2.1") for _ in range(4)] + [await ask("192.0.2.2")]

    answers = asyncio.run(scene())
    assert answers[0] == "admitted"
    first_refusal = answers[1]
    assert isinstance(first_refusal, int) and 1 <= first_refusal <= 3600
    assert answers[2:4] == [first_refusal, first_refusal]
    # The store was asked for the first two only; the next two came from memory. Others are asked.
    assert budget.asked == 3
    assert answers[4] == "admitted"
    # The time told shrinks as it passes, and once it is over the store is asked again.
    clock.now += first_refusal - 0.5

    async def later() -> list[object]:
        return [await ask("192.0.2.1"), await ask("192.0.2.1")]

    clock_then = asyncio.run(later())
    assert clock_then == [1, 1]
    assert budget.asked == 3
    clock.now += 1
    asyncio.run(ask("192.0.2.1"))
    assert budget.asked == 4


def test_a_client_refused_by_the_gate_is_remembered_for_pacing_only() -> None:
    admission = Admission(Budget("off"), Gate(1, 0), RefusedClients(clock=Clock()))

    async def scene() -> None:
        CLIENT.set("192.0.2.1")
        release = asyncio.Event()

        async def holder() -> None:
            async with admission.slot():
                await release.wait()

        task = asyncio.create_task(holder())
        await asyncio.sleep(0.01)
        CLIENT.set("192.0.2.5")
        with pytest.raises(Overloaded):
            async with admission.slot():
                pass
        release.set()
        await task

    asyncio.run(scene())
    assert admission.refused.left("192.0.2.5") == 1
    assert admission.refused.budget_left("192.0.2.5") == 0
    assert admission.refused.left("192.0.2.1") == 0


# --- Over HTTP ------------------------------------------------------------------------------------


@pytest.fixture
def limited(layouts: LayoutRegistry, fonts: FontSet) -> Iterator[tuple[TestClient, CardService]]:
    settings = Settings(_env_file=None, capture="none", rate_limit="2/hour")  # type: ignore[call-arg]
    service = CardService(settings, layouts=layouts, fonts=fonts)
    app = create_app(settings, service=service)
    with TestClient(app, raise_server_exceptions=False, client=("192.0.2.1", 50000)) as c:
        yield c, service


def test_remembered_client_is_still_served_its_hits_and_refused_its_misses(
    limited: tuple[TestClient, CardService],
) -> None:
    client, service = limited
    assert client.get("/og.png?title=mine+0").status_code == 200
    assert client.get("/og.png?title=mine+1").status_code == 200
    first = client.get("/og.png?title=mine+2")
    assert first.status_code == 429
    assert service.admission.refused.budget_left("192.0.2.1") > 0
    for i in range(3, 6):
        r = client.get(f"/og.png?title=mine+{i}")
        assert r.status_code == 429
        assert r.json()["error"] == "rate_limited"
        assert r.headers["cache-control"] == "no-store"
        assert 1 <= int(r.headers["retry-after"]) <= int(first.headers["retry-after"])
    # Hits are never limited: spelled as before, spelled differently, and on the HEAD road.
    assert client.get("/og.png?title=mine+0").status_code == 200
    assert client.get("/og.png?title=mine%200&theme=auto&utm_source=x").status_code == 200
    assert client.head("/og.png?title=mine+1").status_code == 200
    assert service.renders == 2


# --- A real server's connections ------------------------------------------------------------------


def _send(sock: socket.socket, target: str, client: str) -> None:
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: {client}\r\n\r\n".encode())


def _request(sock: socket.socket, target: str, client: str) -> tuple[int, bytes]:
    """One request on a kept-alive connection; its status and head."""
    _send(sock, target, client)
    return _response(sock)


def _response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ")[1]), head.lower()


def _paced(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    m = re.search(r"^ogshot_paced_requests_total (\S+)$", text, re.MULTILINE)
    assert m, text
    return float(m[1])


def test_ogshot_serve_paces_a_refused_client_and_no_one_else(tmp_path: Path) -> None:
    env = {
        "OGSHOT_CAPTURE": "none",
        "OGSHOT_RATE_LIMIT": "1/hour",  # a window that does not roll over mid-test
        "OGSHOT_TRUSTED_PROXIES": "127.0.0.1",
        "OGSHOT_REFUSAL_PAUSE": "1.5",  # a wide margin for the one order checked below
    }
    with ogshot_serve(tmp_path, env=env) as base:
        port = int(base.rsplit(":", 1)[1])
        a, b = "198.51.100.1", "198.51.100.2"
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as one,
            socket.create_connection(("127.0.0.1", port), timeout=10) as two,
        ):
            assert _request(one, "/og.png?title=a+0", a)[0] == 200
            status, head = _request(one, "/og.png?title=a+1", a)
            assert status == 429 and b"retry-after: " in head and b"no-store" in head
            assert _paced(base) == 0  # the refusal itself was answered at once
            # At once again on the same connection: not read until the pause is over, while
            # another client's requests are answered; then answered like any other.
            _send(one, "/og.png?title=a+2", a)
            assert _request(two, "/og.png?title=b+0", b)[0] == 200
            assert select.select([one], [], [], 0)[0] == [], "the refused client was answered"
            assert _paced(base) == 1
            assert _response(one)[0] == 429
            # Its repeat hit goes at once; the same card spelled anew waits, then is a 200.
            assert _request(one, "/og.png?title=a+0", a)[0] == 200
            assert _paced(base) == 1
            assert _request(one, "/og.png?title=a%200&theme=auto", a)[0] == 200
            assert _paced(base) == 2
            # Another client, on the same connection or its own, is never held.
            assert _request(one, "/og.png?title=b+0", b)[0] == 200
            assert _request(two, "/og.png?title=b+1", b)[0] == 429  # b's own budget, at once
            assert _paced(base) == 2
        # A held request whose client hangs up is dropped; the server carries on.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as three:
            _send(three, "/og.png?title=a+3", a)
        for _ in range(100):  # the server reads the hung-up request in its own time
            if _paced(base) == 3:
                break
            time.sleep(0.05)
        assert _paced(base) == 3
        assert httpx.get(f"{base}/og.png?title=a+0", timeout=10).status_code == 200
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200


@settings(max_examples=300, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=600),
        st.lists(
            st.sampled_from(
                [
                    b"GET /og.png?title=x HTTP/1.1",
                    b"X-Forwarded-For: 198.51.100.1",
                    b"x-forwarded-for:198.51.100.1, 10.0.0.3",
                    b'Forwarded: for="[2001:db8::1]:80";proto=https',
                    b"X-Forwarded-For: unknown, ::ffff:198.51.100.1",
                    b"X-Forwarded-Proto: https",
                    b"Host: t",
                    b"",
                    b"\xff\xfe: \x00",
                ]
            ),
            max_size=8,
        ).map(b"\r\n".join),
    ),
    peer=st.sampled_from(["10.0.0.2", "198.51.100.1", "192.0.2.9", None, "garbage"]),
)
def test_any_bytes_from_any_peer_are_held_at_most_the_pause_and_never_raise(
    data: bytes, peer: str | None
) -> None:
    p = pacer(pause=0.75, trusted="10.0.0.0/8")
    for client in ("198.51.100.1", "2001:db8::5", "10.0.0.2", "192.0.2.9"):
        p.refused.note(client, 30, budget=True)
    assert 0 <= p.hold_for(peer, data) <= 0.75
