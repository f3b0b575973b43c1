"""A real ``ogshot serve`` process on a loopback port, as a newcomer would run it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .conftest import decode, ogshot_serve


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with ogshot_serve(tmp_path_factory.mktemp("serve")) as base:
        yield base


def test_served_card(server: str) -> None:
    r = httpx.get(f"{server}/og.png", params={"title": "Hello"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    assert int(r.headers["content-length"]) == len(r.content)
    assert decode(r.content).size == (1200, 630)

    again = httpx.get(
        f"{server}/og.png",
        params={"title": "Hello"},
        headers={"If-None-Match": f"W/{r.headers['etag']}"},
    )
    assert again.status_code == 304
    assert again.headers["etag"] == r.headers["etag"]
    assert again.headers["cache-control"] == r.headers["cache-control"]

    head = httpx.head(f"{server}/og.png", params={"title": "Hello"})
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == r.headers["content-length"]
    assert head.headers["etag"] == r.headers["etag"]


def test_served_errors_are_json(server: str) -> None:
    r = httpx.get(f"{server}/og.png", params={"title": "t", "accent": "nope"})
    assert r.status_code == 422
    assert r.headers["cache-control"] == "no-store"
    assert r.json()["error"] == "invalid_parameter"
