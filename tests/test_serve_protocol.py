"""The protocol layer of a real ``ogshot serve``, spoken to over raw sockets.

Short deadlines (one second) keep every test bounded; each socket also has its own timeout, so
a server that never drops a client fails the test instead of hanging it.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from .conftest import ogshot_serve

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
