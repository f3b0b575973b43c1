"""The preview page and the template gallery, through the app (the browser's view is in
test_pages_browser.py)."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from io import BytesIO

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ogshot.api import create_app
from ogshot.cache import Entry
from ogshot.card import parse_card
from ogshot.fonts import FontSet
from ogshot.pages import WHATSAPP_MAX_BYTES, X_MAX_BYTES, uncovered, warnings_for
from ogshot.service import CardResult, CardService
from ogshot.settings import Settings
from ogshot.signing import Signer, api_token

KEYS = "k1:0123456789abcdef0123456789abcdef"
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


class Page(HTMLParser):
    """The parts of a page the tests read: elements by id, their text, images, scripts."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: dict[str, dict[str, str | None]] = {}
        self.texts: dict[str, str] = {}
        self.images: list[dict[str, str | None]] = []
        self.labels: set[str] = set()
        self.fields: list[dict[str, str | None]] = []
        self.scripts = 0
        self._open: list[tuple[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a)
        if tag == "script":
            self.scripts += 1
        if tag == "label" and a.get("for"):
            self.labels.add(str(a["for"]))
        if tag in ("input", "select", "textarea"):
            self.fields.append(a)
        if a.get("id"):
            self.ids[str(a["id"])] = a
        if tag not in ("img", "input", "meta", "br", "link"):
            self._open.append((tag, a.get("id")))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            t, _ = self._open.pop()
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, ident in self._open:
            if ident:
                self.texts[ident] = self.texts.get(ident, "") + data


@pytest.fixture
def signed_client(layouts, fonts) -> TestClient:  # type: ignore[no-untyped-def]
    settings = Settings(signing_keys=KEYS, _env_file=None)  # type: ignore[call-arg]
    service = CardService(settings, layouts=layouts, fonts=fonts)
    with TestClient(create_app(settings, service=service)) as c:
        yield c


def token() -> str:
    return api_token(Signer.from_settings(Settings(signing_keys=KEYS, _env_file=None)))  # type: ignore[call-arg]


def basic(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"me:{secret}".encode()).decode()}


def test_preview_shows_the_card_in_five_mockups(client: TestClient) -> None:
    r = client.get("/preview", params={"title": "Hello preview", "subtitle": "Sub"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-store"
    page = Page(r.text)
    for mock in ("mock-x", "mock-facebook", "mock-linkedin", "mock-slack", "mock-discord"):
        assert mock in page.ids
    srcs = {img["src"] for img in page.images}
    assert len(srcs) == 1 and len(page.images) == 5
    card = client.get(str(srcs.pop()))
    assert card.status_code == 200 and card.headers["content-type"] == "image/png"
    assert all(img.get("alt") == "Hello preview" for img in page.images)
    assert page.texts["i-dims"] == "1200×630"
    assert page.texts["i-etag"] == card.headers["etag"]
    assert page.texts["i-bytes"] == f"{len(card.content):,} bytes"


def test_preview_snippet_is_exactly_what_meta_answers(client: TestClient) -> None:
    params = {"title": "Ça & <b>ça</b> \"quoted\" שלום 🚀", "site": "example.org"}
    page = Page(client.get("/preview", params=params).text)
    meta = client.get("/meta", params=params)
    assert meta.status_code == 200
    assert page.texts["snippet"] == meta.text


def test_preview_escapes_titles_and_allows_only_its_own_script(client: TestClient) -> None:
    title = "</pre><script>alert('x')</script> \"q\" & 'a'"
    r = client.get("/preview", params={"title": title})
    assert r.status_code == 200
    assert "<script>alert" not in r.text
    page = Page(r.text)
    assert page.scripts == 1  # the page's own, under the nonce
    assert title in page.ids["f-title"]["value"]  # type: ignore[operator]
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "img-src 'self' data:" in csp
    nonce = csp.split("script-src 'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in r.text


def test_preview_form_has_a_label_for_every_field(client: TestClient) -> None:
    page = Page(client.get("/preview").text)
    names = {f.get("name") for f in page.fields}
    assert names == {"title", "subtitle", "site", "url", "template", "theme", "format", "accent"}
    assert {str(f.get("id")) for f in page.fields} <= page.labels


def test_preview_bad_parameter_names_it_and_changes_nothing(client: TestClient) -> None:
    r = client.get("/preview", params={"title": "x", "accent": "red"})
    assert r.status_code == 422
    page = Page(r.text)
    assert "accent" in page.texts["error"]
    assert page.images == [] and "mocks" not in page.ids


@pytest.mark.parametrize(
    ("params", "kind"),
    [
        ({"title": "A webp card", "format": "webp"}, "format"),
        ({"title": "Pale accent", "theme": "light", "accent": "#fafafa"}, "contrast"),
    ],
)
def test_preview_warns(client: TestClient, params: dict[str, str], kind: str) -> None:
    r = client.get("/preview", params=params)
    assert r.status_code == 200
    assert f'data-kind="{kind}"' in r.text


def test_preview_no_warnings_for_a_plain_card(client: TestClient) -> None:
    r = client.get("/preview", params={"title": "Plain", "theme": "light"})
    assert "data-kind=" not in r.text


def _result(body: bytes, fallback: str | None = None) -> CardResult:
    entry = Entry(body=body, media_type="image/png", etag='"x"', created=0, ttl=60, grace=0,
                  fallback=fallback)
    return CardResult(entry, "public", fallback, "miss")


@pytest.mark.parametrize(
    ("size", "fallback", "kinds"),
    [
        (1000, None, []),
        (WHATSAPP_MAX_BYTES + 1, None, ["size"]),
        (X_MAX_BYTES + 1, None, ["size"]),
        (1000, "upstream_timeout", ["fallback"]),
    ],
)
def test_warnings_follow_the_platforms_limits(
    layouts, fonts, size: int, fallback: str | None, kinds: list[str]  # type: ignore[no-untyped-def]
) -> None:
    card = parse_card({"title": "t", "theme": "light"})
    found = warnings_for(card, _result(b"\0" * size, fallback), layouts.get("default"), fonts)
    assert [w.kind for w in found] == kinds
    if size > X_MAX_BYTES:
        assert "X" in found[0].text


def test_uncovered_characters_are_named(fonts: FontSet) -> None:
    # A character of an assigned block that no Noto family of the set draws.
    blocks = (range(0x13000, 0x13430), range(0x1D000, 0x1D0F5))
    candidates = [chr(cp) for block in blocks for cp in block]
    missing = next((ch for ch in candidates if not fonts.has_glyph(ch)), None)
    assert missing is not None, "every candidate is drawn: pick another block"
    card = parse_card({"title": f"Hi {missing} there"})
    assert uncovered(fonts, card) == [missing]
    assert uncovered(fonts, parse_card({"title": "Hi there"})) == []


def test_templates_is_json_unless_html_is_preferred(client: TestClient) -> None:
    for accept in (None, "*/*", "application/json", "text/html;q=0.5, application/json"):
        headers = {"Accept": accept} if accept else {}
        r = client.get("/templates", headers=headers)
        assert r.headers["content-type"] == "application/json", accept
        assert "templates" in r.json()


def test_gallery_shows_every_layout_light_and_dark(client: TestClient) -> None:
    names = [t["name"] for t in client.get("/templates").json()["templates"]]
    r = client.get("/templates", headers=HTML)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = Page(r.text)
    assert len(page.images) == len(names) * 6
    for name in names:
        assert f"layout-{name}" in page.ids
    themes = {("light" if "light" in str(i["alt"]) else "dark") for i in page.images}
    assert themes == {"light", "dark"}
    img = page.images[0]
    shown = client.get(str(img["src"]))
    assert shown.status_code == 200
    assert Image.open(BytesIO(shown.content)).size == (1200, 630)


def test_preview_wants_the_api_token_when_signing_is_on(signed_client: TestClient) -> None:
    r = signed_client.get("/preview", params={"title": "Secret"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Basic ")
    assert r.json()["error"] == "login_required" and r.headers["cache-control"] == "no-store"
    bad = signed_client.get("/preview", params={"title": "Secret"}, headers=basic("k1.nope"))
    assert bad.status_code == 403
    ok = signed_client.get("/preview", params={"title": "Secret"}, headers=basic(token()))
    assert ok.status_code == 200
    page = Page(ok.text)
    src = str(page.images[0]["src"])
    assert "sig=" in src
    assert signed_client.get(src).status_code == 200
    meta = signed_client.get("/meta", params={"title": "Secret"}, headers={"X-API-Key": token()})
    assert page.texts["snippet"] == meta.text


def test_gallery_signs_only_its_own_samples(signed_client: TestClient) -> None:
    r = signed_client.get("/templates", headers=HTML)
    assert r.status_code == 200
    page = Page(r.text)
    assert page.images and all("sig=" in str(i["src"]) for i in page.images)
    assert signed_client.get(str(page.images[-1]["src"])).status_code == 200
    # Its links lead to the preview, which is closed without the token.
    link = r.text.split('href="/preview?')[1].split('"')[0].replace("&amp;", "&")
    assert signed_client.get("/preview?" + link).status_code == 401
