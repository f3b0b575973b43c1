from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from ogshot.api import MAX_QUERY_BYTES, query_params
from ogshot.service import CardService

from .conftest import decode

CARD = "/og.png?title=Hello%20world&subtitle=A%20card&site=example.org"


def test_card_is_a_1200x630_png_with_cache_headers(client: TestClient) -> None:
    r = client.get(CARD)
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    assert int(r.headers["content-length"]) == len(r.content)
    etag = r.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert r.headers["cache-control"] == (
        "public, max-age=86400, stale-while-revalidate=86400, stale-if-error=604800"
    )
    image = decode(r.content)
    assert image.format == "PNG"
    assert image.size == (1200, 630)


@pytest.mark.parametrize(
    ("fmt", "media", "pil"), [("jpeg", "image/jpeg", "JPEG"), ("webp", "image/webp", "WEBP")]
)
def test_other_formats(client: TestClient, fmt: str, media: str, pil: str) -> None:
    r = client.get(f"{CARD}&format={fmt}")
    assert r.status_code == 200
    assert r.headers["content-type"] == media
    image = decode(r.content)
    assert (image.format, image.size) == (pil, (1200, 630))


def test_etag_changes_with_the_bytes(client: TestClient) -> None:
    a = client.get("/og.png?title=One")
    b = client.get("/og.png?title=Two")
    c = client.get("/og.png?title=One")
    assert a.headers["etag"] != b.headers["etag"]
    assert a.headers["etag"] == c.headers["etag"]
    assert a.content == c.content


@pytest.mark.parametrize("form", ["{tag}", "W/{tag}", '"nope", {tag}', "*", ' "x" ,W/{tag} '])
def test_if_none_match_gives_304_with_same_headers(client: TestClient, form: str) -> None:
    first = client.get(CARD)
    tag = first.headers["etag"]
    r = client.get(CARD, headers={"If-None-Match": form.format(tag=tag)})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == tag
    assert r.headers["cache-control"] == first.headers["cache-control"]


def test_if_none_match_mismatch_gives_full_card(client: TestClient) -> None:
    r = client.get(CARD, headers={"If-None-Match": '"something-else"'})
    assert r.status_code == 200
    assert decode(r.content).size == (1200, 630)


def test_head_has_get_headers_and_no_body(client: TestClient) -> None:
    get = client.get(CARD)
    head = client.head(CARD)
    assert head.status_code == 200
    assert head.content == b""
    for name in ("etag", "cache-control", "content-type", "content-length"):
        assert head.headers[name] == get.headers[name]


def test_range_gives_a_correct_206(client: TestClient) -> None:
    full = client.get(CARD).content
    r = client.get(CARD, headers={"Range": "bytes=10-109"})
    assert r.status_code == 206
    assert r.content == full[10:110]
    assert r.headers["content-range"] == f"bytes 10-109/{len(full)}"
    assert r.headers["content-length"] == "100"


def test_facebook_range_and_bad_ranges_get_the_whole_card(client: TestClient) -> None:
    full = client.get(CARD).content
    for value in ("bytes=0-524288", "bytes=0-1,4-8", "bytes=zz", f"bytes={len(full) + 5}-"):
        r = client.get(CARD, headers={"Range": value})
        assert r.status_code == 200, value
        assert r.content == full


def test_repeat_is_served_from_cache_without_rendering(
    client: TestClient, service: CardService
) -> None:
    client.get(CARD)
    assert service.renders == 1
    for _ in range(5):
        assert client.get(CARD).status_code == 200
    assert client.get(CARD, headers={"If-None-Match": "*"}).status_code == 304
    assert service.renders == 1
    # The same card spelled differently shares the entry.
    client.get(
        "/og.png?site=example.org&subtitle=A+card&title=++Hello+world&theme=auto&utm_source=x"
    )
    assert service.renders == 1


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("", 422, "invalid_parameter"),
        ("?title=", 422, "invalid_parameter"),
        ("?title=" + "x" * 301, 422, "invalid_parameter"),
        ("?title=t&subtitle=" + "x" * 501, 422, "invalid_parameter"),
        ("?title=t&accent=blue", 422, "invalid_parameter"),
        ("?title=t&theme=neon", 422, "invalid_parameter"),
        ("?title=t&format=bmp", 422, "invalid_parameter"),
        ("?title=t&url=file:///etc/passwd", 422, "invalid_parameter"),
        ("?title=t&template=missing", 404, "unknown_template"),
        ("?title=t&template=..%2F..%2Fetc", 422, "invalid_parameter"),
        ("?title=" + "x" * (MAX_QUERY_BYTES + 1), 414, "uri_too_long"),
    ],
)
def test_bad_input_gets_a_json_error_that_is_not_cached(
    client: TestClient, service: CardService, query: str, status: int, code: str
) -> None:
    r = client.get("/og.png" + query)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["error"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    assert service.renders == 0


def test_unknown_route_and_method_are_json_errors(client: TestClient) -> None:
    r = client.get("/nope")
    assert (r.status_code, r.json()["error"], r.headers["cache-control"]) == (
        404,
        "not_found",
        "no-store",
    )
    r = client.post("/og.png?title=t")
    assert (r.status_code, r.json()["error"]) == (405, "method_not_allowed")


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("?title=%00%01%02", 422),  # only control characters: refused, not crashed
        ("?title=%F0%9F%98%80", 200),
        ("?title=%ED%A0%80", 200),  # an encoded lone surrogate
        ("?title=%FF%FE", 200),
        ("?title=t&title=u", 200),
        ("?title=" + "W" * 300, 200),
        ("?title=" + "%E2%80%AE" * 50 + "x", 200),
        ("?title=a&v=%00", 200),
    ],
)
def test_odd_but_valid_input_never_500s(client: TestClient, query: str, status: int) -> None:
    # Each query has one right answer: a card, or a JSON refusal that says why.
    r = client.get("/og.png" + query)
    assert r.status_code == status, (query, r.status_code, r.text[:200])
    if status == 200:
        assert decode(r.content).size == (1200, 630)
    else:
        assert r.json()["error"] == "invalid_parameter"
        assert r.headers["cache-control"] == "no-store"


def test_healthz_and_docs(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/og.png" in spec["paths"]


def test_templates_lists_layouts(client: TestClient) -> None:
    names = [t["name"] for t in client.get("/templates").json()["templates"]]
    assert "default" in names


# Each of these is asked twice: first sight takes the normal route, the repeat the fast path.
@pytest.mark.parametrize(
    "value", ["bytes=\u00b2-5", "bytes=0-\u00b3", "bytes=-\u00b9", "bytes=" + "9" * 5000 + "-"]
)
def test_range_with_digits_outside_the_grammar_gives_the_full_card_on_both_paths(
    client: TestClient, value: str
) -> None:
    full = client.get(CARD).content
    for _ in range(2):
        r = client.get(CARD + "&v=digits", headers=[(b"Range", value.encode("utf-8"))])
        assert r.status_code == 200
        assert len(r.content) == len(full)


def test_if_none_match_with_an_empty_list_element_gives_304_on_both_paths(
    client: TestClient,
) -> None:
    tag = client.get(CARD).headers["etag"]
    for _ in range(2):
        assert client.get(CARD, headers={"If-None-Match": f", {tag}"}).status_code == 304


def test_two_if_none_match_lines_are_one_list_on_both_paths(client: TestClient) -> None:
    tag = client.get(CARD).headers["etag"]
    for order in ([tag, '"other"'], ['"other"', tag]):
        for _ in range(2):
            r = client.get(CARD, headers=[("If-None-Match", order[0]), ("If-None-Match", order[1])])
            assert r.status_code == 304


def test_two_range_lines_give_the_same_answer_on_both_paths(client: TestClient) -> None:
    size = len(client.get(CARD).content)
    headers = [("Range", "bytes=0-9"), ("Range", "bytes=20-29")]
    first = client.get(CARD + "&v=two-ranges", headers=headers)
    again = client.get(CARD + "&v=two-ranges", headers=headers)
    assert first.status_code == again.status_code == 200
    assert len(first.content) == len(again.content) == size


query_bytes = st.lists(
    st.sampled_from(
        # Escapes well and badly formed, bytes that are no UTF-8, backslashes near escapes
        ["a", "b", "=", "&", ";", "+", "%", "2", "0", "F", "x", "é", " ", "\\", "%C3%A9", "%e9"]
        + ["%C3", "%FF", "%zz", "%4", "%5C", "\\x41", "%%", "%2B", "%26", "%3D", "%00"]
    ),
    max_size=30,
).map(lambda parts: "".join(parts).encode("utf-8"))


@settings(max_examples=300, deadline=None)
@given(query=query_bytes)
def test_query_parameters_are_read_as_starlettes_query_params_read_them(query: bytes) -> None:
    assert list(query_params(query).items()) == list(dict(QueryParams(query)).items())
