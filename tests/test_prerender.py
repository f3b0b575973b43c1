"""``GET /meta`` and ``POST /batch``: tags and cards before the first share."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ogshot import service as service_module
from ogshot.api import create_app
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.prerender import BATCH_CONCURRENCY, wants_json
from ogshot.service import CardService
from ogshot.settings import Settings
from ogshot.signing import Signer, api_token

from .conftest import decode

SECRET = "a-signing-secret-of-some-length"
KEYS = f"k1:{SECRET}"


class MetaTags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, str] = {}
        self.other: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "meta":
            self.other.append(tag)
            return
        a = dict(attrs)
        key = a.get("property") or a.get("name") or ""
        self.tags[key] = a.get("content") or ""


def parse(html: str) -> dict[str, str]:
    parser = MetaTags()
    parser.feed(html)
    parser.close()
    assert parser.other == []  # nothing but <meta> elements: no markup leaked from a title
    return parser.tags


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def make_client(settings: Settings, layouts: LayoutRegistry, fonts: FontSet) -> TestClient:
    service = CardService(settings, layouts=layouts, fonts=fonts)
    return TestClient(create_app(settings, service=service), raise_server_exceptions=False)


@pytest.fixture
def signed(layouts: LayoutRegistry, fonts: FontSet) -> Iterator[TestClient]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, capture="none", signing_keys=KEYS, batch_max=5
    )
    with make_client(settings, layouts, fonts) as c:
        yield c


_KEYED = Settings(_env_file=None, signing_keys=KEYS)  # type: ignore[call-arg]
TOKEN = api_token(Signer.from_settings(_KEYED))
KEY = {"Authorization": f"Bearer {TOKEN}"}

# --- /meta ------------------------------------------------------------------------------------


def test_meta_tags_and_the_image_they_point_at(client: TestClient) -> None:
    r = client.get("/meta", params={"title": "Ship it", "subtitle": "Today", "site": "ex.org"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    tags = parse(r.text)
    assert set(tags) == {
        "og:image", "og:image:type", "og:image:width", "og:image:height", "og:image:alt",
        "twitter:card", "twitter:image", "twitter:image:alt",
    }  # fmt: skip
    assert (tags["og:image:width"], tags["og:image:height"]) == ("1200", "630")
    assert tags["og:image:type"] == "image/png"
    assert tags["twitter:card"] == "summary_large_image"
    assert tags["twitter:image"] == tags["og:image"]
    assert tags["og:image:alt"] == "Ship it · ex.org"
    image = tags["og:image"]
    assert image.startswith("http://testserver/og.png?")  # absolute, on the request's base
    query = parse_qs(urlsplit(image).query)
    assert query["title"] == ["Ship it"] and len(query["v"][0]) == 16
    # The URL serves the card, the very bytes a plain /og.png request gets.
    card = client.get(local(image))
    assert card.status_code == 200 and card.headers["content-type"] == "image/png"
    assert decode(card.content).size == (1200, 630)
    params = {"title": "Ship it", "subtitle": "Today", "site": "ex.org"}
    plain = client.get("/og.png", params=params)
    assert plain.content == card.content


@pytest.mark.parametrize(
    "title",
    [
        'He said "hi" & <b>left</b> \'now\'',
        "مرحبا <بالعالم> & \"أهلا\"",  # right to left, with markup characters
        "🎉 Launch ‮day‬ 👩‍💻",  # emoji, a ZWJ sequence and bidi override characters
        "</head><script>alert(1)</script>",
    ],
)
def test_meta_escapes_every_title(client: TestClient, title: str) -> None:
    r = client.get("/meta", params={"title": title})
    assert r.status_code == 200
    tags = parse(r.text)  # an HTML parser reads back exactly the title, and nothing but <meta>
    assert tags["og:image:alt"] == title
    assert "<script" not in r.text and "<b>" not in r.text
    assert parse_qs(urlsplit(tags["og:image"]).query)["title"] == [title]


def test_meta_uses_public_url(layouts: LayoutRegistry, fonts: FontSet) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, capture="none", public_url="https://og.example.com/base"
    )
    with make_client(settings, layouts, fonts) as c:
        tags = parse(c.get("/meta", params={"title": "T"}).text)
    assert tags["og:image"].startswith("https://og.example.com/base/og.png?")


def test_meta_json_when_asked(client: TestClient) -> None:
    r = client.get(
        "/meta", params={"title": "T", "format": "jpeg"}, headers={"Accept": "application/json"}
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["type"] == "image/jpeg" and body["tags"]["og:image:type"] == "image/jpeg"
    assert body["image"] == body["tags"]["og:image"] and body["v"] in body["image"]
    assert parse(body["html"]) == body["tags"]
    assert "Vary" in r.headers and "accept" in r.headers["vary"].lower()


@pytest.mark.parametrize(
    ("accept", "json_wanted"),
    [
        (None, False),
        ("application/json", True),
        ("text/html, application/json;q=0.9", False),
        ("text/html;q=0.5, application/json", True),
        ("application/json;q=0", False),
        ("*/*", False),
        ("application/json;q=bogus", False),
    ],
)
def test_wants_json(accept: str | None, json_wanted: bool) -> None:
    assert wants_json(accept) is json_wanted


def test_meta_links_webp_as_png(client: TestClient) -> None:
    r = client.get(
        "/meta", params={"title": "T", "format": "webp"}, headers={"Accept": "application/json"}
    )
    body = r.json()
    assert body["type"] == "image/png"
    assert "format" not in parse_qs(urlsplit(body["image"]).query)  # png is the default
    assert "webp" in body["notes"][0]


def v_of(client: TestClient, **params: str) -> str:
    r = client.get("/meta", params=params)
    assert r.status_code == 200, r.text
    return parse_qs(urlsplit(parse(r.text)["og:image"]).query)["v"][0]


def test_v_changes_when_the_card_changes_and_only_then(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = v_of(client, title="Café", subtitle="Sub")
    # The same card, written differently: same v.
    assert v_of(client, subtitle="Sub", title="Cafe\u0301") == base  # NFD, other order
    assert v_of(client, title="  Café ", subtitle="Sub", utm_source="x", theme="auto") == base
    # A different card: a different v.
    assert v_of(client, title="Café!", subtitle="Sub") != base
    assert v_of(client, title="Café", subtitle="Sub", theme="dark") != base
    split_v = v_of(client, title="Café", subtitle="Sub", template="split")
    assert split_v != base
    # A renderer, font set or layout that may move pixels: a new v for the same card.
    monkeypatch.setattr(service_module, "RENDERER_VERSION", "next")
    assert v_of(client, title="Café", subtitle="Sub") != base
    monkeypatch.undo()
    assert v_of(client, title="Café", subtitle="Sub") == base
    svc: CardService = client.app.state.service  # type: ignore[attr-defined]
    monkeypatch.setattr(svc.fonts, "version", "another-font-set")
    assert v_of(client, title="Café", subtitle="Sub") != base
    monkeypatch.undo()
    get = svc.layouts.get
    edited = get("default").model_copy(update={"digest": "edited-layout-file"})
    monkeypatch.setattr(svc.layouts, "get", lambda name: edited if name == "default" else get(name))
    assert v_of(client, title="Café", subtitle="Sub") != base
    assert v_of(client, title="Café", subtitle="Sub", template="split") == split_v


def test_meta_bad_input_is_a_json_error(client: TestClient) -> None:
    for params in ({}, {"title": "T", "accent": "red"}, {"title": "x" * 301}):
        r = client.get("/meta", params=params)
        assert r.status_code == 422, params
        assert r.json()["error"] == "invalid_parameter" and r.headers["cache-control"] == "no-store"
    r = client.get("/meta", params={"title": "T", "template": "nope"})
    assert r.status_code == 404 and r.json()["error"] == "unknown_template"


def test_meta_with_signing_wants_the_api_token_and_signs(signed: TestClient) -> None:
    r = signed.get("/meta", params={"title": "Signed"})
    assert r.status_code == 403 and r.json()["error"] == "api_key_required"
    for wrong in (SECRET, "k1.nope", "nope"):  # the signing secret itself is not the token
        bad = signed.get("/meta", params={"title": "Signed"}, headers={"X-API-Key": wrong})
        assert bad.status_code == 403 and bad.json()["error"] == "bad_api_key"
    assert signed.get("/meta", params={"title": "Signed"}, headers={"X-API-Key": TOKEN}).is_success
    r = signed.get("/meta", params={"title": "Signed"}, headers=KEY)
    assert r.status_code == 200 and "no-store" in r.headers["cache-control"]
    image = parse(r.text)["og:image"]
    assert parse_qs(urlsplit(image).query)["sig"][0].startswith("k1.")
    assert signed.get(local(image)).status_code == 200
    unsigned = local(image).split("&sig=")[0]
    assert signed.get(unsigned).status_code == 403


# --- /batch -----------------------------------------------------------------------------------


def test_batch_mixed_cards_in_order_and_cached(client: TestClient) -> None:
    svc: CardService = client.app.state.service  # type: ignore[attr-defined]
    cards: list[Any] = [
        {"title": "First"},
        {"title": "Bad accent", "accent": "red"},
        "not an object",
        {"title": "Second", "format": "jpeg", "theme": "light"},
        {"title": 5},
        {"title": "Unknown layout", "template": "nope"},
        {"title": "Third", "subtitle": "ثالث"},
    ]
    r = client.post("/batch", json={"cards": cards, "inline": True})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["ok", "error", "error", "ok", "error", "error", "ok"]
    assert [x.get("error") for x in results if x["status"] == "error"] == [
        "invalid_parameter", "invalid_parameter", "invalid_parameter", "unknown_template",
    ]  # fmt: skip
    assert all(x["detail"] for x in results if x["status"] == "error")
    ok = [x for x in results if x["status"] == "ok"]
    for item, title in zip(ok, ["First", "Second", "Third"], strict=True):
        assert item["url"].startswith("http://testserver/og.png?")
        assert parse_qs(urlsplit(item["url"]).query)["title"] == [title]
        image = decode(base64.b64decode(item["data"]))
        assert image.size == (1200, 630) and item["bytes"] == len(base64.b64decode(item["data"]))
    assert decode(base64.b64decode(ok[1]["data"])).format == "JPEG"
    renders = svc.renders
    for item in ok:
        hit = client.get(local(item["url"]))
        assert hit.status_code == 200 and hit.headers["x-ogshot-cache"] == "hit"
        assert hit.headers["etag"] == item["etag"]
    assert svc.renders == renders  # the crawlers that follow cost nothing


def test_batch_without_inline_sends_no_data(client: TestClient) -> None:
    r = client.post("/batch", json={"cards": [{"title": "No data"}]})
    (item,) = r.json()["results"]
    assert item["status"] == "ok" and "data" not in item and item["bytes"] > 1000


def test_batch_limits(signed: TestClient) -> None:
    """batch_max is 5 here: six cards are refused whole, as is a body too large to read."""
    many = {"cards": [{"title": f"card {i}"} for i in range(6)]}
    r = signed.post("/batch", json=many, headers=KEY)
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    assert r.headers["cache-control"] == "no-store"
    huge = json.dumps({"cards": [{"title": "x" * 200_000}]})
    r = signed.post("/batch", content=huge, headers={**KEY, "Content-Type": "application/json"})
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap applies while reading
        yield b'{"cards": ['
        for _ in range(200):
            yield b'{"title": "' + b"y" * 1000 + b'"},'
        yield b"]}"

    r = signed.post("/batch", content=chunks(), headers=KEY)
    assert r.status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"cards": {}}',
        b'{"cards": []}',
        b'{"cards": [{"title": "t"}], "inline": "yes"}',
        b'{"cards": [{"title": "t"}], "extra": 1}',
        b"\xff\xfe",
    ],
)
def test_batch_bad_bodies_are_422(client: TestClient, body: bytes) -> None:
    r = client.post("/batch", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_parameter"
    assert r.headers["cache-control"] == "no-store"


def test_batch_with_signing_wants_the_api_token_and_answers_signed_urls(
    signed: TestClient,
) -> None:
    body = {"cards": [{"title": "Signed batch"}]}
    r = signed.post("/batch", json=body)
    assert r.status_code == 403 and r.json()["error"] == "api_key_required"
    r = signed.post("/batch", json=body, headers={"Authorization": f"Bearer {SECRET}"})
    assert r.status_code == 403 and r.json()["error"] == "bad_api_key"
    r = signed.post("/batch", json=body, headers=KEY)
    (item,) = r.json()["results"]
    assert parse_qs(urlsplit(item["url"]).query)["sig"][0].startswith("k1.")
    hit = signed.get(local(item["url"]))
    assert hit.status_code == 200 and hit.headers["x-ogshot-cache"] == "hit"


def test_batch_concurrency_is_bounded(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    svc: CardService = client.app.state.service  # type: ignore[attr-defined]
    real = svc.card
    active = peak = 0

    async def counting(card: Any) -> Any:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        try:
            return await real(card)
        finally:
            active -= 1

    monkeypatch.setattr(svc, "card", counting)
    r = client.post("/batch", json={"cards": [{"title": f"n{i}"} for i in range(12)]})
    assert [x["status"] for x in r.json()["results"]] == ["ok"] * 12
    assert peak == BATCH_CONCURRENCY


def test_head_meta_has_the_headers_and_no_body(client: TestClient) -> None:
    get = client.get("/meta", params={"title": "T"})
    head = client.head("/meta", params={"title": "T"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]


_finite = st.floats(allow_nan=False, allow_infinity=False)
_scalar = st.none() | st.booleans() | st.integers() | _finite
_json_value = st.recursive(
    _scalar | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_FIELDS = ["title", "subtitle", "site", "template", "theme", "accent", "format", "v", "x"]
_card_like = st.dictionaries(
    st.sampled_from(_FIELDS),
    st.text(max_size=30) | _json_value,
    max_size=5,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_card_like | _json_value, max_size=4), _json_value)
def test_batch_answers_any_json_without_a_500(
    client: TestClient, cards: list[Any], inline: Any
) -> None:
    r = client.post("/batch", json={"cards": cards, "inline": inline})
    assert r.status_code in (200, 413, 422), r.text
    if r.status_code == 200:
        results = r.json()["results"]
        assert len(results) == len(cards)
        assert all(x["status"] in ("ok", "error") for x in results)
    else:
        assert r.json()["error"] in ("invalid_parameter", "too_large")
