"""The cached fast path and the normal route give the same answer to any set of header lines.

Both are driven at the ASGI level with raw header lists, so repeated lines, empty values and
bytes outside ASCII reach the app exactly as a server would pass them on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ogshot.api import create_app
from ogshot.service import CardService
from ogshot.settings import Settings

QUERY = b"title=Same%20answer&subtitle=either%20way"
Reply = tuple[int, list[tuple[bytes, bytes]], bytes]


async def asgi_call(
    app: FastAPI, method: str, query: bytes, headers: list[tuple[bytes, bytes]]
) -> Reply:
    """One request straight into the ASGI app; the reply as (status, headers, body)."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/og.png",
        "raw_path": b"/og.png",
        "root_path": "",
        "query_string": query,
        # One request id for every call: each reply echoes it, on both roads alike.
        "headers": [(b"host", b"testserver"), (b"x-request-id", b"equivalence"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": b"", "more_body": False}

    status = 0
    out_headers: list[tuple[bytes, bytes]] = []
    body = b""

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, out_headers, body
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")

    await app(scope, receive, send)
    return status, out_headers, body


class Roads:
    """The app, and a way to send one request down each road and know which road it took."""

    def __init__(self, client: TestClient, app: FastAPI, service: CardService) -> None:
        self.client, self.app, self.service = client, app, service
        self.route_calls = 0
        original = service.card_for_key

        async def counted(*args: Any, **kw: Any) -> Any:
            self.route_calls += 1
            return await original(*args, **kw)

        service.card_for_key = counted  # type: ignore[method-assign]

    def call(self, method: str, headers: list[tuple[bytes, bytes]]) -> Reply:
        return self.client.portal.call(asgi_call, self.app, method, QUERY, headers)  # type: ignore[union-attr]

    def normal(self, method: str, headers: list[tuple[bytes, bytes]]) -> Reply:
        self.app.state.card_keys.clear()  # first sight of the query: the route answers
        before = self.route_calls
        reply = self.call(method, headers)
        assert self.route_calls == before + 1, "the normal route did not answer"
        return reply

    def fast(self, method: str, headers: list[tuple[bytes, bytes]]) -> Reply:
        before = self.route_calls
        reply = self.call(method, headers)
        assert self.route_calls == before, "the fast path did not answer"
        return reply


@pytest.fixture(scope="module")
def roads(layouts: Any, fonts: Any) -> Iterator[Roads]:
    settings_ = Settings(_env_file=None, capture="none")  # type: ignore[call-arg]
    service = CardService(settings_, layouts=layouts, fonts=fonts)
    app = create_app(settings_, service=service)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = Roads(client, app, service)
        first = r.normal("GET", [])
        assert first[0] == 200
        yield r


def _header(reply: Reply, name: bytes) -> bytes | None:
    values = [v for k, v in reply[1] if k.lower() == name]
    assert len(values) <= 1, f"{name!r} sent twice"
    return values[0] if values else None


# Header values a client might send, good and bad, built around the card's real ETag and size.
def header_values(etag: bytes, size: int) -> st.SearchStrategy[bytes]:
    pos = st.integers(min_value=0, max_value=size + 10).map(lambda n: str(n).encode())
    odd_digits = st.sampled_from(
        [b"\xb2", b"\xc2\xb2", "\u0661".encode(), b"9" * 400, b"0" * 300 + b"7", b"+3", b" 4", b""]
    )
    number = st.one_of(pos, pos, odd_digits)
    spec = st.one_of(
        st.builds(lambda a, b: a + b"-" + b, number, number),
        st.builds(lambda a: a + b"-", number),
        st.builds(lambda b: b"-" + b, number),
        st.just(b""),
    )
    ranges = st.builds(
        lambda unit, specs, sep: unit + b"=" + sep.join(specs),
        st.sampled_from([b"bytes", b"BYTES", b"items", b"bytes ", b""]),
        st.lists(spec, min_size=0, max_size=3),
        st.sampled_from([b",", b", ", b" ,\t"]),
    )
    good = st.builds(
        lambda a, n: b"bytes=%d-%d" % (a, a + n),
        st.integers(min_value=0, max_value=size),
        st.integers(min_value=0, max_value=100),
    )
    tags = st.sampled_from([etag, b"W/" + etag, b'"other"', b"*", b"", b",", b'"', b'W/"x'])
    tag_lists = st.lists(tags, max_size=3).map(lambda t: b", ".join(t))
    junk = st.binary(max_size=20).map(lambda b: bytes(c for c in b if c not in b"\r\n"))
    return st.one_of(good, ranges, ranges, tags, tag_lists, junk)


def header_sets(etag: bytes, size: int) -> st.SearchStrategy[list[tuple[bytes, bytes]]]:
    name = st.sampled_from([b"range", b"if-range", b"if-none-match"])
    return st.lists(st.tuples(name, header_values(etag, size)), max_size=4)


_SINGLE = re.compile(rb"[ \t]*bytes[ \t]*=[ \t,]*([0-9]*)-([0-9]*)[ \t,]*", re.IGNORECASE)


def one_satisfiable_range(headers: list[tuple[bytes, bytes]], etag: bytes, size: int) -> bool:
    """An independent reading of "this asks for one satisfiable range, and If-Range allows it"."""
    ranges = [v for k, v in headers if k == b"range"]
    if_ranges = [v for k, v in headers if k == b"if-range"]
    if not ranges:
        return False
    if if_ranges and b", ".join(if_ranges).strip(b" \t") != etag:
        return False
    # Lines of one field are one list: empty lines and empty elements add nothing.
    m = _SINGLE.fullmatch(b", ".join(ranges))
    if m is None or (m.group(1) == b"" and m.group(2) == b""):
        return False
    first, last = m.group(1), m.group(2)
    if first == b"":
        return int(last) > 0
    return int(first) < size and (last == b"" or int(last) >= int(first))


EXAMPLES = 300


def test_fast_path_and_normal_route_answer_every_header_set_alike(roads: Roads) -> None:
    full = roads.fast("GET", [])
    etag = _header(full, b"etag")
    assert etag is not None
    size = len(full[2])
    seen: dict[int, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(method=st.sampled_from(["GET", "HEAD"]), headers=header_sets(etag, size))
    def same_answer(method: str, headers: list[tuple[bytes, bytes]]) -> None:
        normal = roads.normal(method, headers)
        fast = roads.fast(method, headers)
        seen[normal[0]] = seen.get(normal[0], 0) + 1

        assert normal[0] < 500 and fast[0] < 500
        assert normal[0] == fast[0]
        assert sorted(normal[1]) == sorted(fast[1])
        assert normal[2] == fast[2]

        status = normal[0]
        assert status in (200, 206, 304)
        if status == 206:
            assert one_satisfiable_range(headers, etag, size), headers
            content_range = _header(normal, b"content-range")
            assert content_range is not None
            m = re.fullmatch(rb"bytes (\d+)-(\d+)/(\d+)", content_range)
            assert m is not None and int(m.group(3)) == size
            start, end = int(m.group(1)), int(m.group(2))
            assert _header(normal, b"content-length") == str(end - start + 1).encode()
            if method == "GET":
                assert normal[2] == full[2][start : end + 1]
        elif status == 200:
            assert _header(normal, b"content-length") == str(size).encode()
            assert normal[2] == (full[2] if method == "GET" else b"")

    same_answer()
    # The generator must reach every kind of answer, or the comparison proves less than it seems.
    assert sum(seen.values()) >= EXAMPLES // 2, seen
    assert seen.get(200, 0) and seen.get(206, 0) and seen.get(304, 0), seen
