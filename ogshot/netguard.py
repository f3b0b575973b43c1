"""Which pages a capture may point at.

ogshot does not fetch pages itself: an upstream screenshot API does. It resolves the host on its
own side, so ogshot cannot pin addresses; what it can and does refuse is every URL whose host is
*written* as a private address or named ``localhost``, because a self-hosted upstream inside the
same network would happily fetch it. The host checked is the one a browser would connect to: the
URL's canonical form (:mod:`ogshot.weburl`), in which every spelling of an address
(``127。0。0。1``, ``%31%32%37.0.0.1``, ``①②⑦.0.0.1``, ``0x7f.1``, ``2130706433``,
``[::ffff:0:127.0.0.1]``...) has become one. ``OGSHOT_ALLOWED_HOSTS`` narrows captures further
to a list of host patterns.

Python's :mod:`ipaddress` flags are not enough alone (``is_global`` is true for ``::127.0.0.1``
and for NAT64 forms of private addresses; ``100.64.0.0/10`` is not ``is_private``), so
:func:`classify_ip` unwraps embedded IPv4 itself (mapped, translated, compatible, 6to4, NAT64,
Teredo) and checks explicit tables before falling back on ``is_global``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .errors import Forbidden
from .settings import Settings
from .weburl import PageUrl, parse_page_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4_BLOCKED: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), reason)
    for net, reason in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link_local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "reserved"),
        ("192.88.99.0/24", "reserved"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "reserved"),
        ("198.51.100.0/24", "reserved"),
        ("203.0.113.0/24", "reserved"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
    )
)

_V6_BLOCKED: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), reason)
    for net, reason in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("fc00::/7", "private"),
        ("fe80::/10", "link_local"),
        ("fec0::/10", "site_local"),
        ("ff00::/8", "multicast"),
        ("2001:db8::/32", "reserved"),
        ("100::/64", "reserved"),
        ("::/8", "reserved"),
        ("64:ff9b:1::/48", "reserved"),  # local-use NAT64 (RFC 8215)
        ("2001::/23", "reserved"),
        ("3fff::/20", "reserved"),
        ("5f00::/16", "reserved"),
    )
)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_COMPAT = ipaddress.IPv6Network("::/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")

#: Names that mean "this machine" or a cloud's metadata service whatever DNS says.
_PRIVATE_NAMES = ("localhost", "localhost.localdomain", "metadata.google.internal")


def _v4(number: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(number & 0xFFFFFFFF)


def embedded_ipv4s(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries (mapped, translated, compatible, 6to4, NAT64,
    Teredo server and client), or () if it carries none.

    The local-use NAT64 prefix ``64:ff9b:1::/48`` is not unwrapped: where it puts the IPv4 address
    is the operator's choice (RFC 6052), and :func:`classify_ip` refuses all of it as reserved.
    """
    if ip.ipv4_mapped is not None:
        return (ip.ipv4_mapped,)
    if ip in _TRANSLATED or ip in _NAT64 or (ip in _COMPAT and int(ip) > 1):
        return (_v4(int(ip)),)
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip.teredo is not None:
        return ip.teredo
    return ()


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The first IPv4 address an IPv6 address carries, if any: see :func:`embedded_ipv4s`."""
    inner = embedded_ipv4s(ip)
    return inner[0] if inner else None


def classify_ip(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address (``loopback``, ``private``...), or None if it is.

    An IPv6 address that carries IPv4 is as public as every address it carries, and no more: the
    compatible and translated forms, and local-use NAT64, are reserved whatever they carry.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4s(ip)
        for v4 in inner:
            reason = classify_ip(v4)
            if reason is not None:
                return reason
        if inner and ip not in _COMPAT and ip not in _TRANSLATED:
            return None
        for net6, reason in _V6_BLOCKED:
            if ip in net6:
                return reason
    else:
        for net4, reason in _V4_BLOCKED:
            if ip in net4:
                return reason
    # Whatever else the IANA special-purpose registries hold (as Python knows them).
    return None if ip.is_global else "reserved"


def parse_ipv4_loose(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any spelling ``inet_aton`` accepts, or None if ``host`` is a name.

    One to four parts, each decimal, ``0x`` hex or ``0``-prefixed octal; the last part fills the
    remaining bytes (``127.1`` is ``127.0.0.1``, ``2130706433`` is too).
    """
    parts = host.split(".")
    if parts and parts[-1] == "":
        parts.pop()  # a trailing dot
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        try:
            if part[:2].lower() == "0x":
                value = int(part[2:] or "0", 16)
            elif len(part) > 1 and part.startswith("0"):
                value = int(part[1:], 8)
            else:
                if not part.isdigit():
                    return None
                value = int(part, 10)
        except ValueError:
            return None
        values.append(value)
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = last
    for i, v in enumerate(head):
        number |= v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def host_literal(host: str) -> IPAddress | None:
    """The address a URL host spells, if it spells one."""
    host = host.strip("[]")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return None
    return parse_ipv4_loose(host)


def private_reason(host: str) -> str | None:
    """Why a URL host is private (by its spelling alone), or None.

    Give it a canonical host (:attr:`PageUrl.host`): the loose IPv4 reading here is a second line
    for hosts that some resolver might still read as numbers.
    """
    host = host.lower().rstrip(".")
    if host in _PRIVATE_NAMES or host.endswith(".localhost"):
        return "loopback"
    ip = host_literal(host)
    return classify_ip(ip) if ip is not None else None


def host_matches(host: str, pattern: str) -> bool:
    """``example.com`` matches itself; ``*.example.com`` matches its subdomains, not itself."""
    host, pattern = host.lower().rstrip("."), pattern.lower().strip().rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def _canonical_pattern(pattern: str) -> str:
    """A host pattern in the canonical host form (``*.Bücher.de`` → ``*.xn--bcher-kva.de``)."""
    wild, name = ("*.", pattern[2:]) if pattern.startswith("*.") else ("", pattern)
    try:
        return wild + parse_page_url(f"http://{name}/").host
    except ValueError:
        return pattern  # matches no canonical host, as a mistyped pattern should


def _canonical_origin(origin: str) -> str:
    try:
        return parse_page_url(origin).origin
    except ValueError:
        return origin


@dataclass(frozen=True)
class UrlPolicy:
    """The hosts captures may reach; built once from the settings."""

    allowed_hosts: tuple[str, ...] = ()
    allow_private: bool = False
    private_origins: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlPolicy:
        hosts = tuple(
            _canonical_pattern(h.strip()) for h in settings.allowed_hosts.split(",") if h.strip()
        )
        origins = frozenset(
            _canonical_origin(o.strip()) for o in settings.private_allowlist.split(",") if o.strip()
        )
        return cls(hosts, settings.allow_private_networks, origins)

    def check(self, url: str | PageUrl) -> None:
        """Raise :class:`Forbidden` (403) unless a capture of ``url`` is allowed.

        ``url`` is read as a browser reads it (a card's ``url`` is already canonical); one that
        does not parse is refused too.
        """
        try:
            page = url if isinstance(url, PageUrl) else parse_page_url(url)
        except ValueError as exc:
            raise Forbidden(f"the page URL {exc.args[0]}: not captured") from None
        host = page.host
        if self.allowed_hosts and not any(host_matches(host, p) for p in self.allowed_hosts):
            raise Forbidden(f"captures of host '{host}' are not allowed on this server")
        reason = private_reason(host)
        if reason and not self.allow_private and page.origin not in self.private_origins:
            raise Forbidden(f"'{host}' is a {reason.replace('_', '-')} address: not captured")
