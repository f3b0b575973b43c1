"""Who the client is: its address, believed from proxy headers only when a trusted proxy sent them.

The direct peer of the connection is the client, unless it is one of ``OGSHOT_TRUSTED_PROXIES``
(addresses or CIDR blocks). Then ``X-Forwarded-For`` (or, failing that, RFC 7239 ``Forwarded``)
is read from the right: every hop that is itself a trusted proxy is skipped, and the first one
that is not is the client. Whatever a client writes to the left of that is never read, so nobody
can choose the address their budget is counted against. ``X-Forwarded-Proto`` (or the
``proto=`` of ``Forwarded``) likewise sets the scheme only behind a trusted proxy.

The app's front layer (``front.py``) applies the rule to every request. This is the only such
rule in ogshot: ``ogshot serve`` runs uvicorn without its own proxy-header handling, so the two
can never disagree.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import Scope

from .errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The address of the client the current request is for; read by the per-client budget.
CLIENT: ContextVar[str] = ContextVar("ogshot_client", default="-")

#: More hops than this in one header is not a real chain of proxies: stop reading there.
MAX_HOPS = 32
_FORWARDED_PAIR = re.compile(r'\s*([A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)\s*')


def parse_networks(text: str) -> tuple[Network, ...]:
    """``OGSHOT_TRUSTED_PROXIES``: comma-separated addresses or CIDR blocks."""
    nets = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"OGSHOT_TRUSTED_PROXIES: '{item}' is not an IP address or CIDR block"
            ) from None
    return tuple(nets)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a header element: ``1.2.3.4``, ``1.2.3.4:5``, ``[::1]:5``, ``::1``."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _forwarded_elements(value: str) -> list[dict[str, str]]:
    """RFC 7239 ``Forwarded``: one dict of lower-case parameters per element."""
    elements = []
    for element in value.split(",")[-MAX_HOPS:]:
        params = {}
        for pair in element.split(";"):
            m = _FORWARDED_PAIR.fullmatch(pair)
            if m:
                params[m[1].lower()] = m[2].strip('"')
        elements.append(params)
    return elements


@dataclass(frozen=True)
class ClientRule:
    trusted: tuple[Network, ...] = ()

    def is_trusted(self, host: str | None) -> bool:
        if not self.trusted or not host:
            return False
        addr = _ip(host)
        return addr is not None and any(addr in net for net in self.trusted)

    def resolve(self, scope: Scope) -> tuple[str, str | None]:
        """The client's address and, behind a trusted proxy, the scheme it used (or None)."""
        client = scope.get("client")
        peer = client[0] if client else ""
        if not self.is_trusted(peer):
            return peer or "-", None
        xff: list[str] = []
        forwarded: list[str] = []
        proto: str | None = None
        for name, raw in scope.get("headers", ()):
            if name == b"x-forwarded-for":
                xff.append(raw.decode("latin-1"))
            elif name == b"forwarded":
                forwarded.append(raw.decode("latin-1"))
            elif name == b"x-forwarded-proto":
                proto = raw.decode("latin-1").split(",")[-1].strip().lower()
        hops: list[str] = []
        if xff:
            hops = [h.strip() for h in ",".join(xff).split(",")][-MAX_HOPS:]
        elif forwarded:
            elements = _forwarded_elements(",".join(forwarded))
            hops = [e.get("for", "") for e in elements]
            if proto is None and elements and "proto" in elements[-1]:
                proto = elements[-1]["proto"].lower()
        address = peer
        for hop in reversed(hops):
            addr = _ip(hop)
            if addr is None:
                break  # "unknown", an obfuscated name or garbage: the last good hop stands
            address = str(addr)
            if not any(addr in net for net in self.trusted):
                break
        if proto not in ("http", "https"):
            proto = None
        return address, proto

    def apply(self, scope: Scope) -> tuple[Scope, str]:
        """The scope as the app sees it (``client`` and, behind a trusted proxy, ``scheme`` set
        by this rule; a copy when anything changes), and the client's address."""
        client = scope.get("client")
        if not self.trusted:
            return scope, (client[0] if client else "") or "-"
        address, proto = self.resolve(scope)
        scope = dict(scope)
        if client is None or client[0] != address:
            scope["client"] = (address, 0)
        if proto is not None:
            scope["scheme"] = proto
        return scope, address


@functools.lru_cache(maxsize=4096)
def budget_key(address: str) -> str:
    """What one client's budget is counted under: the address, or its /64 for IPv6 (one
    subscriber usually holds a whole /64).

    Remembered for the last few thousand addresses: every card made asks it, mostly for a
    client it has seen, and parsing an address each time cost more than counting the card.
    """
    addr = _ip(address)
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr) if addr is not None else address
