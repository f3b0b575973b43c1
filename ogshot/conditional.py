"""HTTP conditional and range requests (RFC 9110 §13 and §14), as pure functions.

Kept apart from the routes so that each rule is a row in a test table. The values they take are
whole fields, already combined from repeated lines by :mod:`ogshot.headers`.
"""

from __future__ import annotations

from .headers import OWS, digits, entity_tags, list_elements


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def none_match(header: str | None, etag: str) -> bool:
    """True when ``If-None-Match`` matches ``etag`` by weak comparison (so: answer 304).

    Handles ``*``, lists (empty elements ignored), weak validators and optional white space; a
    value that does not follow the grammar never matches, so the client simply gets the full
    response.
    """
    if header is None:
        return False
    if header.strip(OWS) == "*":
        return True
    tags = entity_tags(header)
    return tags is not None and _opaque(etag) in tags


def byte_range(
    header: str | None, if_range: str | None, etag: str, size: int
) -> tuple[int, int] | None:
    """The single satisfiable range ``(start, end_inclusive)`` to serve as 206, or None for 200.

    Multiple ranges, malformed or unsatisfiable ranges, and an ``If-Range`` that does not match
    the strong ETag all fall back to the full response, which RFC 9110 allows a server to send.
    Positions are ASCII digits of any length (read by :func:`ogshot.headers.digits`).
    """
    if header is None or size <= 0:
        return None
    if if_range is not None and if_range.strip(OWS) != etag:
        return None
    unit, eq, spec = header.partition("=")
    if not eq or unit.strip(OWS).lower() != "bytes":
        return None
    specs = list_elements(spec)
    if len(specs) != 1:
        return None
    first, dash, last = specs[0].partition("-")
    if not dash:
        return None
    if first == "":
        suffix = digits(last)
        if suffix is None or suffix == 0:
            return None
        start, end = max(0, size - suffix), size - 1
    else:
        first_pos = digits(first)
        last_pos = size - 1 if last == "" else digits(last)
        if first_pos is None or last_pos is None or first_pos >= size or last_pos < first_pos:
            return None
        start, end = first_pos, min(last_pos, size - 1)
    if start == 0 and end == size - 1:
        return None  # the whole thing: a plain 200 says the same with fewer headers
    return start, end
