"""The client's address: proxy headers believed only from trusted proxies."""

from __future__ import annotations

import pytest

from ogshot.clients import ClientRule, budget_key, parse_networks
from ogshot.errors import ConfigError


def scope(peer: str, *headers: tuple[str, str]) -> dict[str, object]:
    return {
        "type": "http",
        "client": (peer, 4242),
        "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers],
    }


RULE = ClientRule(parse_networks("10.0.0.0/8, 127.0.0.1, fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "headers", "client", "proto"),
    [
        # Untrusted peers: their headers are never read.
        ("203.0.113.9", [("X-Forwarded-For", "1.2.3.4")], "203.0.113.9", None),
        ("203.0.113.9", [("Forwarded", "for=1.2.3.4;proto=https")], "203.0.113.9", None),
        ("127.0.0.2", [("X-Forwarded-For", "1.2.3.4")], "127.0.0.2", None),
        # Trusted peer: the rightmost hop that is not itself trusted.
        ("127.0.0.1", [("X-Forwarded-For", "1.2.3.4")], "1.2.3.4", None),
        ("10.1.2.3", [("X-Forwarded-For", "6.6.6.6, 1.2.3.4, 10.9.9.9")], "1.2.3.4", None),
        (
            "10.1.2.3",
            [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "1.2.3.4")],
            "1.2.3.4",
            None,
        ),
        ("10.1.2.3", [("X-Forwarded-For", "1.2.3.4:5678")], "1.2.3.4", None),
        ("10.1.2.3", [("X-Forwarded-For", "[2001:db8::1]:443")], "2001:db8::1", None),
        ("10.1.2.3", [("X-Forwarded-For", "::ffff:1.2.3.4")], "1.2.3.4", None),
        # Garbage or "unknown" stops the walk: the last good hop stands.
        ("10.1.2.3", [("X-Forwarded-For", "1.2.3.4, unknown")], "10.1.2.3", None),
        ("10.1.2.3", [("X-Forwarded-For", "")], "10.1.2.3", None),
        ("10.1.2.3", [("X-Forwarded-For", "x" * 10000)], "10.1.2.3", None),
        # Every hop trusted: the leftmost one.
        ("10.1.2.3", [("X-Forwarded-For", "10.0.0.5, 10.0.0.6")], "10.0.0.5", None),
        # Forwarded (RFC 7239), with a scheme.
        ("10.1.2.3", [("Forwarded", 'for="[2001:db8::2]:80";proto=https')], "2001:db8::2", "https"),
        ("10.1.2.3", [("Forwarded", "for=6.6.6.6, for=1.2.3.4;proto=http")], "1.2.3.4", "http"),
        ("10.1.2.3", [("Forwarded", "for=_hidden")], "10.1.2.3", None),
        (
            "10.1.2.3",
            [("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Proto", "https")],
            "1.2.3.4",
            "https",
        ),
        ("10.1.2.3", [("X-Forwarded-Proto", "gopher")], "10.1.2.3", None),
    ],
)
def test_client_address(
    peer: str, headers: list[tuple[str, str]], client: str, proto: str | None
) -> None:
    assert RULE.resolve(scope(peer, *headers)) == (client, proto)


def test_nobody_is_trusted_by_default() -> None:
    rule = ClientRule(parse_networks(""))
    assert rule.resolve(scope("127.0.0.1", ("X-Forwarded-For", "1.2.3.4"))) == ("127.0.0.1", None)


def test_long_chains_are_bounded() -> None:
    chain = ", ".join(["10.0.0.1"] * 100_000)
    assert RULE.resolve(scope("10.1.2.3", ("X-Forwarded-For", chain)))[0] == "10.0.0.1"


def test_bad_trusted_proxies_setting() -> None:
    with pytest.raises(ConfigError):
        parse_networks("10.0.0.0/8, example.com")


def test_ipv6_clients_share_a_budget_per_64() -> None:
    assert budget_key("2001:db8:1:2:aaaa::1") == budget_key("2001:db8:1:2:bbbb::9")
    assert budget_key("2001:db8:1:3::1") != budget_key("2001:db8:1:2::1")
    assert budget_key("192.0.2.7") == "192.0.2.7"


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        (" 192.0.2.7 ", "192.0.2.7"),
        ('"192.0.2.7"', "192.0.2.7"),
        ("192.0.2.7:8080", "192.0.2.7"),
        ("0.0.0.0", "0.0.0.0"),
        # Not addresses to Python's parser, so each is counted as written: a leading zero (could
        # be octal), a zone on IPv4, a short or over-long form, a digit that is not ASCII.
        ("01.2.3.4", "01.2.3.4"),
        ("1.2.3.04", "1.2.3.04"),
        ("1.2.3.4%eth0", "1.2.3.4%eth0"),
        ("1.2.3", "1.2.3"),
        ("1.2.3.4.", "1.2.3.4."),
        ("256.1.1.1", "256.1.1.1"),
        ("\u0661.2.3.4", "\u0661.2.3.4"),
        ("-", "-"),
        ("unknown", "unknown"),
        # IPv4-mapped IPv6 is the IPv4 client.
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("::ffff:c000:0207", "192.0.2.7"),
        # IPv6: the /64, however it is spelled.
        ("2001:DB8:0:0:1::1", "2001:db8::/64"),
        ("[2001:db8::1]:443", "2001:db8::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::1", "::/64"),
    ],
)
def test_budget_key_of_every_spelling(address: str, key: str) -> None:
    assert budget_key(address) == key
    assert budget_key(address) == key  # remembered, the same


def test_budget_key_remembers_a_bounded_number_of_addresses() -> None:
    """The memo of parsed addresses must not grow with an address spray."""
    for i in range(20_000):
        budget_key(f"2001:db8:{i:x}::1")
    info = budget_key.cache_info()
    assert info.maxsize is not None and info.currsize <= info.maxsize <= 16384
    assert budget_key("2001:db8:4e1f::1") == "2001:db8:4e1f::/64"
