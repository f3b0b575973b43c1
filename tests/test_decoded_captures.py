"""The decoded-capture LRU: a new title on a captured page skips the decode, bytes unchanged."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from PIL import Image

from ogshot import service as service_module
from ogshot.api import create_app
from ogshot.capture import make_provider
from ogshot.capture.decoded import DecodedCaptures, image_bytes
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.service import CardService
from ogshot.settings import Settings

from .fake_upstream import FakeUpstream

PAGE = "https://example.com/page-decoded-once"


def _service(settings: Settings, layouts: LayoutRegistry, fonts: FontSet) -> CardService:
    return CardService(
        settings, layouts=layouts, fonts=fonts, capture=make_provider(settings), clock=time.time
    )


def _cards(service: CardService, settings: Settings, titles: list[str]) -> list[bytes]:
    app = create_app(settings, service=service)
    out = []
    with TestClient(app, raise_server_exceptions=False) as c:
        for title in titles:
            r = c.get("/og.png", params={"title": title, "url": PAGE})
            assert r.status_code == 200, r.text
            assert "x-ogshot-fallback" not in r.headers
            out.append(r.content)
    return out


def test_new_title_on_a_captured_page_decodes_the_capture_once(
    capture_settings: Settings,
    layouts: LayoutRegistry,
    fonts: FontSet,
    fake_upstream: FakeUpstream,
    monkeypatch: object,
) -> None:
    calls: list[int] = []
    real = service_module.decode

    def counting(body: bytes, max_pixels: int) -> Image.Image:
        calls.append(len(body))
        return real(body, max_pixels)

    monkeypatch.setattr(service_module, "decode", counting)  # type: ignore[attr-defined]
    svc = _service(capture_settings, layouts, fonts)
    _cards(svc, capture_settings, ["First title", "Second title", "Third title"])
    assert len(calls) == 1
    assert svc.decoded.hits == 2 and len(svc.decoded) == 1


def test_card_bytes_are_the_same_with_and_without_the_decoded_lru(
    capture_settings: Settings,
    layouts: LayoutRegistry,
    fonts: FontSet,
    fake_upstream: FakeUpstream,
) -> None:
    with_lru = _service(capture_settings, layouts, fonts)
    first, second = _cards(with_lru, capture_settings, ["Warm the capture", "Served from memory"])
    assert with_lru.decoded.hits == 1  # the second card really used the kept image

    without = _service(capture_settings, layouts, fonts)
    without.decoded = DecodedCaptures(max_entries=0)  # keeps nothing: decodes every time
    (fresh,) = _cards(without, capture_settings, ["Served from memory"])
    assert without.decoded.hits == 0 and len(without.decoded) == 0
    assert fresh == second and fresh != first


def _image(width: int, height: int, mode: str = "RGB") -> Image.Image:
    return Image.new(mode, (width, height))


def test_decoded_lru_is_bounded_by_bytes_and_drops_the_least_recently_used() -> None:
    one = image_bytes(_image(100, 100))  # 30 000 bytes
    lru = DecodedCaptures(max_bytes=3 * one, max_entries=100)
    for i in range(3):
        lru.put(f"e{i}", _image(100, 100))
    assert lru.get("e0") is not None  # e0 is now the most recent; e1 the least
    for i in range(3, 50):
        lru.put(f"e{i}", _image(100, 100))
        assert lru.bytes <= 3 * one and len(lru) <= 3
    assert lru.get("e1") is None and lru.get("e49") is not None


def test_decoded_lru_is_bounded_by_entries_and_never_keeps_an_oversized_image() -> None:
    lru = DecodedCaptures(max_bytes=10_000_000, max_entries=2)
    for i in range(5):
        lru.put(f"k{i}", _image(10, 10, "L"))
    assert len(lru) == 2 and lru.bytes == 200
    lru.put("huge", _image(2000, 2000))  # 12 MB: above the whole budget
    assert lru.get("huge") is None and len(lru) == 2 and lru.bytes == 200
    lru.put("", _image(10, 10))  # an entry without an ETag has no name to be kept under
    assert len(lru) == 2


def test_replacing_a_key_does_not_count_its_bytes_twice() -> None:
    lru = DecodedCaptures(max_bytes=1_000_000, max_entries=8)
    lru.put("same", _image(100, 100))
    lru.put("same", _image(100, 100))
    assert len(lru) == 1 and lru.bytes == 30_000
