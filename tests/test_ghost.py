"""``POST /hooks/ghost``: Ghost's signed publish webhook warms the post's card; anything unsigned,
mis-signed or stale is refused and makes nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ogshot.api import create_app
from ogshot.fonts import FontSet
from ogshot.ghost import ghost_signature
from ogshot.layouts import LayoutRegistry
from ogshot.service import CardService
from ogshot.settings import Settings

SECRET = "ghost-webhook-secret"
QUERY = "?site=My%20Blog&template=split"


def payload(title: str, excerpt: str | None = "What it is about") -> bytes:
    """The shape Ghost sends for post.published (trimmed: the real one carries every field)."""
    current = {
        "id": "65a1", "uuid": "0d6c", "title": title, "slug": "a-post", "status": "published",
        "url": "https://blog.example.org/a-post/", "custom_excerpt": excerpt,
        "excerpt": "The first words of the post", "html": "<p>The first words</p>",
        "feature_image": None, "og_title": None, "published_at": "2026-11-26T05:00:00.000Z",
    }  # fmt: skip
    # Ghost serialises with JSON.stringify: no spaces, non-ASCII as itself.
    body = {"post": {"current": current, "previous": {"status": "draft"}}}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def headers(body: bytes, *, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    ts = int(time.time() * 1000) if ts is None else ts
    return {"Content-Type": "application/json", "X-Ghost-Signature": ghost_signature(
        secret.encode(), body, str(ts)
    )}  # fmt: skip


@pytest.fixture
def ghost(layouts: LayoutRegistry, fonts: FontSet) -> Iterator[TestClient]:
    settings = Settings(_env_file=None, capture="none", ghost_secret=SECRET)  # type: ignore[call-arg]
    service = CardService(settings, layouts=layouts, fonts=fonts)
    with TestClient(create_app(settings, service=service), raise_server_exceptions=False) as c:
        yield c


def test_signature_is_ghosts_hmac_of_body_then_milliseconds() -> None:
    """Ghost: sha256=HMAC-SHA256(secret, JSON body + Date.now()) in hex, then ', t=' and the ms."""
    body, ts = b'{"post":{}}', "1764133200000"
    mac = hmac.new(SECRET.encode(), b'{"post":{}}1764133200000', hashlib.sha256).hexdigest()
    assert ghost_signature(SECRET.encode(), body, ts) == f"sha256={mac}, t=1764133200000"


def test_valid_signature_warms_the_posts_card(ghost: TestClient) -> None:
    svc: CardService = ghost.app.state.service  # type: ignore[attr-defined]
    body = payload("مرحبا: a post in two scripts 🎉")
    r = ghost.post("/hooks/ghost" + QUERY, content=body, headers=headers(body))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok"
    renders = svc.renders
    # The card the theme's og:image asks for is already made.
    card = ghost.get(
        "/og.png",
        params={
            "title": "مرحبا: a post in two scripts 🎉", "subtitle": "What it is about",
            "site": "My Blog", "template": "split",
        },
    )  # fmt: skip
    assert card.status_code == 200 and card.headers["x-ogshot-cache"] == "hit"
    assert card.headers["etag"] == r.json()["etag"]
    assert svc.renders == renders


def test_edited_post_warms_its_new_title(ghost: TestClient) -> None:
    body = payload("Edited title", excerpt=None)
    r = ghost.post("/hooks/ghost", content=body, headers=headers(body))
    assert r.status_code == 200
    hit = ghost.get("/og.png", params={"title": "Edited title"})
    assert hit.headers["x-ogshot-cache"] == "hit"


@pytest.mark.parametrize(
    "case", ["missing", "wrong_secret", "body_changed", "stale", "future", "malformed", "no_t"]
)
def test_bad_or_missing_signature_is_refused_and_warms_nothing(
    ghost: TestClient, case: str
) -> None:
    svc: CardService = ghost.app.state.service  # type: ignore[attr-defined]
    body = payload("Should not be made")
    now = int(time.time() * 1000)
    h = {
        "missing": {"Content-Type": "application/json"},
        "wrong_secret": headers(body, secret="another-secret"),
        "body_changed": headers(payload("Something else")),
        "stale": headers(body, ts=now - 3_600_000),
        "future": headers(body, ts=now + 3_600_000),
        "malformed": {"X-Ghost-Signature": "sha256=zz, t=abc"},
        "no_t": {"X-Ghost-Signature": headers(body)["X-Ghost-Signature"].split(",")[0]},
    }[case]
    r = ghost.post("/hooks/ghost", content=body, headers=h)
    assert r.status_code == 403
    assert r.json()["error"] == "bad_webhook_signature"
    assert r.headers["cache-control"] == "no-store"
    assert svc.renders == 0
    assert ghost.get("/og.png", params={"title": "Should not be made"}).headers[
        "x-ogshot-cache"
    ] == "miss"


def test_signed_but_not_a_post_is_422_and_makes_nothing(ghost: TestClient) -> None:
    svc: CardService = ghost.app.state.service  # type: ignore[attr-defined]
    for body in (b"[1, 2]", b'{"member": {"current": {}}}', b'{"post": {"current": {}}}', b"{"):
        r = ghost.post("/hooks/ghost", content=body, headers=headers(body))
        assert r.status_code == 422, body
    assert svc.renders == 0


def test_off_without_a_secret(client: TestClient) -> None:
    body = payload("T")
    r = client.post("/hooks/ghost", content=body, headers=headers(body))
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_a_long_post_past_the_default_body_cap_is_read(ghost: TestClient) -> None:
    """Ghost sends the post's HTML and editor document: a long post passes the server's 1 MiB
    default body cap, and this route allows more."""
    body = json.dumps(
        {"post": {"current": {"title": "A long read", "html": "<p>word</p>" * 250_000}}}
    ).encode()
    assert len(body) > 2 * 1024 * 1024
    r = ghost.post("/hooks/ghost", content=body, headers=headers(body))
    assert r.status_code == 200, r.text
