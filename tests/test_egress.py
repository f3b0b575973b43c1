"""The egress guard proxy on its own: resolve once, check every address, dial the checked one."""

from __future__ import annotations

import asyncio
import ipaddress

import httpx
import pytest

from ogshot.egress import AddressPolicy, EgressProxy, IPAddress
from ogshot.netguard import UrlPolicy
from ogshot.settings import Settings

from .loopback_pages import Canary, Site


def policy_for(site: Site) -> AddressPolicy:
    settings = Settings(_env_file=None, private_allowlist=site.origin)  # type: ignore[call-arg]
    return AddressPolicy.from_url_policy(UrlPolicy.from_settings(settings))


async def through(proxy: EgressProxy, url: str) -> httpx.Response:
    async with httpx.AsyncClient(proxy=proxy.url, trust_env=False, timeout=5) as client:
        return await client.get(url)


def test_allowed_origin_passes_and_other_loopback_ports_do_not(site: Site, canary: Canary) -> None:
    async def run() -> tuple[httpx.Response, httpx.Response, EgressProxy]:
        proxy = await EgressProxy(policy_for(site)).start()
        try:
            ok = await through(proxy, site.origin + "/")
            refused = await through(proxy, f"http://127.0.0.1:{canary.port}/")
            return ok, refused, proxy
        finally:
            await proxy.aclose()

    ok, refused, proxy = asyncio.run(run())
    assert ok.status_code == 200 and "Served on loopback" in ok.text
    assert refused.status_code == 403 and refused.headers["x-ogshot-refused"] == "loopback"
    assert canary.touched == 0
    assert proxy.stats.refused == [("127.0.0.1", canary.port, "loopback")]


@pytest.mark.parametrize(
    "target",
    [
        "CONNECT 127.0.0.1:{c} HTTP/1.1",
        "CONNECT [::1]:{c} HTTP/1.1",
        "CONNECT [::ffff:127.0.0.1]:{c} HTTP/1.1",
        "CONNECT 2130706433:{c} HTTP/1.1",
        "CONNECT 0x7f.1:{c} HTTP/1.1",
        "CONNECT localhost:{c} HTTP/1.1",
        "GET http://127.1:{c}/ HTTP/1.1",
        "GET http://[::127.0.0.1]:{c}/ HTTP/1.1",
        "GET http://169.254.169.254/ HTTP/1.1",
        "GET http://[64:ff9b::a9fe:a9fe]/ HTTP/1.1",
        "GET http://user@127.0.0.1:{c}/ HTTP/1.1",
        "GET https://127.0.0.1:{c}/ HTTP/1.1",
        "GET /relative HTTP/1.1",
        "GET file:///etc/passwd HTTP/1.1",
        "NONSENSE",
    ],
)
def test_guard_refuses_before_connecting(target: str, site: Site, canary: Canary) -> None:
    async def run() -> bytes:
        proxy = await EgressProxy(policy_for(site)).start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            line = target.format(c=canary.port)
            writer.write(f"{line}\r\nHost: x\r\n\r\n".encode())
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            await writer.wait_closed()
            assert proxy.stats.allowed == 0
            return answer
        finally:
            await proxy.aclose()

    answer = asyncio.run(run())
    assert answer.startswith((b"HTTP/1.1 403", b"HTTP/1.1 400"))
    assert canary.touched == 0


def test_each_host_is_resolved_once_and_the_checked_address_is_dialled(site: Site) -> None:
    """No second lookup: the name cannot resolve on this machine, so the connection can only
    have gone to the address the guard's one lookup returned (and checked)."""
    calls: list[str] = []

    async def resolver(host: str, port: int) -> list[IPAddress]:
        calls.append(host)
        if len(calls) > 1:
            raise OSError("a second lookup")
        return [ipaddress.ip_address("127.0.0.1")]

    async def run() -> httpx.Response:
        proxy = await EgressProxy(AddressPolicy(allow_private=True), resolver=resolver).start()
        try:
            return await through(proxy, f"http://only-once.invalid:{site.port}/")
        finally:
            await proxy.aclose()

    assert asyncio.run(run()).status_code == 200
    assert calls == ["only-once.invalid"]


@pytest.mark.parametrize(
    "answers",
    [
        ["127.0.0.1"],
        ["93.184.216.34", "10.0.0.7"],
        ["2606:2800:220:1::1", "::ffff:169.254.169.254"],
        ["fd12::1"],
    ],
)
def test_a_name_with_any_private_answer_is_refused(answers: list[str], canary: Canary) -> None:
    """DNS rebinding: the name is public-looking, an answer is not; nothing is dialled."""

    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(a) for a in answers]

    async def run() -> tuple[httpx.Response, EgressProxy]:
        proxy = await EgressProxy(AddressPolicy(), resolver=resolver).start()
        try:
            return await through(proxy, f"http://rebind.example:{canary.port}/"), proxy
        finally:
            await proxy.aclose()

    response, proxy = asyncio.run(run())
    assert response.status_code == 403
    assert proxy.stats.allowed == 0 and canary.touched == 0


def test_unresolvable_names_fail_closed() -> None:
    async def resolver(host: str, port: int) -> list[IPAddress]:
        raise OSError("no such name")

    async def run() -> httpx.Response:
        proxy = await EgressProxy(AddressPolicy(), resolver=resolver).start()
        try:
            return await through(proxy, "http://nowhere.invalid/")
        finally:
            await proxy.aclose()

    assert asyncio.run(run()).status_code == 502


def test_oversized_and_slow_request_heads_are_refused() -> None:
    async def run() -> tuple[bytes, bytes]:
        proxy = await EgressProxy(AddressPolicy(), head_timeout=0.3).start()
        try:
            r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
            w.write(b"GET http://example.com/ HTTP/1.1\r\nX: " + b"a" * 70_000)
            await w.drain()
            big = await asyncio.wait_for(r.read(), 5)
            w.close()
            await w.wait_closed()
            r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
            w.write(b"GET http://exam")
            slow = await asyncio.wait_for(r.read(), 5)
            w.close()
            await w.wait_closed()
            return big, slow
        finally:
            await proxy.aclose()

    big, slow = asyncio.run(run())
    assert big.startswith(b"HTTP/1.1 400") and b"request_too_large" in big
    assert slow.startswith(b"HTTP/1.1 400") and b"slow_request" in slow


def test_connect_tunnel_to_the_allowed_origin_relays_both_ways(site: Site) -> None:
    async def run() -> bytes:
        proxy = await EgressProxy(policy_for(site)).start()
        try:
            r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
            w.write(f"CONNECT 127.0.0.1:{site.port} HTTP/1.1\r\n\r\n".encode())
            await w.drain()
            assert (await r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            w.write(b"GET /title-only HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            await w.drain()
            body = await asyncio.wait_for(r.read(), 5)
            w.close()
            await w.wait_closed()
            return body
        finally:
            await proxy.aclose()

    assert b"Only a &lt;title&gt; here" in asyncio.run(run())
