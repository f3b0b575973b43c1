from __future__ import annotations

import importlib.util
import io
import multiprocessing
import random
import shutil
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageFilter

from ogshot import encode as enc
from ogshot.card import Card
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.render import render_card

from .conftest import decode

PNGCHECK = shutil.which("pngcheck")


def _noise(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    rng = random.Random(seed)
    bands = len(Image.new(mode, (1, 1)).getbands())
    data = rng.randbytes(size[0] * size[1] * bands)
    return Image.frombytes(mode, size, data)


def _photo(mode: str, seed: int) -> Image.Image:
    """Smooth colour shapes under grain: what a photograph in a capture looks like."""
    rng = random.Random(seed)
    image = Image.new("RGB", (320, 200), (rng.randrange(256), 90, 40))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y, r = rng.randrange(320), rng.randrange(200), rng.randrange(10, 80)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(rng.randrange(256), 120, 200))
    image = image.filter(ImageFilter.GaussianBlur(6))
    image = Image.blend(image, Image.effect_noise(image.size, 30).convert("RGB"), 0.2)
    if mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").resize(image.size))
    return image.convert(mode)


def _flat(mode: str, seed: int) -> Image.Image:
    colour = {"L": 200, "LA": (200, 128), "RGB": (12, 34, 56), "RGBA": (12, 34, 56, 78)}[mode]
    return Image.new(mode, (300, 150), colour)  # type: ignore[arg-type]


IMAGES = {
    "noise": lambda mode, seed: _noise(mode, (257, 131), seed),
    "photo": _photo,
    "flat": _flat,
    "one-row": lambda mode, seed: _noise(mode, (64, 1), seed),
    "one-pixel": lambda mode, seed: _noise(mode, (1, 1), seed),
}


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_png_round_trip_is_lossless(mode: str, kind: str) -> None:
    source = IMAGES[kind](mode, 7)
    body = enc.encode(source, "png")
    decoded = decode(body)
    assert decoded.format == "PNG"
    assert decoded.mode == mode
    assert decoded.size == source.size
    assert decoded.tobytes() == source.tobytes()


def _chunks(body: bytes) -> list[tuple[bytes, bytes]]:
    assert body[:8] == b"\x89PNG\r\n\x1a\n"
    pos, out = 8, []
    while pos < len(body):
        (length,) = struct.unpack(">I", body[pos : pos + 4])
        tag, data = body[pos + 4 : pos + 8], body[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", body[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(tag + data), f"bad CRC on {tag!r}"
        out.append((tag, data))
        pos += 12 + length
    return out


def test_png_structure_is_what_browsers_expect() -> None:
    body = enc.write_png(_photo("RGB", 1), lambda data: zlib.compress(data, 1))
    chunks = _chunks(body)
    assert [tag for tag, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (width, height, depth, colour, comp, filt, interlace) == (320, 200, 8, 2, 0, 0, 0)
    raw = zlib.decompress(chunks[1][1])
    assert len(raw) == height * (1 + width * 3)
    # Every row starts with a valid filter type: None on the first row, Up on the others.
    assert raw[0] == 0
    assert {raw[y * (1 + width * 3)] for y in range(1, height)} == {2}


def _rows_by_definition(image: Image.Image) -> bytes:
    """IDAT's rows the slow, plain way: the first row as it is after a ``None`` filter byte,
    every other one ``Up``-filtered byte by byte (minus the byte above it, modulo 256); a
    palette image's rows all as they are."""
    raw = image.tobytes()
    stride = len(raw) // image.height
    if image.mode == "P":
        return b"".join(b"\x00" + raw[y * stride : (y + 1) * stride] for y in range(image.height))
    rows = [b"\x00" + raw[:stride]]
    for y in range(1, image.height):
        row, above = raw[y * stride : (y + 1) * stride], raw[(y - 1) * stride : y * stride]
        rows.append(b"\x02" + bytes((a - b) % 256 for a, b in zip(row, above, strict=True)))
    return b"".join(rows)


def test_up_filter_matches_definition() -> None:
    image = _noise("RGB", (9, 5), 3)
    assert enc._filtered_rows(image, 9 * 3 + 1) == _rows_by_definition(image)


def _pngcheck(tmp_path: Path, body: bytes, name: str) -> subprocess.CompletedProcess[str]:
    assert PNGCHECK is not None, "pngcheck is a test dependency (scripts/test installs it)"
    path = tmp_path / name
    path.write_bytes(body)
    return subprocess.run([PNGCHECK, "-v", str(path)], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_pngcheck_accepts_output(tmp_path: Path, mode: str) -> None:
    result = _pngcheck(tmp_path, enc.encode(_photo(mode, 2), "png"), f"{mode}.png")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No errors detected" in result.stdout


def test_pngcheck_rejects_a_corrupted_file(tmp_path: Path) -> None:
    # The checker is real: flip one byte inside the IDAT data and it must complain.
    body = bytearray(enc.encode(_photo("RGB", 2), "png"))
    body[60] ^= 0xFF
    assert _pngcheck(tmp_path, bytes(body), "bad.png").returncode != 0


def test_rendered_cards_encode_within_budget_and_pass_pngcheck(
    tmp_path: Path, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    capture = _photo("RGB", 5).resize((1280, 800))
    for layout in layouts:
        for cap in (None, capture):
            image = render_card(Card(title="Fast cards", subtitle="Lossless"), layout, fonts, cap)
            body = enc.encode(image, "png")
            lossless = enc.encode_png(image)
            if len(lossless) <= enc.CARD_BYTE_BUDGET:
                assert body == lossless
                assert decode(body).tobytes() == image.convert("RGB").tobytes()
            else:
                assert decode(body).mode == "P"
            assert len(body) <= enc.CARD_BYTE_BUDGET
            result = _pngcheck(tmp_path, body, f"{layout.name}.png")
            assert result.returncode == 0, result.stdout


def test_over_budget_png_falls_back_to_the_smaller_encoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = _photo("RGB", 9)
    fast = enc.fast_png(image)
    heavy = io.BytesIO()
    image.save(heavy, "PNG", compress_level=6)
    monkeypatch.setattr(enc, "PNG_SIZE_BUDGET", 1)
    body = enc.encode_png(image)
    assert decode(body).tobytes() == image.tobytes()
    assert len(body) == min(len(fast), len(heavy.getvalue()))


def _encode_without_isal(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A fresh copy of ogshot.encode, imported while ``isal`` cannot be imported."""
    monkeypatch.setitem(sys.modules, "isal", None)
    monkeypatch.setitem(sys.modules, "isal.isal_zlib", None)
    spec = importlib.util.spec_from_file_location("ogshot_encode_without_isal", enc.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_fallback_without_isal_is_valid_and_lossless(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    module = _encode_without_isal(monkeypatch)
    assert module._fast_deflate is None
    source = _photo(mode, 4)
    body = module.encode(source, "png")
    assert decode(body).tobytes() == source.tobytes()
    assert _pngcheck(tmp_path, body, "fallback.png").returncode == 0


def test_other_modes_are_converted_before_writing() -> None:
    palette = _noise("RGB", (40, 30), 1).convert("P")
    decoded = decode(enc.encode(palette, "png"))
    assert decoded.mode == "RGB"
    assert decoded.tobytes() == palette.convert("RGB").tobytes()


@pytest.mark.parametrize(("fmt", "pil_format"), [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_lossy_formats_decode_close_to_the_source(fmt: str, pil_format: str) -> None:
    source = _photo("RGB", 6)
    decoded = decode(enc.encode(source, fmt))
    assert decoded.format == pil_format
    assert decoded.size == source.size
    pairs = zip(decoded.convert("RGB").tobytes(), source.tobytes(), strict=True)
    diff = [abs(a - b) for a, b in pairs]
    assert sum(diff) / len(diff) < 12


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown image format"):
        enc.encode(Image.new("RGB", (2, 2)), "gif")


def _record_deflate_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the threads ISA-L's deflate runs on, in order, from now on."""
    real = enc._fast_deflate
    assert real is not None
    seen: list[str] = []

    class Recording:
        DEFLATED, Z_FINISH, Z_SYNC_FLUSH = real.DEFLATED, real.Z_FINISH, real.Z_SYNC_FLUSH

        @staticmethod
        def compressobj(*args: int) -> Any:
            seen.append(threading.current_thread().name)
            return real.compressobj(*args)

        @staticmethod
        def adler32(data: bytes, value: int = 1) -> int:
            return int(real.adler32(data, value))

    monkeypatch.setattr(enc, "_fast_deflate", Recording)
    return seen


def test_deflate_stays_off_the_callers_thread_where_vector_state_leaks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ISA-L leaves AVX-512 state behind that slows later SSE code on the same thread: on such
    # CPUs the render threads must never run it themselves, whatever the size of the image.
    monkeypatch.setattr(enc, "_DEFLATE_ON_CALLER", False)
    monkeypatch.setattr(enc, "_PIECE_BYTES", 8 * 1024)
    seen = _record_deflate_threads(monkeypatch)
    for image in (Image.effect_noise((64, 32), 40).convert("RGB"), _photo("RGB", 3)):
        seen.clear()
        body = enc.encode(image, "png")
        assert decode(body).tobytes() == image.tobytes()
        assert seen and all(name.startswith("ogshot-deflate") for name in seen)
        assert threading.current_thread().name not in seen


def test_same_bytes_whichever_thread_deflates_each_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    # Where deflate may run on the caller, the threads deflate every piece but the last while
    # they take them promptly, and the caller the rest; elsewhere the threads deflate them all.
    # The bytes are the same every way.
    monkeypatch.setattr(enc, "_PIECE_BYTES", 32 * 1024)
    monkeypatch.setattr(enc, "_HANDOFF_WAIT", 30.0)  # no timing in the test: wait for the thread
    image = _photo("RGB", 4)
    assert enc.piece_count(image.height * (1 + image.width * 3)) == enc._MAX_PIECES
    seen = _record_deflate_threads(monkeypatch)
    me = threading.current_thread().name
    bodies, threads = {}, {}
    for where, on_caller, prompt in (
        ("threads", False, 30.0),
        ("shared", True, 30.0),  # every hand-over prompt: an idle core
        ("caller", True, 0.0),  # no hand-over prompt enough: a busy machine
    ):
        monkeypatch.setattr(enc, "_DEFLATE_ON_CALLER", on_caller)
        monkeypatch.setattr(enc, "_PROMPT_HANDOFF", prompt)
        seen.clear()
        bodies[where] = enc.fast_png(image)
        threads[where] = ["caller" if name == me else "thread" for name in seen]
    assert bodies["threads"] == bodies["shared"] == bodies["caller"]
    assert decode(bodies["caller"]).tobytes() == image.tobytes()
    assert threads["threads"] == ["thread"] * 4
    assert threads["shared"] == ["thread", "thread", "thread", "caller"]
    assert threads["caller"] == ["thread", "caller", "caller", "caller"]
    # One piece: nothing to overlap, the caller deflates it where it may.
    small = _photo("RGB", 5).resize((64, 32))
    seen.clear()
    assert decode(enc.fast_png(small)).tobytes() == small.tobytes()
    assert seen == [me]


def test_a_deflate_thread_takes_each_strip_before_the_next_is_filtered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Filtering holds the GIL, and a thread that cannot take it for a moment would start its
    # piece only once every strip is filtered: the pieces would not overlap the filtering.
    monkeypatch.setattr(enc, "_DEFLATE_ON_CALLER", False)
    monkeypatch.setattr(enc, "_PIECE_BYTES", 32 * 1024)
    monkeypatch.setattr(enc, "_HANDOFF_WAIT", 30.0)  # no timing in the test: wait for the thread
    events: list[str] = []
    real_strips, real = enc._filtered_strips, enc._fast_deflate
    assert real is not None

    def strips(image: Image.Image, line: int, pieces: int) -> Iterator[enc.Strip]:
        for strip in real_strips(image, line, pieces):
            events.append("filtered")
            yield strip

    class Recording:
        DEFLATED, Z_FINISH, Z_SYNC_FLUSH = real.DEFLATED, real.Z_FINISH, real.Z_SYNC_FLUSH
        adler32 = staticmethod(real.adler32)

        @staticmethod
        def compressobj(*args: int) -> Any:
            events.append("deflating")
            return real.compressobj(*args)

    monkeypatch.setattr(enc, "_filtered_strips", strips)
    monkeypatch.setattr(enc, "_fast_deflate", Recording)
    image = _photo("RGB", 6)
    assert decode(enc.fast_png(image)).tobytes() == image.tobytes()
    assert events == ["filtered", "deflating"] * enc._MAX_PIECES


@pytest.mark.parametrize(
    ("cpuinfo", "leaks"),
    [
        ("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 bmi2\n", False),
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n", True),
        ("processor\t: 0\nFeatures\t: fp asimd crc32\n", True),  # no x86 flags: assume it
        (None, True),  # unreadable: assume it
    ],
)
def test_deflate_leaves_the_caller_only_on_cpus_known_to_lack_avx512(
    tmp_path: Path, cpuinfo: str | None, leaks: bool
) -> None:
    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo)
    assert enc._vector_state_leaks(str(path)) is leaks


def _encode_in_child(queue: Any) -> None:
    image = Image.effect_noise((64, 32), 40).convert("RGB")
    queue.put(decode(enc.encode(image, "png")).tobytes() == image.tobytes())


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_process_still_encodes() -> None:
    # Servers that fork their workers after importing the app (gunicorn --preload) must not
    # inherit a deflate pool whose threads stayed behind.
    enc.encode(Image.new("RGB", (8, 8)), "png")  # the parent's pool has threads now
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_encode_in_child, args=(queue,))
    child.start()
    child.join(timeout=30)
    alive = child.is_alive()
    if alive:
        child.kill()
        child.join()
    assert not alive, "the forked child hung on its first PNG"
    assert queue.get(timeout=5) is True


def test_adler32_of_pieces_combines_to_the_whole() -> None:
    rng = random.Random(7)
    for _ in range(200):
        a = rng.randbytes(rng.randrange(0, 70_000))
        b = rng.randbytes(rng.randrange(0, 70_000))
        combined = enc.adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b))
        assert combined == zlib.adler32(a + b)


def test_large_rows_deflated_in_pieces_make_one_valid_png(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enc, "_DEFLATE_WORKERS", 3)
    monkeypatch.setattr(enc, "_PIECE_BYTES", 48 * 1024)
    image = _photo("RGB", 5)
    rows = 1 + image.width * 3
    assert rows * image.height // enc._PIECE_BYTES >= 3  # the image is cut into three pieces
    body = enc.encode(image, "png")
    assert decode(body).tobytes() == image.tobytes()
    result = _pngcheck(tmp_path, body, "pieces.png")
    assert result.returncode == 0, result.stdout + result.stderr


def _encode_with_threads(
    monkeypatch: pytest.MonkeyPatch, image: Image.Image, threads: int
) -> bytes:
    monkeypatch.setattr(enc, "_DEFLATE_WORKERS", threads)
    pool = enc._deflate_threads()
    monkeypatch.setattr(enc, "_DEFLATE_THREADS", pool)
    try:
        # Lossless: a palette card (what encode() makes of this one, over the byte budget) is
        # a third of the rows and deflates in one piece; the lossless rows are cut in several.
        return enc.encode_png(image)
    finally:
        pool.shutdown()


def test_same_card_same_bytes_on_one_and_four_deflate_threads(
    monkeypatch: pytest.MonkeyPatch, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    # Replicas on machines with different core counts must agree on every byte (and so on the
    # ETag): the piece layout follows the size of the rows, never the number of threads.
    capture = _photo("RGB", 5).resize((1280, 800))
    image = render_card(Card(title="Same bytes", subtitle="Everywhere"), layouts.get("default"),
                        fonts, capture)
    raw_rows = image.height * (1 + image.width * 3)
    assert raw_rows > 2 * enc._PIECE_BYTES  # big enough to be cut into pieces
    bodies = {n: _encode_with_threads(monkeypatch, image, n) for n in (1, 2, 4)}
    assert bodies[1] == bodies[2] == bodies[4]
    assert decode(bodies[1]).tobytes() == image.convert("RGB").tobytes()


def test_piece_count_follows_size_alone() -> None:
    assert enc.piece_count(0) == 1
    assert enc.piece_count(enc._PIECE_BYTES - 1) == 1
    assert enc.piece_count(2 * enc._PIECE_BYTES) == 2
    assert enc.piece_count(100 * enc._PIECE_BYTES) == enc._MAX_PIECES


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P"])
@pytest.mark.parametrize("size", [(1, 1), (7, 1), (1, 5), (321, 203)])
def test_filtered_strips_are_the_rows_by_definition(mode: str, size: tuple[int, int]) -> None:
    """The rows handed to deflate are made a strip at a time from views of the raw encoder's
    padded output, one row apart; byte for byte, and wherever the strips are cut, they must be
    the rows the PNG filters define, in every mode PNG is written in and for one-pixel-wide or
    one-row images."""
    image = _photo("RGBA" if mode == "LA" else mode if mode != "P" else "RGB", 7)
    image = image.resize(size)
    if mode == "LA":
        image = image.convert("LA")
    elif mode == "P":
        image = image.quantize(16)
    channels = 1 if mode == "P" else enc._COLOUR_TYPES[mode][1]
    line = size[0] * channels + 1
    expected = _rows_by_definition(image)
    for pieces in sorted({1, 2, 3, 4, size[1]} & set(range(1, size[1] + 1))):
        strips = list(enc._filtered_strips(image, line, pieces))
        assert len(strips) == pieces
        assert b"".join(bytes(part) for strip in strips for part in strip) == expected, pieces


def test_a_strip_starts_on_the_row_the_size_says() -> None:
    image = _noise("RGB", (5, 10), 4)
    line = 5 * 3 + 1
    strips = list(enc._filtered_strips(image, line, 4))
    lengths = [sum(len(part) for part in strip) for strip in strips]
    assert lengths == [line * rows for rows in (2, 3, 2, 3)]  # rows 0, 2, 5, 7 start strips


def test_an_image_with_fewer_rows_than_pieces_is_cut_by_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two rows whose bytes would make four pieces: a strip needs a row, so two pieces.
    monkeypatch.setattr(enc, "_PIECE_BYTES", 1024)
    image = _noise("RGB", (1000, 2), 9)
    assert enc.piece_count(2 * (1 + 1000 * 3)) == enc._MAX_PIECES
    assert decode(enc.fast_png(image)).tobytes() == image.tobytes()
