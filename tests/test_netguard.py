from __future__ import annotations

import ipaddress

import pytest

from ogshot.errors import Forbidden
from ogshot.netguard import (
    UrlPolicy,
    classify_ip,
    host_matches,
    parse_ipv4_loose,
    private_reason,
)
from ogshot.settings import Settings


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.1.2", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link_local"),
        ("100.64.0.1", "shared"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "reserved"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link_local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fec0::1", "site_local"),
        # IPv4 inside IPv6, each of the ways that ipaddress's flags miss.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link_local"),
        ("::127.0.0.1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link_local"),
        ("64:ff9b::7f00:1", "loopback"),
        ("2002:7f00:1::", "loopback"),
        ("2002:a00:1::1", "private"),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),  # Teredo client 10.0.0.1
        # Public ones.
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("172.32.0.1", None),
        ("100.128.0.1", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),
    ],
)
def test_classify_ip(address: str, reason: str | None) -> None:
    assert classify_ip(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("10.0x10.0.1", "10.16.0.1"),
        ("169.254.43518", "169.254.169.254"),
        ("0", "0.0.0.0"),
        ("1.2.3.4.", "1.2.3.4"),
        ("example.com", None),
        ("1.2.3.4.5", None),
        ("256.1.1.1", None),
        ("1.2.3.256", None),
        ("4294967296", None),
        ("08.1.1.1", None),
        ("1e3", None),
        ("", None),
    ],
)
def test_loose_ipv4_spellings(spelling: str, address: str | None) -> None:
    parsed = parse_ipv4_loose(spelling)
    assert (str(parsed) if parsed else None) == address


@pytest.mark.parametrize(
    ("host", "private"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("app.localhost", True),
        ("metadata.google.internal", True),
        ("2130706433", True),
        ("0x7f.1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("fe80::1%eth0", True),
        ("example.com", False),
        ("localhost.example.com", False),
        ("8.8.8.8", False),
    ],
)
def test_private_hosts_by_spelling(host: str, private: bool) -> None:
    assert (private_reason(host) is not None) is private


@pytest.mark.parametrize(
    ("host", "pattern", "matches"),
    [
        ("example.com", "example.com", True),
        ("EXAMPLE.com.", "example.com", True),
        ("www.example.com", "example.com", False),
        ("www.example.com", "*.example.com", True),
        ("a.b.example.com", "*.example.com", True),
        ("example.com", "*.example.com", False),
        ("badexample.com", "*.example.com", False),
        ("example.com.evil.net", "example.com", False),
    ],
)
def test_host_patterns(host: str, pattern: str, matches: bool) -> None:
    assert host_matches(host, pattern) is matches


def _policy(**kw: object) -> UrlPolicy:
    return UrlPolicy.from_settings(Settings(_env_file=None, **kw))  # type: ignore[arg-type]


def test_policy_blocks_private_and_names_the_reason() -> None:
    policy = _policy()
    policy.check("https://example.com/")
    for url in ("http://127.0.0.1/", "http://2130706433/", "http://[::ffff:10.0.0.1]/x"):
        with pytest.raises(Forbidden) as err:
            policy.check(url)
        assert err.value.status == 403


def test_policy_allow_private_networks() -> None:
    _policy(allow_private_networks=True).check("http://127.0.0.1:8080/")


def test_private_allowlist_is_by_exact_origin() -> None:
    policy = _policy(private_allowlist="http://127.0.0.1:8080, http://localhost")
    policy.check("http://127.0.0.1:8080/page")
    policy.check("http://localhost:80/")
    with pytest.raises(Forbidden):
        policy.check("http://127.0.0.1:8081/")
    with pytest.raises(Forbidden):
        policy.check("https://127.0.0.1:8080/")


def test_allowed_hosts_narrow_captures() -> None:
    policy = _policy(allowed_hosts="example.com,*.example.org")
    policy.check("https://example.com/a")
    policy.check("https://docs.example.org/a")
    for url in ("https://example.net/", "https://example.org/"):
        with pytest.raises(Forbidden, match="not allowed"):
            policy.check(url)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        # IPv4-translated (RFC 6145): ipaddress reads none of it.
        ("::ffff:0:127.0.0.1", "loopback"),
        ("::ffff:0:8.8.8.8", "reserved"),
        ("::8.8.8.8", "reserved"),  # compatible: deprecated, never routed
        # Local-use NAT64 (RFC 8215): the operator's layout, so all of it, whatever it carries.
        ("64:ff9b:1:a14:1e:2800::", "reserved"),
        ("64:ff9b:1::a14:1e28", "reserved"),
        ("64:ff9b:1::808:808", "reserved"),
        # Teredo: both halves count.
        ("2001:0:a00:1:8000:63bf:f7f7:f7f7", "private"),  # server 10.0.0.1
        ("2001:0:3522:589f:0:0:bbb8:a30d", None),
        # Special-purpose ranges without IPv4 inside.
        ("3fff::1", "reserved"),
        ("5f00::1", "reserved"),
        ("2001:2::1", "reserved"),
        ("::2", "unspecified"),
        ("192.0.0.9", "reserved"),
    ],
)
def test_classify_ip_unwraps_every_embedding(address: str, reason: str | None) -> None:
    assert classify_ip(ipaddress.ip_address(address)) == reason


def test_policy_checks_the_host_a_browser_connects_to() -> None:
    policy = _policy()
    for url in (
        "http://127。0。0。1/",
        "http://%31%32%37.0.0.1/",
        "http://①②⑦.0.0.1/",
        "http://localhost%2e/",
        "http://ＬＯＣＡＬＨＯＳＴ/",
        "http://[::ffff:0:127.0.0.1]/",
        "http://[64:ff9b::169.254.169.254]/",
    ):
        with pytest.raises(Forbidden):
            policy.check(url)
    with pytest.raises(Forbidden, match="not a valid URL"):
        policy.check("http://09.0.0.1/")


def test_allowlists_are_read_in_canonical_form() -> None:
    policy = _policy(allowed_hosts="*.Bücher.de", private_allowlist="http://LOCALHOST:80")
    policy.check("https://shop.xn--bcher-kva.de/")
    with pytest.raises(Forbidden, match="not allowed"):
        policy.check("https://bücher.de/")
    assert _policy(private_allowlist="http://LOCALHOST:80").private_origins == {
        "http://localhost:80"
    }
