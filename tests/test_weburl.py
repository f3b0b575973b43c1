from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ogshot.weburl import display_host, parse_page_url


@pytest.mark.parametrize(
    ("given", "href", "host", "host_type"),
    [
        ("http://127。0。0。1/", "http://127.0.0.1/", "127.0.0.1", "ipv4"),
        ("http://%31%32%37.0.0.1/", "http://127.0.0.1/", "127.0.0.1", "ipv4"),
        ("http://①②⑦.0.0.1/", "http://127.0.0.1/", "127.0.0.1", "ipv4"),
        ("http://0x7f.1/", "http://127.0.0.1/", "127.0.0.1", "ipv4"),
        ("http://localhost%2e/", "http://localhost./", "localhost.", "name"),
        ("http://[::ffff:0:127.0.0.1]/", "http://[::ffff:0:7f00:1]/", "::ffff:0:7f00:1", "ipv6"),
        ("HTTPS://Bücher.DE:443/ä?q=ü#f", "https://xn--bcher-kva.de/%C3%A4?q=%C3%BC",
         "xn--bcher-kva.de", "name"),
        ("http://example.com", "http://example.com/", "example.com", "name"),
        ("http:///example.com/a/./b/../c", "http://example.com/a/c", "example.com", "name"),
        ("http://@example.com:8080", "http://example.com:8080/", "example.com", "name"),
    ],
)  # fmt: skip
def test_urls_are_read_as_a_browser_reads_them(
    given: str, href: str, host: str, host_type: str
) -> None:
    page = parse_page_url(given)
    assert (page.href, page.host, page.host_type) == (href, host, host_type)
    assert parse_page_url(page.href) == page  # canonical is a fixed point


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("http://a.com\\@127.0.0.1/", "backslash"),
        ("http://a.com/\\x", "backslash"),
        ("http://exa\tmple.com/", "white space"),
        ("http://user:pw@example.com/", "user name"),
        ("http://user@example.com/", "user name"),
        ("ftp://example.com/", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("FILE:///etc/passwd", "http or https"),
        ("view-source:http://example.com", "http or https"),
        ("example.com/page", "not a valid URL"),
        ("http://09.0.0.1/", "not a valid URL"),
        ("http://[fe80::1%25eth0]/", "not a valid URL"),
        ("http://\ud800.com/", "not a valid URL"),
        ("http://xn--/", "xn--"),
        ("https://e.com/" + "a" * 2048, "at most 2048"),
        ("https://e.com/" + "ä" * 400, "once percent-encoded"),
    ],
)
def test_what_a_browser_would_not_open_or_ogshot_will_not_send_is_refused(
    given: str, why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        parse_page_url(given)


def test_origin_always_names_the_port() -> None:
    assert parse_page_url("http://localhost/").origin == "http://localhost:80"
    assert parse_page_url("https://[::1]:8443/").origin == "https://[::1]:8443"


def test_display_host_shows_unicode_labels() -> None:
    assert display_host("xn--bcher-kva.de.") == "bücher.de"
    assert display_host("example.com") == "example.com"


_URL_CHARS = st.sampled_from(
    list("abc019.-:/?#[]@%!$&'()*+,;=~_") + ["。", "．", "①", "Ａ", "ß", "\u00ad", "٣", "\ud800"]
)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["http://", "https://", "HTTP://", "http:", "http:///", "ftp://", ""]),
    st.text(_URL_CHARS, max_size=40),
)
def test_any_spelling_parses_to_a_fixed_point_or_is_refused_cleanly(prefix: str, rest: str) -> None:
    try:
        page = parse_page_url(prefix + rest)
    except ValueError:
        return  # the only way to refuse: a 422 with a sentence, never a 500
    assert parse_page_url(page.href) == page
    assert page.scheme in ("http", "https") and page.host
