"""Limits a client controls: the query length that every valid card fits, and robots.txt."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from urllib.robotparser import RobotFileParser

import httpx
from fastapi.testclient import TestClient

from ogshot.api import MAX_QUERY_BYTES
from ogshot.card import MAX_SUBTITLE, MAX_TITLE, MAX_URL

from .conftest import ogshot_serve


def escaped(text: str) -> str:
    """Every byte as %XX, upper-case: the longest way to write ``text``."""
    return "".join(f"%{b:02X}" for b in text.encode("utf-8"))


LONGEST_EMOJI_CARD = (
    "title=" + escaped("😀" * MAX_TITLE) + "&subtitle=" + escaped("🎉" * MAX_SUBTITLE)
)


def test_the_longest_valid_card_fits_the_query_limit(client: TestClient) -> None:
    """300 emoji over 500 emoji, every byte escaped: within the documented limits, so never 414."""
    assert len(LONGEST_EMOJI_CARD) > 8192  # what the old fixed limit refused
    r = client.get(f"/og.png?{LONGEST_EMOJI_CARD}")
    assert r.status_code == 200, r.text


def test_every_field_at_its_limit_fully_escaped_fits() -> None:
    url = "https://example.com/" + "é" * (MAX_URL - len("https://example.com/"))
    fields = {
        "title": "😀" * MAX_TITLE,
        "subtitle": "😀" * MAX_SUBTITLE,
        "site": "😀" * 100,
        "url": url,
        "template": "t" * 64,
        "theme": "light",
        "accent": "#abcdef",
        "format": "webp",
        "v": "😀" * 64,
        "exp": "9" * 12,
        "sig": "k" * 32 + "." + "A" * 43,
    }
    query = "&".join(f"{k}={escaped(v)}" for k, v in fields.items())
    assert len(query) <= MAX_QUERY_BYTES


def test_a_query_over_the_limit_is_414_json(client: TestClient) -> None:
    r = client.get("/og.png?title=x&pad=" + "a" * MAX_QUERY_BYTES)
    assert r.status_code == 414
    assert r.json()["error"] == "uri_too_long"
    assert r.headers["cache-control"] == "no-store"


BIGGEST_VALID_CARD = "&".join(
    f"{k}={escaped(v)}"
    for k, v in {
        "title": "😀" * MAX_TITLE,
        "subtitle": "🎉" * MAX_SUBTITLE,
        "site": "🦀" * 100,
        "url": "https://example.com/" + "a" * (MAX_URL - len("https://example.com/")),
        "v": "🧪" * 64,
    }.items()
)


def _slow_get(base: str, target: str) -> int:
    """GET ``target`` with the request head sent in 1 KiB pieces, as a slow link delivers it
    (a head that arrives whole can slip past a server's incomplete-head limit)."""
    host, port = base.removeprefix("http://").split(":")
    head = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        for i in range(0, len(head), 1024):
            sock.sendall(head[i : i + 1024])
            time.sleep(0.002)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1])


def test_ogshot_serve_takes_the_longest_valid_card(tmp_path: Path) -> None:
    """The HTTP server's own request-head limit must not undercut the query limit."""
    assert 16 * 1024 < len(BIGGEST_VALID_CARD) <= MAX_QUERY_BYTES
    with ogshot_serve(tmp_path, env={"OGSHOT_CAPTURE": "none"}) as base:
        assert _slow_get(base, f"/og.png?{BIGGEST_VALID_CARD}") == 200
        assert _slow_get(base, "/og.png?title=x&pad=" + "a" * MAX_QUERY_BYTES) == 414
        r = httpx.get(f"{base}/og.png?{LONGEST_EMOJI_CARD}", timeout=60)
        assert r.status_code == 200, r.text


def test_robots_txt_lets_crawlers_fetch_cards(client: TestClient) -> None:
    r = client.get("/robots.txt")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    lines = [line.strip() for line in r.text.splitlines() if not line.startswith("#")]
    assert "User-agent: *" in lines and "Allow: /og.png" in lines
    # RFC 9309 parsers take the longest match, older ones the first: both allow only cards.
    parser = RobotFileParser()
    parser.parse(r.text.splitlines())
    for agent in ("facebookexternalhit/1.1", "Twitterbot/1.0", "LinkedInBot/1.0", "Slackbot"):
        assert parser.can_fetch(agent, "/og.png?title=Hello&sig=k.x")
        assert not parser.can_fetch(agent, "/screenshot?url=https://example.com/")
        assert not parser.can_fetch(agent, "/docs")
