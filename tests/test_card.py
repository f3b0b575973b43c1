from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ogshot.card import Card, clean_text, parse_card
from ogshot.errors import InvalidParameter


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Hello   world ", "Hello world"),
        ("tab\there\nnewline", "tab here newline"),
        ("e\u0301cole", "\u00e9cole"),  # NFC
        ("bell\x07 and nul\x00", "bell and nul"),
        (
            "family \U0001f468\u200d\U0001f469\u200d\U0001f467",
            "family \U0001f468\u200d\U0001f469\u200d\U0001f467",
        ),
        ("private \ue000 use", "private use"),
        ("unassigned \u0378 code point", "unassigned code point"),
        # Emoji of Unicode 15 to 17 are assigned characters, kept for the emoji font to draw.
        ("goose \U0001fabf harp \U0001fa89", "goose \U0001fabf harp \U0001fa89"),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def _clean_text_general(value: str) -> str:
    """clean_text's general road, which the printable-ASCII shortcut must agree with."""
    kept = [
        ch
        for ch in unicodedata.normalize("NFC", value)
        if not (unicodedata.category(ch) == "Cc" and ch not in "\t\n\r")
        and unicodedata.category(ch) not in ("Cs", "Co", "Cn")
    ]
    return re.sub(r"\s+", " ", "".join(kept)).strip()


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        # Printable ASCII, runs of spaces often: the strings the shortcut takes.
        st.lists(
            st.one_of(
                st.sampled_from([" ", "  ", "   "]),
                st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=6),
            ),
            max_size=8,
        ).map("".join),
        # Any ASCII, controls and other white space included: the strings it must leave alone.
        st.text(st.characters(max_codepoint=0x7F), max_size=40),
    )
)
def test_clean_text_ascii_shortcut_agrees_with_the_general_road(value: str) -> None:
    assert clean_text(value) == _clean_text_general(value)


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"title": "x" * 301}, "title"),
        ({"title": "t", "subtitle": "x" * 501}, "subtitle"),
        ({"title": "t", "site": "x" * 101}, "site"),
        ({"title": "t", "accent": "red"}, "accent"),
        ({"title": "t", "accent": "#12345"}, "accent"),
        ({"title": "t", "accent": "#gggggg"}, "accent"),
        ({"title": "t", "theme": "sepia"}, "theme"),
        ({"title": "t", "format": "gif"}, "format"),
        ({"title": "t", "template": "../etc/passwd"}, "template"),
        ({"title": "t", "template": "A B"}, "template"),
        ({"title": "t", "v": "x" * 65}, "v"),
        ({"title": "t", "url": "ftp://example.com/"}, "url"),
        ({"title": "t", "url": "javascript:alert(1)"}, "url"),
        ({"title": "t", "url": "FILE:///etc/passwd"}, "url"),
        ({"title": "t", "url": "http://user:pw@example.com/"}, "url"),
        ({"title": "t", "url": "http://a.com\\@127.0.0.1/"}, "url"),
        ({"title": "t", "url": "http://"}, "url"),
        ({"title": "t", "url": "http://[::1/"}, "url"),
        ({"title": "t", "url": "http://09.0.0.1/"}, "url"),
        ({"title": "t", "url": "http://1.2.3.4.5/"}, "url"),
        ({"title": "t", "url": "http://exa<mple.com/"}, "url"),
        ({"title": "t", "url": "http://xn--a.com/"}, "url"),
        ({"title": "t", "url": "http://example.com:99999/"}, "url"),
        ({"title": "t", "url": "https://e.com/" + "a" * 2048}, "url"),
    ],
)
def test_bad_values_are_refused_naming_the_parameter(params: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_card(params)
    assert info.value.param == param
    assert param in info.value.detail


def test_a_card_needs_a_title_or_url() -> None:
    with pytest.raises(InvalidParameter, match="needs a title"):
        parse_card({"title": "   "})
    assert parse_card({"url": "https://example.com"}).title == ""


def test_unknown_parameters_are_ignored() -> None:
    assert parse_card({"title": "t", "utm_source": "x", "fbclid": "y"}) == Card(title="t")


def test_non_string_values_are_refused() -> None:
    with pytest.raises(InvalidParameter, match="'title' must be a string"):
        parse_card({"title": 3})


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"title": "Hello"}, {"title": "  Hello ", "template": "DEFAULT", "theme": "auto"}),
        ({"title": "\u00e9"}, {"title": "e\u0301"}),
        ({"title": "t", "accent": "#ABCDEF"}, {"title": "t", "accent": "#abcdef"}),
        (
            {"title": "t", "url": "HTTPS://Example.COM:443"},
            {"title": "t", "url": "https://example.com/"},
        ),
        ({"title": "t", "format": "png"}, {"title": "t"}),
    ],
)
def test_equivalent_requests_make_equal_cards(a: dict[str, object], b: dict[str, object]) -> None:
    ca, cb = parse_card(a), parse_card(b)
    assert ca == cb
    assert ca.canonical_json() == cb.canonical_json()


def test_site_label_defaults_to_host_without_www() -> None:
    assert (
        parse_card({"title": "t", "url": "https://www.example.org/a"}).site_label == "example.org"
    )
    assert parse_card({"title": "t", "url": "https://x.org", "site": "Mine"}).site_label == "Mine"
