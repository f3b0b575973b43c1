"""Header sniffing, pixel caps and decoding of capture bytes; coalescing in the capture store."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from PIL import Image

from ogshot.cache import MemoryCache
from ogshot.capture import Capture, CaptureError, CaptureRequest
from ogshot.capture.images import check, decode, sniff
from ogshot.capture.store import CaptureStore
from ogshot.netguard import UrlPolicy
from ogshot.settings import Settings

from .fake_upstream import png_bomb


def _encode(size: tuple[int, int], fmt: str, mode: str = "RGB", **kw: Any) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (10, 20, 30, 40)[: len(mode)]).save(out, fmt, **kw)
    return out.getvalue()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_encode((321, 123), "PNG"), ("png", 321, 123)),
        (_encode((321, 123), "PNG", "RGBA"), ("png", 321, 123)),
        (_encode((321, 123), "JPEG"), ("jpeg", 321, 123)),
        (_encode((321, 123), "JPEG", progressive=True), ("jpeg", 321, 123)),
        (_encode((321, 123), "WEBP"), ("webp", 321, 123)),
        (_encode((321, 123), "WEBP", lossless=True), ("webp", 321, 123)),
        (_encode((321, 123), "WEBP", "RGBA"), ("webp", 321, 123)),
        (png_bomb(), ("png", 20000, 20000)),
    ],
)
def test_sniff_reads_size_from_the_header(body: bytes, expected: tuple[str, int, int]) -> None:
    assert sniff(body) == expected


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty_body"),
        (b"GIF89a....", "bad_image"),
        (b"<html></html>", "bad_image"),
        (b"\x89PNG\r\n\x1a\n\0\0", "bad_image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "bad_image"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "bad_image"),
    ],
)
def test_sniff_refuses_garbage(body: bytes, reason: str) -> None:
    with pytest.raises(CaptureError) as err:
        sniff(body)
    assert err.value.reason == reason


def test_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(CaptureError) as err:
        decode(png_bomb(), max_pixels=40_000_000)
    assert err.value.reason == "image_too_large"


def test_size_checks_allow_scale_factors_and_full_pages() -> None:
    body = _encode((800, 400), "PNG")
    check(body, 10**8, (400, 200))
    check(body, 10**8, (800, 100), full_page=True)
    with pytest.raises(CaptureError, match="sent 800×400"):
        check(body, 10**8, (800, 100))


def test_truncated_image_is_bad_not_a_crash() -> None:
    body = _encode((600, 400), "PNG")
    noisy = Image.effect_noise((600, 400), 50).convert("RGB")
    out = io.BytesIO()
    noisy.save(out, "PNG")
    with pytest.raises(CaptureError) as err:
        decode(out.getvalue()[: len(out.getvalue()) // 2], 10**8)
    assert err.value.reason == "bad_image"
    assert decode(body, 10**8).size == (600, 400)


class CountingProvider:
    name = "test"
    enabled = True

    def __init__(self) -> None:
        self.calls = 0

    async def capture(self, request: CaptureRequest) -> Capture:
        self.calls += 1
        await asyncio.sleep(0.02)
        return Capture(_encode((request.width, request.height), "PNG"), "image/png")

    async def aclose(self) -> None:
        return None


def test_store_coalesces_and_caches_under_its_own_namespace() -> None:
    provider = CountingProvider()
    cache = MemoryCache(10**7)
    store = CaptureStore(provider, cache, Settings(_env_file=None), UrlPolicy())
    req = store.for_card("https://example.com/")

    async def scenario() -> None:
        entries = await asyncio.gather(*(store.get(req) for _ in range(5)))
        assert len({e.etag for e in entries}) == 1
        await store.get(req)
        await asyncio.sleep(0)
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

    asyncio.run(scenario())
    assert provider.calls == 1
    key = store.key(req)
    assert key.startswith("capture-") and len(key) == len("capture-") + 64
    assert store.key(CaptureRequest("https://example.com/", 1200, 630, "png", True)) != key
