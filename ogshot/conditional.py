"""HTTP conditional and range requests (RFC 9110 §13 and §14), as pure functions.

Kept apart from the routes so that each rule is a row in a test table.
"""

from __future__ import annotations

import re

_TAG = re.compile(r'\s*(W/)?("[^"]*")\s*(?:,|$)')


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def none_match(header: str | None, etag: str) -> bool:
    """True when ``If-None-Match`` matches ``etag`` by weak comparison (so: answer 304).

    Handles ``*``, lists, weak validators and stray white space; a malformed header never
    matches, so the client simply gets the full response.
    """
    if not header:
        return False
    header = header.strip()
    if header == "*":
        return True
    want = _opaque(etag)
    pos = 0
    while pos < len(header):
        m = _TAG.match(header, pos)
        if m is None:
            return False
        if m.group(2) == want:
            return True
        pos = m.end()
    return False


def byte_range(
    header: str | None, if_range: str | None, etag: str, size: int
) -> tuple[int, int] | None:
    """The single satisfiable range ``(start, end_inclusive)`` to serve as 206, or None for 200.

    Multiple ranges, malformed or unsatisfiable ranges, and an ``If-Range`` that does not match
    the strong ETag all fall back to the full response, which RFC 9110 allows a server to send.
    """
    if not header or size <= 0:
        return None
    if if_range is not None and if_range.strip() != etag:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "" or int(last) == 0:
            return None
        start = max(0, size - int(last))
        return start, size - 1
    start = int(first)
    if start >= size:
        return None
    end = size - 1 if last == "" else min(int(last), size - 1)
    if end < start:
        return None
    if start == 0 and end == size - 1:
        return None  # the whole thing: a plain 200 says the same with fewer headers
    return start, end
