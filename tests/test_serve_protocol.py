"""The protocol layer of a real ``ogshot serve``, spoken to over raw sockets.

Short deadlines (one second) keep every test bounded; each socket also has its own timeout, so
a server that never drops a client fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ogshot.card import MAX_QUERY_BYTES
from ogshot.cli import HEADERS_ROOM

from .conftest import ogshot_serve, ogshot_serve_process

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
SLACK = 1.5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    env = {
        "OGSHOT_CAPTURE": "none",
        "OGSHOT_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "OGSHOT_BODY_TIMEOUT": str(BODY_TIMEOUT),
    }
    with ogshot_serve(tmp_path_factory.mktemp("serve-protocol"), env=env) as base:
        u = urlsplit(base)
        assert u.hostname is not None and u.port is not None
        yield u.hostname, u.port


def _connect(server: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(server, timeout=10)
    sock.settimeout(10)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or 10 s pass: a failure)."""
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            pytest.fail("the server kept the connection open")
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def _responses(raw: bytes) -> list[bytes]:
    """Status lines in a byte stream of responses."""
    return [line for line in raw.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]


def test_absolute_form_target_is_served(server: tuple[str, int]) -> None:
    host, port = server
    with _connect(server) as sock:
        sock.sendall(
            b"GET http://%s:%d/og.png?title=Absolute HTTP/1.1\r\n"
            b"Host: somewhere.else\r\nConnection: close\r\n\r\n" % (host.encode(), port)
        )
        raw = _read_all(sock)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-type: image/png" in head.lower()
    assert body.startswith(b"\x89PNG")


def test_transfer_encoding_with_content_length_closes_the_connection(
    server: tuple[str, int],
) -> None:
    with _connect(server) as sock:
        # The classic smuggling shape: a chunked body whose Content-Length disagrees, followed by
        # a second request that a server reading by Content-Length would see differently.
        sock.sendall(
            b"POST /screenshots/batch HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\n{}\r\n0\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        raw = _read_all(sock)
    statuses = _responses(raw)
    assert len(statuses) == 1, raw
    assert b"\r\nconnection: close\r\n" in raw.lower()


def test_a_plain_keep_alive_connection_serves_many_requests(server: tuple[str, int]) -> None:
    with _connect(server) as sock:
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while not data.endswith(b'{"status":"ok"}'):
                chunk = sock.recv(4096)
                assert chunk, "closed a healthy keep-alive connection"
                data += chunk
            assert data.startswith(b"HTTP/1.1 200 ")
            time.sleep(HEADER_TIMEOUT / 2)  # quick follow-ups stay within every deadline


def test_dripped_headers_are_cut_off_after_the_header_timeout(server: tuple[str, int]) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        start = time.monotonic()
        while time.monotonic() - start < 25:
            readable, _, _ = select.select([sock], [], [], 0.25)
            if readable:  # an answer or the end of the connection
                break
            try:
                sock.sendall(b"a")  # one header byte every quarter second
            except OSError:
                break
        closed_after = time.monotonic() - start
        raw = _read_all(sock)
    assert closed_after < HEADER_TIMEOUT + SLACK
    assert raw.startswith(b"HTTP/1.1 408 ")
    assert b'"error":"request_timeout"' in raw.replace(b" ", b"")


def test_a_silent_connection_is_closed(server: tuple[str, int]) -> None:
    with _connect(server) as sock:
        start = time.monotonic()
        raw = _read_all(sock)
        elapsed = time.monotonic() - start
    assert raw == b""  # nothing was asked: nothing is answered, the connection just ends
    assert elapsed < HEADER_TIMEOUT + SLACK


def test_a_declared_body_that_never_arrives_is_dropped(server: tuple[str, int]) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /screenshots/batch HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        start = time.monotonic()
        raw = _read_all(sock)
        elapsed = time.monotonic() - start
    assert elapsed < BODY_TIMEOUT + SLACK
    assert raw.startswith(b"HTTP/1.1 408 ")


def test_a_huge_declared_body_gets_413_at_once(server: tuple[str, int]) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /screenshots/batch HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 10485760\r\n\r\n"
            + b" " * 65536
        )
        raw = _read_all(sock)
    assert raw.startswith(b"HTTP/1.1 413 ")
    assert b'"error":"too_large"' in raw.replace(b" ", b"")
    assert len(_responses(raw)) == 1


def test_a_huge_chunked_body_gets_413_while_streaming(server: tuple[str, int]) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /screenshots/batch HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (16384, b" " * 16384)
        try:
            for _ in range(640):  # up to 10 MB; the answer comes long before
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw = _read_all(sock)
    assert raw.startswith(b"HTTP/1.1 413 ")


def test_head_on_templates_over_the_wire(server: tuple[str, int]) -> None:
    with _connect(server) as sock:
        sock.sendall(b"HEAD /templates HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = _read_all(sock)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == b""
    length = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
    assert length and int(length[0].split(b":")[1]) > 0


def test_settings_reach_every_worker_process(tmp_path: Path) -> None:
    env = {"OGSHOT_CAPTURE": "none", "OGSHOT_HEADER_TIMEOUT": "0.5"}
    with ogshot_serve(tmp_path, "--workers", "2", env=env) as base:
        u = urlsplit(base)
        assert u.hostname is not None and u.port is not None
        for _ in range(4):  # connections land on either worker
            with _connect((u.hostname, u.port)) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\n")
                start = time.monotonic()
                raw = _read_all(sock)
                assert time.monotonic() - start < 0.5 + SLACK
                assert raw.startswith(b"HTTP/1.1 408 ")


def _messages(raw: bytes, heads: set[int]) -> list[tuple[bytes, bytes]]:
    """(head, body) of each response in a stream, framed by Content-Length (none: no body);
    the responses numbered in ``heads`` answer HEAD requests (no body, whatever the length)."""
    out: list[tuple[bytes, bytes]] = []
    while raw:
        head, sep, raw = raw.partition(b"\r\n\r\n")
        assert sep, f"a response head without its end: {head[:200]!r}"
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(out) in heads or head.startswith(b"HTTP/1.1 304"):
            length = 0
        out.append((head, raw[:length]))
        raw = raw[length:]
    return out


def test_pipelined_card_answers_keep_their_framing(server: tuple[str, int]) -> None:
    """A card's head leaves with its body in one write (connection.py, _HeadWithBody): a
    cold card, a HEAD, a 304 and a probe sent back to back on one connection still come back
    whole, in order, each framed by its own Content-Length."""
    with _connect(server) as sock:
        card = b"/og.png?title=Pipelined%20cards"
        sock.sendall(b"GET " + card + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b"\r\n\r\n" not in first:
            first += sock.recv(65536)
        etag = [
            line.split(b":", 1)[1].strip()
            for line in first.split(b"\r\n\r\n")[0].split(b"\r\n")
            if line.lower().startswith(b"etag:")
        ][0]
        sock.sendall(
            b"HEAD " + card + b" HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET " + card + b" HTTP/1.1\r\nHost: x\r\nIf-None-Match: " + etag + b"\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        raw = first + _read_all(sock)
    messages = _messages(raw, heads={1})
    assert [head.split(b" ", 2)[1] for head, _ in messages] == [b"200", b"200", b"304", b"200"]
    (cold_head, cold_body), (head_head, head_body), (_, not_modified), (_, probe) = messages
    assert cold_body.startswith(b"\x89PNG") and cold_body.endswith(b"IEND\xaeB`\x82")
    assert head_body == b"" and b"content-length: %d" % len(cold_body) in head_head.lower()
    assert not_modified == b""
    assert probe == b'{"status":"ok"}'


def test_a_card_head_is_held_for_its_body_and_never_lost() -> None:
    """The one-write view: the head waits for the first piece of body and leaves with it;
    later pieces pass straight on; a head whose body never came is sent before closing."""
    from ogshot.connection import _HeadWithBody

    class Recorder:
        def __init__(self) -> None:
            self.writes: list[bytes] = []
            self.closed = False

        def write(self, data: bytes) -> None:
            self.writes.append(data)

        def close(self) -> None:
            self.closed = True

        def is_closing(self) -> bool:
            return self.closed

    sent = Recorder()
    view = _HeadWithBody(sent)  # type: ignore[arg-type]
    view.write(b"HEAD\r\n\r\n")
    assert sent.writes == []
    view.write(b"body")
    view.write(b"")
    assert sent.writes == [b"HEAD\r\n\r\nbody", b""]
    assert view.is_closing() is False

    lone = Recorder()
    view = _HeadWithBody(lone)  # type: ignore[arg-type]
    view.write(b"HEAD\r\n\r\n")
    view.close()
    assert lone.writes == [b"HEAD\r\n\r\n"] and lone.closed


# --- What the parser refuses ------------------------------------------------------------------

#: The request head bound of ``ogshot serve``: the longest valid query plus room for headers.
MAX_HEAD = MAX_QUERY_BYTES + HEADERS_ROOM


def _status(raw: bytes) -> int:
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    return int(raw.split(b" ", 2)[1])


def _refused(raw: bytes) -> bool:
    """A whole 400 answer with the JSON error body, that closes the connection."""
    head, _, body = raw.partition(b"\r\n\r\n")
    return (
        _status(raw) == 400
        and b"\r\nconnection: close" in head.lower()
        and json.loads(body)["error"] == "bad_request"
    )


@pytest.mark.parametrize(
    "piece",
    [
        pytest.param(b"X-Endless: " + b"a" * 1024, id="one endless header value"),
        pytest.param(b"X-Many: " + b"a" * 1014 + b"\r\n", id="endless header lines"),
    ],
)
def test_an_endless_head_is_refused_at_the_bound(server: tuple[str, int], piece: bytes) -> None:
    """A head streamed without end is cut off once it passes the bound (a 400 and a close),
    before the header deadline (a 408): its bytes never pile up in the server. (A head just
    under the bound is served: the next test.)"""
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(4 * MAX_HEAD // len(piece)):
                sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw = _read_all(sock)
    assert _refused(raw), raw
    assert b"too large" in raw


def test_a_head_over_the_bound_is_refused_even_when_it_arrives_whole(
    server: tuple[str, int],
) -> None:
    with _connect(server) as sock:
        filler = b"a" * (MAX_HEAD + 1024)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + filler + b"\r\n\r\n")
        assert _refused(_read_all(sock))
    with _connect(server) as sock:  # just under the bound: served
        filler = b"a" * (MAX_HEAD - 1024)
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
            + filler
            + b"\r\nConnection: close\r\n\r\n"
        )
        assert _status(_read_all(sock)) == 200


#: Requests the HTTP/1.1 grammar (RFC 9112) does not allow, or that ogshot will not read.
MALFORMED = {
    "bare LF line ends": b"GET /healthz HTTP/1.1\nHost: x\n\n",
    "bare CR in a header": b"GET /healthz HTTP/1.1\r\nHost: x\rX: y\r\n\r\n",
    "obsolete line folding": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "space in a header name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX A: a\r\n\r\n",
    "space before the colon": b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n",
    "delimiter in a header name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX@A: a\r\n\r\n",
    "empty header name": b"GET /healthz HTTP/1.1\r\nHost: x\r\n: a\r\n\r\n",
    "NUL in a header value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
    "NUL in the target": b"GET /og.png?title=a\x00b HTTP/1.1\r\nHost: x\r\n\r\n",
    "space in the target": b"GET /og.png?title=a b HTTP/1.1\r\nHost: x\r\n\r\n",
    "raw UTF-8 in the target": b"GET /og.png?title=\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
    "no Host": b"GET /healthz HTTP/1.1\r\n\r\n",
    "two Hosts": b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "unknown HTTP version": b"GET /healthz HTTP/1.7\r\nHost: x\r\n\r\n",
    "unknown method": b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "TLS hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
    "two different Content-Lengths": (
        b"POST /batch HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n[]"
    ),
    "negative Content-Length": b"POST /batch HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "Content-Length past 2^64": (
        b"POST /batch HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n"
    ),
    "Transfer-Encoding not ending in chunked": (
        b"POST /batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n[]"
    ),
    "chunk size that is not hex": (
        b"POST /batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    ),
    "chunk size past 2^64": (
        b"POST /batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"fffffffffffffffffffff\r\n"
    ),
    "chunk data overrunning its size": (
        b"POST /batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]]]0\r\n\r\n"
    ),
}


@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_request_gets_a_400_and_a_close(
    server: tuple[str, int], request_bytes: bytes
) -> None:
    with _connect(server) as sock:
        sock.sendall(request_bytes)
        raw = _read_all(sock)
    assert _refused(raw), raw  # at once: a deadline would have answered 408, or nothing


def test_a_bad_request_behind_good_ones_waits_for_their_answers(
    server: tuple[str, int],
) -> None:
    """The parser reads pipelined requests ahead of their answers: a malformed one is refused
    only after the answers to the requests before it, in order, each whole."""
    with _connect(server) as sock:
        sock.sendall(
            b"GET /og.png?title=Before%20the%20bad%20one HTTP/1.1\r\nHost: x\r\n\r\n"
            b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX\x00: y\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"  # after the bad one: never read
        )
        raw = _read_all(sock)
    messages = _messages(raw, heads={1})
    assert [head.split(b" ", 2)[1] for head, _ in messages] == [b"200", b"200", b"400"]
    assert messages[0][1].startswith(b"\x89PNG") and messages[0][1].endswith(b"IEND\xaeB`\x82")
    assert json.loads(messages[2][1])["error"] == "bad_request"


@pytest.mark.parametrize("upgrade", [b"websocket", b"h2c"])
def test_an_upgrade_request_is_answered_as_plain_http_and_the_connection_closes(
    server: tuple[str, int], upgrade: bytes
) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: "
            + upgrade
            + b"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        start = time.monotonic()
        raw = _read_all(sock)
        elapsed = time.monotonic() - start
    assert _status(raw) == 200 and raw.endswith(b'{"status":"ok"}')
    assert len(_responses(raw)) == 1
    assert elapsed < HEADER_TIMEOUT * 0.8  # closed after its answer, not at the deadline


def test_a_cold_card_head_and_body_leave_in_one_write(server: tuple[str, int]) -> None:
    """The client waits in ``recv`` while the card renders: the first bytes it gets hold the
    head and the start of the PNG, not the head alone (two writes wake it twice)."""
    with _connect(server) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(3):
            sock.sendall(
                b"GET /og.png?title=One%20write%20" + b"%d" % i + b" HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            first = sock.recv(1 << 20)
            head, sep, body = first.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ") and sep, first[:300]
            assert body.startswith(b"\x89PNG"), f"the head came alone ({len(first)} bytes)"
            length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)[1])  # type: ignore[index]
            while len(body) < length:
                body += sock.recv(1 << 20)
            assert len(body) == length


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def test_a_flood_of_pipelined_requests_is_read_as_fast_as_it_is_answered(tmp_path: Path) -> None:
    """The parser reads every request it is given, answered or not: fed a client that sends
    pipelined requests faster than they are answered, the server must stop reading, not queue
    them all (it grew by hundreds of megabytes in seconds)."""
    with ogshot_serve_process(tmp_path, env={"OGSHOT_CAPTURE": "none"}) as (base, proc):
        u = urlsplit(base)
        assert u.hostname is not None and u.port is not None
        answered = 0

        def read(sock: socket.socket) -> None:
            nonlocal answered
            try:
                while chunk := sock.recv(1 << 20):
                    answered += chunk.count(b"HTTP/1.1 200 ")
            except OSError:
                pass

        before = _rss_mb(proc.pid)
        with _connect((u.hostname, u.port)) as sock:
            reader = threading.Thread(target=read, args=(sock,), daemon=True)
            reader.start()
            burst = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2000
            start = time.monotonic()
            while time.monotonic() - start < 3:
                sock.sendall(burst)
            grown = _rss_mb(proc.pid) - before
            sock.shutdown(socket.SHUT_WR)
        reader.join(timeout=10)
    assert grown < 40, f"the server grew by {grown:.0f} MB"
    assert answered > 100  # and it kept answering meanwhile


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(
        st.tuples(
            st.integers(0, 10_000),
            st.sampled_from(["drop", "insert", "replace"]),
            st.binary(min_size=1, max_size=3),
        ),
        min_size=1,
        max_size=4,
    ),
    base=st.sampled_from(
        [
            b"GET /og.png?title=Fuzz HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
            b"POST /batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 26\r\n\r\n{"cards":[{"title":"a"}]}',
            b"POST /batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'1a\r\n{"cards":[{"title":"a"}]}\r\n0\r\n\r\n',
        ]
    ),
)
def test_a_mangled_request_never_gets_a_5xx_nor_holds_the_connection(
    server: tuple[str, int], base: bytes, edits: list[tuple[int, str, bytes]]
) -> None:
    data = bytearray(base)
    for at, how, what in edits:
        at %= len(data) + 1
        if how == "drop":
            del data[at : at + len(what)]
        elif how == "insert":
            data[at:at] = what
        else:
            data[at : at + len(what)] = what
    with _connect(server) as sock:
        sock.sendall(bytes(data) + b"\r\n\r\n")  # a head left open ends here
        start = time.monotonic()
        raw = _read_all(sock)
        elapsed = time.monotonic() - start
    for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw):
        assert int(status) < 500, raw[:500]
    assert elapsed < max(HEADER_TIMEOUT, BODY_TIMEOUT) + SLACK
