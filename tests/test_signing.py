"""Signed card URLs: the signature table, the fast path, ``ogshot sign`` and a property test."""

from __future__ import annotations

import random
import re
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from ogshot.api import create_app
from ogshot.card import Card, parse_card
from ogshot.cli import main, sign_url
from ogshot.errors import ConfigError, Forbidden, OgshotError
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.service import CardService
from ogshot.settings import Settings
from ogshot.signing import Signer, card_url

NEW = "k2026:" + "n" * 24
OLD = "k2025:" + "o" * 24
KEYS = f"{NEW},{OLD}"


def keyed(**extra: object) -> Settings:
    return Settings(_env_file=None, capture="none", signing_keys=KEYS, **extra)  # type: ignore[call-arg]


@pytest.fixture
def signed_client(layouts: LayoutRegistry, fonts: FontSet) -> Iterator[TestClient]:
    settings = keyed()
    service = CardService(settings, layouts=layouts, fonts=fonts)
    with TestClient(create_app(settings, service=service), raise_server_exceptions=False) as c:
        yield c


def query_of(url: str) -> str:
    return urlsplit(url).query


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


KEYED = keyed()
SIGNER = Signer.from_settings(KEYED)
CARD = Card(title="Signed card", subtitle="Café crème", url="https://example.com/a?b=1")


def signed(card: Card = CARD, *, exp: int | None = None, signer: Signer = SIGNER) -> str:
    return card_url("http://testserver", signer.signed_params(card, exp=exp))


# --- the table ------------------------------------------------------------------------------


def test_valid_signature_renders(signed_client: TestClient) -> None:
    r = signed_client.get(path_of(signed()))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"


def test_url_signed_with_the_older_key_still_verifies(signed_client: TestClient) -> None:
    before_rotation = Signer.from_settings(
        Settings(_env_file=None, capture="none", signing_keys=OLD)  # type: ignore[call-arg]
    )
    url = signed(signer=before_rotation)
    assert "sig=k2025." in url
    assert signed_client.get(path_of(url)).status_code == 200


def refused(client: TestClient, path: str, code: str) -> None:
    r = client.get(path)
    assert r.status_code == 403, r.text
    assert r.json()["error"] == code
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["content-type"].startswith("application/json")


def replace_param(url: str, name: str, value: str | None) -> str:
    pairs = [(k, v) for k, v in parse_qsl(query_of(url)) if k != name]
    if value is not None:
        pairs.append((name, value))
    return "/og.png?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in pairs)


def sig_of(url: str) -> str:
    return dict(parse_qsl(query_of(url)))["sig"]


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("missing", "signature_required"),
        ("empty", "signature_required"),
        ("forged", "bad_signature"),
        ("truncated", "bad_signature"),
        ("kid only", "bad_signature"),
        ("mac only", "bad_signature"),
        ("wrong kid", "bad_signature"),
        ("foreign secret", "bad_signature"),
        ("non-ascii", "bad_signature"),
        ("parameter added", "bad_signature"),
        ("parameter removed", "bad_signature"),
        ("parameter changed", "bad_signature"),
        ("exp added", "bad_signature"),
    ],
)
def test_bad_signatures_are_403_json_no_store(
    signed_client: TestClient, case: str, code: str
) -> None:
    url = signed()
    sig = sig_of(url)
    kid, _, mac = sig.partition(".")
    foreign = Signer.from_settings(
        Settings(_env_file=None, capture="none", signing_keys="k2026:" + "x" * 24)  # type: ignore[call-arg]
    )
    paths = {
        "missing": replace_param(url, "sig", None),
        "empty": replace_param(url, "sig", ""),
        "forged": replace_param(
            url, "sig", f"{kid}.{mac[:-2]}{'AA' if mac[-2:] != 'AA' else 'BB'}"
        ),
        "truncated": replace_param(url, "sig", sig[:-1]),
        "kid only": replace_param(url, "sig", kid),
        "mac only": replace_param(url, "sig", mac),
        "wrong kid": replace_param(url, "sig", f"k2027.{mac}"),
        "foreign secret": path_of(signed(signer=foreign)),
        "non-ascii": replace_param(url, "sig", f"{kid}.{mac[:-1]}é"),
        "parameter added": replace_param(url, "theme", "dark"),
        "parameter removed": replace_param(url, "subtitle", None),
        "parameter changed": replace_param(url, "title", "Signed card!"),
        "exp added": replace_param(url, "exp", str(int(time.time()) + 3600)),
    }
    refused(signed_client, paths[case], code)


def test_other_key_cannot_vouch_for_a_mac_made_with_the_first(signed_client: TestClient) -> None:
    """The kid is inside what is signed: moving a MAC to another known kid breaks it."""
    sig = sig_of(signed())
    _, _, mac = sig.partition(".")
    refused(signed_client, replace_param(signed(), "sig", f"k2025.{mac}"), "bad_signature")


def test_expiry_is_signed_and_enforced(signed_client: TestClient) -> None:
    now = int(time.time())
    assert signed_client.get(path_of(signed(exp=now + 3600))).status_code == 200
    refused(signed_client, path_of(signed(exp=now - 1)), "signature_expired")
    # Moving exp later, or dropping it, breaks the signature.
    expired = signed(exp=now - 1)
    refused(signed_client, replace_param(expired, "exp", str(now + 3600)), "bad_signature")
    refused(signed_client, replace_param(expired, "exp", None), "bad_signature")
    refused(signed_client, replace_param(expired, "exp", "soon"), "bad_signature")
    refused(signed_client, replace_param(expired, "exp", "9" * 40), "bad_signature")


@pytest.mark.parametrize(
    "variant",
    [
        "reordered",
        "plus for space",
        "lower-case escapes",
        "needless escapes",
        "NFD title",
        "default spelled out",
        "tracking parameter",
        "exp with a leading zero",
    ],
)
def test_equivalent_re_encodings_verify(signed_client: TestClient, variant: str) -> None:
    exp = int(time.time()) + 3600
    pairs = list(parse_qsl(query_of(signed(exp=exp))))

    def enc(value: str) -> str:
        return quote(value, safe="")

    if variant == "reordered":
        query = "&".join(f"{k}={enc(v)}" for k, v in reversed(pairs))
    elif variant == "plus for space":
        query = "&".join(f"{k}={enc(v).replace('%20', '+')}" for k, v in pairs)
        assert "+" in query
    elif variant == "lower-case escapes":
        query = "&".join(
            f"{k}={re.sub('%[0-9A-F]{2}', lambda m: m[0].lower(), enc(v))}" for k, v in pairs
        )
        assert "%c3%a9" in query
    elif variant == "needless escapes":
        query = "&".join(
            f"{k}={''.join(f'%{b:02X}' for b in v.encode())}" if k == "title" else f"{k}={enc(v)}"
            for k, v in pairs
        )
    elif variant == "NFD title":
        query = "&".join(f"{k}={enc(unicodedata.normalize('NFD', v))}" for k, v in pairs)
        assert "e%CC%81" in query  # é decomposed
    elif variant == "default spelled out":
        query = "&".join(f"{k}={enc(v)}" for k, v in pairs) + "&template=default&theme=auto"
    elif variant == "tracking parameter":
        query = "utm_source=newsletter&" + "&".join(f"{k}={enc(v)}" for k, v in pairs)
    else:
        query = "&".join(f"{k}={'0' + v if k == 'exp' else enc(v)}" for k, v in pairs)
    r = signed_client.get(f"/og.png?{query}")
    assert r.status_code == 200, r.text


def test_fast_path_never_lets_an_unverified_query_through(signed_client: TestClient) -> None:
    url = signed()
    assert signed_client.get(path_of(url)).status_code == 200
    assert signed_client.get(path_of(url)).headers["x-ogshot-cache"] == "hit"  # memoised now
    refused(signed_client, replace_param(url, "sig", None), "signature_required")
    refused(signed_client, replace_param(url, "sig", sig_of(url)[:-1]), "bad_signature")


def test_fast_path_rechecks_urls_that_expire(signed_client: TestClient) -> None:
    """A URL with ``exp`` that was good once must be refused once past it, memo or not."""
    # The app's clock is moved rather than waited on: a slow first render cannot eat the margin.
    start = time.time()
    now = [start]
    signed_client.app.state.clock = lambda: now[0]  # type: ignore[attr-defined]
    exp = int(start) + 60
    url = path_of(signed(exp=exp))
    assert signed_client.get(url).status_code == 200
    now[0] = exp - 0.5
    assert signed_client.get(url).status_code == 200
    now[0] = exp
    refused(signed_client, url, "signature_expired")


def test_head_is_guarded_too(signed_client: TestClient) -> None:
    assert signed_client.head(replace_param(signed(), "sig", None)).status_code == 403


def test_unsigned_text_cards_setting(layouts: LayoutRegistry, fonts: FontSet) -> None:
    settings = keyed(allow_unsigned_text_cards=True)
    service = CardService(settings, layouts=layouts, fonts=fonts)
    with TestClient(create_app(settings, service=service), raise_server_exceptions=False) as c:
        assert c.get("/og.png?title=Just+words").status_code == 200
        # A url means a capture (credits): still signed only.
        refused(c, "/og.png?title=t&url=https%3A%2F%2Fexample.com%2F", "signature_required")
        # A signature that is there must be right, even where none is needed.
        refused(c, "/og.png?title=Just+words&sig=k2026.AAAA", "bad_signature")
        assert c.get(path_of(signed())).status_code == 200


def test_signing_off_renders_unsigned_and_signs_nothing(client: TestClient) -> None:
    off = Signer.from_settings(Settings(_env_file=None, capture="none"))  # type: ignore[call-arg]
    assert not off.enabled
    params = off.signed_params(CARD, exp=123)
    assert "sig" not in params and params["exp"] == "123"
    off.verify(CARD, None, None, now=time.time())
    assert client.get("/og.png?title=unsigned").status_code == 200


def test_signed_params_carry_only_non_default_fields() -> None:
    params = SIGNER.signed_params(Card(title="T", template="default", theme="dark"))
    assert list(params) == ["title", "theme", "sig"]
    assert params["sig"].startswith("k2026.") and len(params["sig"].partition(".")[2]) == 43


@pytest.mark.parametrize(
    "keys",
    ["k1", "k1:short", ":" + "s" * 20, "bad kid:" + "s" * 20, f"a:{'s' * 20},a:{'t' * 20}"],
)
def test_malformed_keys_stop_start_up(keys: str) -> None:
    settings = Settings(_env_file=None, capture="none", signing_keys=keys)  # type: ignore[call-arg]
    with pytest.raises(ConfigError) as err:
        create_app(settings)
    assert "OGSHOT_SIGNING_KEYS" in err.value.detail
    assert "s" * 20 not in err.value.detail  # secrets never appear in messages


def test_card_url_keeps_a_path_prefix_and_encodes_everything() -> None:
    url = card_url("https://cdn.example.com/og/", {"title": "a&b=c d+é"})
    assert url == "https://cdn.example.com/og/og.png?title=a%26b%3Dc%20d%2B%C3%A9"


# --- ogshot sign ----------------------------------------------------------------------------


def test_ogshot_sign_prints_a_url_the_server_accepts(
    signed_client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OGSHOT_SIGNING_KEYS", KEYS)
    monkeypatch.setenv("OGSHOT_PUBLIC_URL", "https://og.example.com")
    assert main(["sign", "--title", "From the CLI", "--theme", "dark", "--exp", "600"]) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith("https://og.example.com/og.png?title=From%20the%20CLI&theme=dark&exp=")
    assert signed_client.get(path_of(url)).status_code == 200
    assert main(["sign", "--title", "t", "--expires-at", "2001-01-01T00:00:00Z"]) == 0
    refused(signed_client, path_of(capsys.readouterr().out.strip()), "signature_expired")


def test_ogshot_sign_without_keys_warns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OGSHOT_SIGNING_KEYS", raising=False)
    monkeypatch.delenv("OGSHOT_PUBLIC_URL", raising=False)
    assert main(["sign", "--title", "t"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == "http://127.0.0.1:8000/og.png?title=t"
    assert "unsigned" in out.err


def test_ogshot_sign_refuses_bad_input(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OGSHOT_SIGNING_KEYS", KEYS)
    assert main(["sign", "--title", "t", "--expires-at", "tomorrow"]) == 1
    assert main(["sign", "--title", "t", "--exp", "0"]) == 1
    assert main(["sign", "--accent", "red", "--title", "t"]) == 1
    assert capsys.readouterr().out == ""


# --- property: equivalent re-encodings verify, tampering never does -------------------------

_TEXT = st.lists(
    st.sampled_from(
        list("aZ09 -_.~&=+%#?/;,é") + ["e\u0301", "\u00c5", "A\u030a", "日本", "👩‍💻", "\t", "  "]
    ),
    max_size=12,
).map("".join)


@st.composite
def card_params(draw: st.DrawFn) -> dict[str, str]:
    params: dict[str, str] = {"title": draw(_TEXT)}
    if draw(st.booleans()):
        params["subtitle"] = draw(_TEXT)
    if draw(st.booleans()):
        params["site"] = draw(_TEXT)
    if draw(st.booleans()):
        path = draw(st.text(alphabet="abc/-_.~%20", max_size=10))
        params["url"] = f"https://Example.com/{path}"
    if draw(st.booleans()):
        params["theme"] = draw(st.sampled_from(["auto", "light", "dark"]))
    if draw(st.booleans()):
        params["format"] = draw(st.sampled_from(["png", "jpeg", "webp"]))
    if draw(st.booleans()):
        params["accent"] = draw(st.sampled_from(["#1A2b3C", "#ffffff"]))
    if draw(st.booleans()):
        params["v"] = draw(st.text(alphabet="abc123 +", max_size=6))
    return params


def _valid(params: dict[str, str]) -> Card | None:
    try:
        return parse_card(params)
    except OgshotError:
        return None


_UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def _encode(value: str, rnd: random.Random) -> str:
    """Percent-encode ``value`` the way some client might: any case of hex, escapes where none
    are needed, ``+`` or ``%20`` for a space."""
    out = []
    for byte in value.encode("utf-8"):
        ch = chr(byte)
        style = rnd.randrange(4)
        if ch == " " and style < 2:
            out.append("+")
        elif ch in _UNRESERVED and style < 2:
            out.append(ch)
        else:
            esc = f"%{byte:02X}"
            out.append(esc.lower() if style == 3 else esc)
    return "".join(out)


def _verdict(query: str) -> bool:
    params = dict(QueryParams(query))
    try:
        card = parse_card(params)
        SIGNER.verify(card, params.get("exp"), params.get("sig"), now=time.time())
    except Forbidden:
        return False
    return True


PROPERTY = hsettings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(params=card_params(), with_exp=st.booleans(), data=st.data())
def test_ogshot_sign_urls_verify_after_any_equivalent_re_encoding(
    params: dict[str, str], with_exp: bool, data: st.DataObject
) -> None:
    card = _valid(params)
    assume(card is not None)
    exp = int(time.time()) + 3600 if with_exp else None
    url = sign_url(KEYED, params, exp=exp)
    pairs = parse_qsl(query_of(url), keep_blank_values=True)
    assert _verdict(query_of(url))
    if data.draw(st.booleans()):  # spell out a default or two
        pairs.append(("template", "default"))
    if data.draw(st.booleans()):
        pairs.append(("utm_campaign", "x y"))
    pairs = data.draw(st.permutations(pairs))
    nfd = data.draw(st.booleans())
    rnd = data.draw(st.randoms(use_true_random=False))
    texts = ("title", "subtitle", "site")
    query = "&".join(
        f"{k}={_encode(unicodedata.normalize('NFD', v) if nfd and k in texts else v, rnd)}"
        for k, v in pairs
    )
    assert _verdict(query), query


@PROPERTY
@given(params=card_params(), data=st.data())
def test_tampered_ogshot_sign_urls_never_verify(
    params: dict[str, str], data: st.DataObject
) -> None:
    card = _valid(params)
    assume(card is not None)
    exp = int(time.time()) + 3600
    url = sign_url(KEYED, params, exp=exp)
    pairs = dict(parse_qsl(query_of(url), keep_blank_values=True))
    how = data.draw(st.sampled_from(["field", "drop", "exp", "sig", "kid", "strip sig"]))
    if how == "field":
        name = data.draw(st.sampled_from(["title", "subtitle", "site", "theme", "format", "v"]))
        pairs[name] = data.draw(_TEXT | st.sampled_from(["dark", "light", "jpeg", "webp"]))
    elif how == "drop":
        name = data.draw(st.sampled_from(sorted(k for k in pairs if k != "sig")))
        del pairs[name]
    elif how == "exp":
        pairs["exp"] = str(exp + data.draw(st.integers(1, 10**6)))
    elif how == "sig":
        sig = pairs["sig"]
        i = data.draw(st.integers(len("k2026."), len(sig) - 1))
        pairs["sig"] = (
            sig[:i]
            + data.draw(st.sampled_from("AQgw-_9z").filter(lambda c: c != sig[i]))
            + sig[i + 1 :]
        )
    elif how == "kid":
        pairs["sig"] = "k2025" + pairs["sig"][len("k2026") :]
    else:
        pairs["sig"] = pairs["sig"][: data.draw(st.integers(0, len(pairs["sig"]) - 1))]
    tampered = _valid({k: v for k, v in pairs.items() if k not in ("exp", "sig")})
    if how in ("field", "drop"):
        assume(tampered is not None and tampered != card)
    rnd = data.draw(st.randoms(use_true_random=False))
    query = "&".join(f"{k}={_encode(v, rnd)}" for k, v in pairs.items())
    if tampered is None:
        return  # not even a card: refused before any signature is looked at
    assert not _verdict(query), query
