"""Reading request and response header fields by the grammar of RFC 9110.

Every place that reads a header goes through here, so that every road through the server reads
the same bytes the same way:

- a field sent on several lines is one field, its lines joined with ``", "`` in order (§5.3);
- values are decoded as Latin-1, so any byte a client sends maps to one character and nothing
  raises;
- list elements are split on commas outside quoted strings, with optional white space (space and
  tab only) trimmed and empty elements ignored (§5.6.1);
- numbers are ``1*DIGIT`` in ASCII (``str.isdigit()`` also accepts ``²``, which ``int()``
  refuses), and any length is read without ever converting thousands of digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: Optional white space (RFC 9110 §5.6.3): space and horizontal tab, nothing else.
OWS = " \t"

#: A number read from a header saturates here: larger than any size or delay ogshot deals in.
HUGE = 10**18
_MAX_DIGITS = 18

_DIGITS = re.compile(r"[0-9]+")
# One list element of entity tags: optional white space, an optional tag, the comma or the end.
_ETAG_ELEMENT = re.compile(r'[ \t]*(?:(W/)?("[\x21\x23-\x7e\x80-\xff]*"))?[ \t]*(?:,|\Z)')

RawHeaders = Iterable[tuple[bytes, bytes]]


def field_value(headers: RawHeaders, name: bytes) -> str | None:
    """The value of field ``name`` (lower case), its repeated lines combined; None when absent."""
    return _join([value.decode("latin-1") for key, value in headers if key == name])


def list_elements(value: str) -> list[str]:
    """The non-empty elements of a comma-separated list, trimmed; commas inside quoted strings
    do not split."""
    elements: list[str] = []
    start = 0
    quoted = False
    escaped = False
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            elements.append(value[start:i])
            start = i + 1
    elements.append(value[start:])
    return [e.strip(OWS) for e in elements if e.strip(OWS)]


def digits(text: str) -> int | None:
    """``1*DIGIT`` in ASCII as a number, or None for anything else (signs, white space, ``²``).

    Arbitrarily long numbers are accepted by the grammar; beyond 18 significant digits they read
    as :data:`HUGE`, without converting them.
    """
    if not _DIGITS.fullmatch(text):
        return None
    significant = text.lstrip("0")
    if len(significant) > _MAX_DIGITS:
        return HUGE
    return int(significant or "0")


def entity_tags(value: str) -> list[str] | None:
    """The opaque tags (quotes included, ``W/`` dropped) of an entity-tag list, or None when the
    value does not follow the grammar. Empty list elements are skipped."""
    tags: list[str] = []
    pos = 0
    while pos < len(value):
        m = _ETAG_ELEMENT.match(value, pos)
        if m is None or m.end() == pos:
            return None
        if m.group(2):
            tags.append(m.group(2))
        pos = m.end()
    return tags


@dataclass(frozen=True, slots=True)
class Conditions:
    """The request fields that shape a cacheable reply: ``If-None-Match``, ``Range``,
    ``If-Range``, each combined from all of its lines (None when absent)."""

    if_none_match: str | None = None
    range: str | None = None
    if_range: str | None = None

    @classmethod
    def read(cls, headers: RawHeaders) -> Conditions:
        """Read them from raw ASGI headers (names in lower case, as ASGI servers give them)."""
        inm: list[str] = []
        rng: list[str] = []
        if_range: list[str] = []
        for name, value in headers:
            if name == b"if-none-match":
                inm.append(value.decode("latin-1"))
            elif name == b"range":
                rng.append(value.decode("latin-1"))
            elif name == b"if-range":
                if_range.append(value.decode("latin-1"))
        return cls(_join(inm), _join(rng), _join(if_range))


def _join(lines: list[str]) -> str | None:
    if not lines:
        return None
    return lines[0] if len(lines) == 1 else ", ".join(lines)
