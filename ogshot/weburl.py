"""Page URLs read the way a browser reads them.

A page URL reaches two readers: ogshot's URL policy and whatever fetches the page (an upstream
screenshot API, a local browser). If they read one string differently, the policy checks one
host while the page is fetched from another: ``http://127。0。0。1/`` is a host name to
:func:`urllib.parse.urlsplit` and loopback to every browser. So ogshot parses every URL once with
a WHATWG URL Standard parser (ada, the parser inside Node.js) and from then on uses only its
canonical form: the policy checks its host, the card carries it (so the cache key and the
signature see it) and the capture provider is sent it. Whatever the parser refuses is refused.

The canonical host is what a browser would connect to: IDNA-mapped and lower-cased (``①②⑦``
becomes ``127``, ``ＥＸＡＭＰＬＥ`` becomes ``example``, ``bücher`` becomes ``xn--bcher-kva``),
percent-decoded, every IPv4 spelling (``0x7f.1``, ``2130706433``, ``0177.0.0.1``) written
``a.b.c.d`` and every IPv6 address in its compressed form, in brackets.

ogshot is stricter than a browser in three ways, each to leave no second reading to a less careful
parser downstream: no white space or control characters anywhere (a browser drops tabs and line
breaks silently), no backslash (a browser reads ``\\`` as ``/`` in http URLs, most other parsers
do not: ``http://a.com\\@127.0.0.1/``), and no user name or password.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import ada_url
from ada_url.ada_adapter import ParseAttributes

#: Longest page URL accepted, as given and once canonical (percent-encoding can lengthen it).
MAX_URL = 2048

_DEFAULT_PORTS = {"http": 80, "https": 443}

HostType = Literal["name", "ipv4", "ipv6"]
_HOST_TYPES: dict[int, HostType] = {
    ada_url.HostType.DEFAULT: "name",
    ada_url.HostType.IPV4: "ipv4",
    ada_url.HostType.IPV6: "ipv6",
}


@dataclass(frozen=True)
class PageUrl:
    """A page URL in its canonical form, and the parts the policy looks at."""

    #: The whole URL as a browser serialises it, without its fragment.
    href: str
    scheme: Literal["http", "https"]
    #: The host as a browser connects to it; IPv6 addresses without their brackets.
    host: str
    host_type: HostType
    port: int

    @property
    def origin(self) -> str:
        """``scheme://host:port`` with the port always written: the key of the private allowlist."""
        host = f"[{self.host}]" if self.host_type == "ipv6" else self.host
        return f"{self.scheme}://{host}:{self.port}"


def whatwg_parse(value: str) -> ParseAttributes | None:
    """The WHATWG parser's reading of ``value``, or None where it fails (as a browser's would)."""
    try:
        return ada_url.parse_url(value)
    except ValueError:  # refused by the parser, or a lone surrogate that has no UTF-8 form
        return None


def parse_page_url(value: str) -> PageUrl:
    """Parse and canonicalise a page URL; raise :class:`ValueError` with a sentence if refused.

    The sentence completes "'url' ...", the way the card's validation errors read.
    """
    if len(value) > MAX_URL:
        raise ValueError(f"must be at most {MAX_URL} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ch in "\\\x7f" for ch in value):
        raise ValueError("must not contain white space, control characters or backslashes")
    parts = whatwg_parse(value)
    if parts is None:
        raise ValueError("is not a valid URL (as a browser would parse it)")
    scheme: Literal["http", "https"]
    if parts["protocol"] == "http:":
        scheme = "http"
    elif parts["protocol"] == "https:":
        scheme = "https"
    else:
        raise ValueError("must be an http or https URL")
    if parts["username"] or parts["password"]:
        raise ValueError("must not carry a user name or password")
    host = parts["hostname"]
    host_type = _HOST_TYPES[parts["host_type"]]
    if not host:  # not reachable for http(s) with a WHATWG parser; kept as a guard
        raise ValueError("must name a host")
    if host_type == "ipv6":
        host = host[1:-1]
    elif host_type == "name" and not _punycode_valid(host):
        raise ValueError("has a host name with an 'xn--' label that is not valid IDNA")
    # A '#' before the fragment is always percent-encoded in the serialisation.
    href = parts["href"].partition("#")[0]
    if len(href) > MAX_URL:
        raise ValueError(f"must be at most {MAX_URL} characters once percent-encoded")
    port = int(parts["port"]) if parts["port"] else _DEFAULT_PORTS[scheme]
    return PageUrl(href, scheme, host, host_type, port)


def _punycode_valid(host: str) -> bool:
    """Whether every ``xn--`` label decodes to Unicode: the parser keeps some that browsers refuse
    (``xn--a``, ``xn--``), and a page that no browser would open is refused rather than captured."""
    return all(
        ada_url.idna.decode(label) != label for label in host.split(".") if label.startswith("xn--")
    )


def display_host(host: str) -> str:
    """A canonical host as people read it: Unicode labels rather than ``xn--`` ones."""
    host = host.rstrip(".")
    if "xn--" not in host:
        return host
    try:
        return ada_url.idna.decode(host)
    except (ValueError, UnicodeDecodeError):
        return host
