"""Image encoding: the last, and most expensive, step of making a card.

PNG is the default format and its cost is almost all deflate. Pillow's encoder pairs zlib with a
per-row adaptive filter; at its default level a 1200×630 card with a photograph in it takes well
over 100 ms. Here the PNG is written by hand instead: every row but the first gets the ``Up``
filter (three passes of Pillow's own C code per strip of rows, see :func:`_filtered_strips`),
and the rows go through ISA-L's deflate (``isal``), which is roughly ten times faster than zlib
for a similar size. Measured on real cards, ``Up`` gives
the best size for the time: ``None`` is a third larger on photographs, ``Sub`` and ``Average``
land within a few percent of ``Up``, and ``Paeth`` or a per-row choice cost more than the whole
deflate for 0-3 % less. A palette card's rows are stored unfiltered: its pixels are indices
into the palette, and their differences carry no meaning (``Up`` made one a quarter larger).
When ``isal`` cannot be imported, Pillow's encoder does the work.

A card whose fast PNG comes out over :data:`PNG_SIZE_BUDGET` (a capture full of photographic
grain) is encoded a second time with more effort, and the smaller result wins: the common case
stays fast and the rare heavy case stays as small as a lossless format allows.

A PNG card over :data:`CARD_BYTE_BUDGET` (300 KB: WhatsApp shows no thumbnail past about that,
and a capture card with a photograph in it is often 300-900 KB lossless) is written as a palette
PNG instead: 256 colours chosen by Pillow's octree quantiser on a 36th of the pixels, every
pixel then mapped to its nearest colour (deterministic), fewer colours if that is still over.
Measured by ``bench/bench_capture_size.py`` on 24 capture cards: lossless 329 KB median, 888 KB
at most, 13 over budget; as sent, all within budget (295 KB at most), SSIM of a palette card
against its lossless self 0.93 at worst (a page of pure noise), text edges intact. Octree
quantising of the whole card took longer and scored 0.90. ``format=jpeg`` (89 KB median, SSIM
0.975) is smaller still for whoever can take it.

Whether a card is over its budget is predicted first, from a sample of its rows
(:func:`predicted_fit`): one clearly over goes straight to the palette, so the lossless PNG that
would be thrown away is never written; one near the budget is written lossless and measured.

``ENCODER_VERSION`` goes into cache keys: a change of encoder settings changes bytes.

The bytes are a function of the image alone: how the rows are cut into deflate pieces follows
their size, never the number of CPUs or threads nor which thread deflates a piece, so every
replica makes the same bytes (and the same ETag) for the same card.
"""

from __future__ import annotations

import io
import itertools
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import ModuleType
from typing import Literal

from PIL import Image, ImageChops

try:  # ISA-L's deflate; optional at run time, so a platform without a wheel still works.
    from isal import isal_zlib as _isal

    _fast_deflate: ModuleType | None = _isal
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    _fast_deflate = None

#: 2: hand-written PNG around ISA-L's deflate; WebP at method 0.
#: 3: deflate pieces fixed by the data's size, not the CPU count.
#: 4: a palette PNG when a PNG card is over its byte budget.
#: 5: deflate pieces cut between rows (each a strip filtered and deflated in turn).
#: 6: the palette chosen on a sample, each pixel mapped to its nearest colour.
#: 7: that sample a 36th of the pixels, not a sixteenth.
#: 8: palette rows stored unfiltered.
#: 9: a palette no smaller than the last is not tried; the smallest palette PNG is kept.
ENCODER_VERSION = "9"

#: Quality for lossy formats: high enough that title text keeps crisp edges.
JPEG_QUALITY = 88
WEBP_QUALITY = 86
#: libwebp's effort (0-6). Measured on cards: 0 takes a quarter of the default 4's time for
#: 10-20 % more bytes, still a tenth of the PNG; 2 saves a further 10 % at one and a half times 0.
WEBP_METHOD = 0

#: ISA-L level for the fast path: 2 is as fast as 1 here and a little smaller.
ISAL_LEVEL = 2
#: Over this many bytes, a PNG is worth a slower second attempt at a smaller size.
PNG_SIZE_BUDGET = 600 * 1024
#: A PNG card larger than this is sent as a palette PNG (see the module's docstring).
CARD_BYTE_BUDGET = 300 * 1024
#: Palette sizes tried in turn until the card fits its budget.
PALETTE_STEPS = (256, 128, 64)
#: The palette is chosen on every this-many-th pixel of every this-many-th row.
PALETTE_SAMPLE = 6
#: Rows sampled to predict a lossless PNG's size: every this-many-th row, first coarsely (a
#: card predicted under ``COARSE_UNDER`` of its budget is written lossless at once), then
#: finely (a card predicted over ``CLEARLY_OVER`` times its budget goes to the palette).
COARSE_EVERY = 30
COARSE_UNDER = 0.6
FINE_EVERY = 6
CLEARLY_OVER = 1.25
#: Pillow's level when ``isal`` is missing: level 1 is three times faster than the default 6.
PILLOW_PNG_LEVEL = 1

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour types by Pillow mode; other modes are converted to RGB or RGBA first.
_COLOUR_TYPES: dict[str, tuple[int, int]] = {
    "L": (0, 1),
    "RGB": (2, 3),
    "LA": (4, 2),
    "RGBA": (6, 4),
}
_FILTER_UP = b"\x02"
_FILTER_NONE = b"\x00"


def encode(image: Image.Image, fmt: str, *, captured: bool = True) -> bytes:
    """Encode a card as ``png`` (within :data:`CARD_BYTE_BUDGET`), ``jpeg`` or ``webp``.

    ``captured``: whether a page capture is in the card. A card without one (a title card,
    well under the budget) skips the over-budget prediction, which pays for photographs only;
    it is still measured, and sent as a palette PNG should it ever be over.
    """
    if fmt == "png":
        return encode_png(image, budget=CARD_BYTE_BUDGET, predict=captured)
    out = io.BytesIO()
    if fmt == "jpeg":
        image.convert("RGB").save(
            out, "JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False
        )
    elif fmt == "webp":
        image.save(out, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return out.getvalue()


def encode_png(image: Image.Image, budget: int | None = None, *, predict: bool = True) -> bytes:
    """A lossless PNG of ``image``: the fast writer when ``isal`` is there, else Pillow's.

    With a ``budget``, an RGB image whose lossless PNG is larger comes back as a palette PNG of
    as many colours as fit (the smallest tried, when none does). With ``predict``, one whose
    lossless PNG is predicted well over the budget (:func:`predicted_fit`) goes to the palette
    without writing the lossless PNG first; any other is written lossless and measured.
    """
    image = _png_ready(image)
    chosen: list[Image.Image] = []
    if predict and budget is not None and image.mode == "RGB":
        # The first palette is chosen while the finer prediction deflates on the deflate threads
        # (for a card it calls near, the palette is kept in case the measured PNG is over).
        def choose() -> None:
            chosen.append(_palette_of(image, PALETTE_STEPS[0]))

        if predicted_fit(image, budget, meanwhile=choose) == "over":
            return palette_png(image, budget, *chosen)
    if _fast_deflate is None:
        body = _pillow_png(image, PILLOW_PNG_LEVEL)
    else:
        body = fast_png(image)
    if budget is not None and len(body) > budget and image.mode == "RGB":
        return palette_png(image, budget, *chosen)
    if _fast_deflate is not None and len(body) > PNG_SIZE_BUDGET:
        # Rare: a capture full of grain. zlib's best effort with Pillow's adaptive filters
        # usually shaves another 5-10 % off; keep whichever is smaller.
        heavy = _pillow_png(image, 6)
        if len(heavy) < len(body):
            return heavy
    return body


def palette_png(image: Image.Image, budget: int, *chosen: Image.Image) -> bytes:
    """``image`` quantised to each of :data:`PALETTE_STEPS` colours until its PNG fits (the
    smallest PNG made, when none does).

    Each palette is chosen on a sample of the image (:func:`_palette_of`), then every pixel
    takes the nearest colour of it. ``chosen``: the first palettes, when already chosen.
    Octree quantising of the whole image takes longer and, mapping each pixel to its tree
    bucket's colour rather than the nearest one, scores a lower SSIM.
    """
    best = b""
    used = 257
    for step, colours in enumerate(PALETTE_STEPS):
        palette = chosen[step] if step < len(chosen) else _palette_of(image, colours)
        # The octree may find fewer colours than asked (a grey page: about 17 whatever the
        # step): a palette no smaller than the last would only write the same card again.
        found = len(palette.getcolors(256) or ())
        if found >= used:
            continue
        used = found
        quantised = image.quantize(palette=palette, dither=Image.Dither.NONE)
        body = fast_png(quantised) if _fast_deflate else _pillow_png(quantised, 6)
        if not best or len(body) < len(best):
            best = body
        if len(body) <= budget:
            break
    return best


def _palette_of(image: Image.Image, colours: int) -> Image.Image:
    """A palette of ``colours`` for ``image`` (as a ``P`` image): Pillow's octree on every
    :data:`PALETTE_SAMPLE`-th pixel of every :data:`PALETTE_SAMPLE`-th row."""
    width, height = image.size
    sample = image.resize(
        (max(1, width // PALETTE_SAMPLE), max(1, height // PALETTE_SAMPLE)),
        Image.Resampling.NEAREST,
    )
    return sample.quantize(colours, method=Image.Quantize.FASTOCTREE)


def predicted_fit(
    image: Image.Image, budget: int, meanwhile: Callable[[], None] | None = None
) -> Literal["under", "near", "over"]:
    """Where ``image``'s lossless PNG is predicted against ``budget``: well under, near, or
    well over it (RGB; always ``near`` without ``isal``).

    Two looks, both cheap: a coarse one (every :data:`COARSE_EVERY`-th row) says ``under`` below
    :data:`COARSE_UNDER` of the budget, which lets every title card through at once; a finer
    one (every :data:`FINE_EVERY`-th row) says ``over`` only above :data:`CLEARLY_OVER` times the
    budget. Only ``over`` skips the lossless PNG: anything else is written lossless and
    measured, so a wrong ``under`` costs time and never bytes. A wrong ``over`` would send a
    card that fits as a palette PNG; the margin keeps that from happening
    (``bench/bench_capture_size.py`` counts it on its cards). ``meanwhile`` is run while the
    finer look deflates, if it is taken.
    """
    if _fast_deflate is None:
        return "near"
    if predicted_png_size(image, COARSE_EVERY) < budget * COARSE_UNDER:
        return "under"
    fine = _predicting(image, FINE_EVERY)
    if meanwhile is not None:
        meanwhile()
    return "over" if fine() > budget * CLEARLY_OVER else "near"


def predicted_png_size(image: Image.Image, every: int) -> int:
    """About what :func:`fast_png` makes of ``image`` (RGB), from every ``every``-th row.

    Each sampled row is ``Up``-filtered against the row really above it, the sample is
    deflated as the writer deflates, and the size scaled to the image's height. Single rows,
    spread over the whole image, follow a card's mix of flat areas, text and photograph far
    more closely than a few bands of rows do (measured on the capture cards of
    ``bench/bench_capture_size.py``). A pure function of the pixels: every replica predicts
    the same. Needs ``isal``.
    """
    return _predicting(image, every)()


def _predicting(image: Image.Image, every: int) -> Callable[[], int]:
    """:func:`predicted_png_size`, started: the sample is taken in two halves, and the returned
    call gives the size.

    Each half is every ``2 * every``-th row, the second half one row further down, so the two
    sit on rows of different parity (and of different remainders by 3 and 4): a page whose
    rows repeat with a short period (a picture doubled pixel for pixel, an ordered dither) can
    put every row of one half on its busiest rows, but not of both. Each half predicts the
    size alone and the smaller prediction is taken: a low guess costs time (the card is written
    lossless and measured), a high one would cost bytes. The halves are deflated on the deflate
    threads where deflate must stay off the caller (see :data:`_DEFLATE_WORKERS`).
    """
    width, height = image.size
    stride = 2 * every
    rows = (height - 2) // stride
    if rows < 1:
        size = len(fast_png(image))
        return lambda: size
    span = rows * stride
    nearest = Image.Resampling.NEAREST
    halves = []
    for top in (1, 2):  # rows stride*k + top + every, each against the row above it
        sampled = image.resize((width, rows), nearest, box=(0, top, width, top + span))
        above = image.resize((width, rows), nearest, box=(0, top - 1, width, top - 1 + span))
        halves.append(ImageChops.subtract_modulo(sampled, above).tobytes())

    def smaller(sizes: Iterable[int]) -> int:
        return min(sizes) * height // rows

    if _DEFLATE_ON_CALLER:
        # No hand-over (a busy core can take milliseconds to pick a piece up): the caller
        # deflates the halves itself when it is asked for the size.
        return lambda: smaller(map(_raw_deflated_size, halves))
    futures = [_DEFLATE_THREADS.submit(_raw_deflated_size, half) for half in halves]
    return lambda: smaller(future.result() for future in futures)


def _raw_deflated_size(data: bytes | memoryview) -> int:
    assert _fast_deflate is not None
    deflater = _fast_deflate.compressobj(ISAL_LEVEL, _fast_deflate.DEFLATED, -15)
    return len(deflater.compress(data)) + len(deflater.flush(_fast_deflate.Z_FINISH))


def fast_png(image: Image.Image) -> bytes:
    """The fast writer alone, with ISA-L's deflate (``isal`` must be importable)."""
    return _png(image, _isal_deflate)


#: Where ISA-L's deflate runs. Large images are deflated in pieces (pigz's way: each piece its
#: own deflate stream, all but the last ending on a byte boundary, the Adler-32 combined). A
#: piece is a strip of whole rows, filtered just before it is deflated. Pieces but the last go
#: to the deflate threads as soon as they are filtered, to deflate on another core while the
#: caller filters the next strip, and the caller deflates the last one itself. That pays only
#: when a core is idle: once a thread is slow to take its piece, the caller deflates
#: the rest itself. Measured on a two-core virtual machine, title card: idle, 1.6 ms so and
#: 1.9 ms all on the caller; with the other core partly busy, 2.1 and 1.9 ms; with it fully
#: busy, handing every piece over regardless took 2.3-5 ms. The strips are cut by size
#: alone (one per :data:`_PIECE_BYTES` of rows, at most :data:`_MAX_PIECES`, at row
#: ``height * i // pieces``); the threads only decide how fast it goes: a machine with one
#: core makes the same bytes as one with four.
#:
#: On CPUs with AVX-512, ISA-L returns with the vector registers' upper halves still in use (no
#: ``vzeroupper``), and every SSE loop run afterwards on the same thread pays for it until
#: something clears them: Pillow's blend through a mask, measured here, ran three times slower
#: for the rest of the thread's life. The state belongs to the thread, so there every piece,
#: the last included, goes to the threads, keeping the render threads fast; only a CPU known to
#: lack AVX-512 (Linux's ``/proc/cpuinfo`` says so) deflates on the caller.
_DEFLATE_WORKERS = min(4, os.cpu_count() or 1)
#: Smallest piece worth a thread of its own.
_PIECE_BYTES = 512 * 1024
#: Most pieces one stream is cut into (a 1200×630 RGB card's rows make four).
_MAX_PIECES = 4
#: Seconds the filtering waits for a deflate thread to take a strip before going on anyway.
_HANDOFF_WAIT = 0.0005
#: A thread that took a strip within this many seconds ran on an idle core (waking an idle
#: virtual CPU took 0.25-0.3 ms on the machine measured; a busy one, often milliseconds).
_PROMPT_HANDOFF = 0.0004


def _vector_state_leaks(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether ISA-L may leave AVX-512 state behind: True unless the CPU is known to lack it."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as info:
            for row in info:
                if row.startswith("flags"):
                    return "avx512f" in row.split()
    except OSError:
        pass
    return True


#: Whether deflate may run on the calling thread (see above).
_DEFLATE_ON_CALLER = not _vector_state_leaks()


def _deflate_threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_DEFLATE_WORKERS, thread_name_prefix="ogshot-deflate")


_DEFLATE_THREADS = _deflate_threads()


def _renew_after_fork() -> None:
    # A forked child inherits the pool without its threads: work sent to it would wait forever.
    global _DEFLATE_THREADS
    _DEFLATE_THREADS = _deflate_threads()


os.register_at_fork(after_in_child=_renew_after_fork)

#: Consecutive parts of IDAT's filtered rows (a few bytes, then a view of a filtered strip).
Strip = tuple["bytes | memoryview", ...]
#: A deflated strip: raw deflate, the strip's Adler-32 and its length.
Piece = tuple[bytes, int, int]


def _isal_deflate(image: Image.Image, line: int) -> list[bytes]:
    """A zlib stream of ``image``'s filtered rows (``line`` bytes each), in parts, deflated by
    ISA-L a strip at a time (see :data:`_DEFLATE_WORKERS` for which thread does it)."""
    assert _fast_deflate is not None
    pieces = min(piece_count(line * image.height), image.height)
    pending: list[Future[Piece] | Piece] = []
    share = True
    for i, strip in enumerate(_filtered_strips(image, line, pieces)):
        last = i == pieces - 1
        if _DEFLATE_ON_CALLER and (last or not share):
            pending.append(_deflate_piece(strip, last))
        elif last:
            pending.append(_DEFLATE_THREADS.submit(_deflate_piece, strip, True))
        else:
            # Filtering holds the GIL, which a deflate thread needs for a moment before ISA-L
            # lets it go: wait for that moment, or the piece would start only once every
            # strip is filtered (Python makes a thread hand the GIL over only after 5 ms).
            started = threading.Lock()
            started.acquire()
            asked = time.perf_counter()
            pending.append(_DEFLATE_THREADS.submit(_deflate_piece, strip, False, started))
            taken = started.acquire(timeout=_HANDOFF_WAIT)
            # A thread slow to take it means no core is idle: the caller keeps the rest.
            share = taken and time.perf_counter() - asked < _PROMPT_HANDOFF
    parts = [piece.result() if isinstance(piece, Future) else piece for piece in pending]
    adler = parts[0][1]
    for _, piece_adler, length in parts[1:]:
        adler = adler32_combine(adler, piece_adler, length)
    # 0x78 0x01: deflate with a 32 KB window, no preset dictionary (and the header's check bits).
    return [b"\x78\x01", *(body for body, _, _ in parts), struct.pack(">I", adler)]


def piece_count(length: int) -> int:
    """How many deflate pieces ``length`` bytes of rows are cut into: by size, never by CPUs."""
    return min(_MAX_PIECES, max(1, length // _PIECE_BYTES))


def _deflate_piece(strip: Strip, last: bool, started: threading.Lock | None = None) -> Piece:
    """Raw deflate of one strip, ending the stream if ``last``, else on a byte boundary; with
    the strip's Adler-32 and length. Releases ``started`` first, when given."""
    assert _fast_deflate is not None
    if started is not None:
        started.release()
    deflater = _fast_deflate.compressobj(ISAL_LEVEL, _fast_deflate.DEFLATED, -15)
    flush = _fast_deflate.Z_FINISH if last else _fast_deflate.Z_SYNC_FLUSH
    bodies = [deflater.compress(part) for part in strip]
    bodies.append(deflater.flush(flush))
    adler = 1
    for part in strip:
        adler = _fast_deflate.adler32(part, adler)
    return b"".join(bodies), adler, sum(len(part) for part in strip)


_ADLER_BASE = 65521


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """The Adler-32 of two byte strings end to end, from each one's checksum (as zlib does)."""
    rem = second_length % _ADLER_BASE
    low = first & 0xFFFF
    high = (rem * low) % _ADLER_BASE
    low = (low + (second & 0xFFFF) + _ADLER_BASE - 1) % _ADLER_BASE
    high = (high + (first >> 16) + (second >> 16) + _ADLER_BASE - rem) % _ADLER_BASE
    return low | (high << 16)


def write_png(image: Image.Image, deflate: Callable[[bytes], bytes]) -> bytes:
    """Write ``image`` (L, LA, P, RGB or RGBA) as a PNG with one IDAT, every row but the first
    ``Up``-filtered (a palette image's rows unfiltered).

    ``deflate`` turns the filtered rows into a zlib stream (header, data, Adler-32).
    """
    return _png(image, lambda image, line: [deflate(_filtered_rows(image, line))])


def _png(image: Image.Image, idat: Callable[[Image.Image, int], list[bytes]]) -> bytes:
    """The PNG of ``image``, ``idat`` making the zlib stream of its rows of ``line`` bytes (in
    parts, which the file joins once)."""
    colour_type, channels = (3, 1) if image.mode == "P" else _COLOUR_TYPES[image.mode]
    width, height = image.size
    image.load()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    palette = b""
    if image.mode == "P":
        high = image.getextrema()[1]
        assert isinstance(high, int)
        used = high + 1
        palette = _chunk(b"PLTE", bytes(image.getpalette("RGB") or [])[: 3 * used])
    return b"".join(
        (
            _SIGNATURE,
            _chunk(b"IHDR", ihdr),
            palette,
            *_chunk_parts(b"IDAT", idat(image, width * channels + 1)),
            _chunk(b"IEND", b""),
        )
    )


def _filtered_rows(image: Image.Image, line: int) -> bytes:
    """IDAT's rows of ``image``, each ``line`` bytes: a filter type byte, then the row."""
    return b"".join(part for strip in _filtered_strips(image, line, 1) for part in strip)


def _filtered_strips(image: Image.Image, line: int, pieces: int) -> Iterator[Strip]:
    """IDAT's rows of ``image`` in ``pieces`` strips of whole rows (strip ``i`` starts at row
    ``height * i // pieces``), each filtered when asked for.

    The rows are ``Up``-filtered (each byte minus the one above it, modulo 256) but the first,
    which has no row above it and is stored as it is (filter type ``None``); a palette image's
    rows are all stored as they are, their padding zeros standing for ``None``. Three passes of
    Pillow's C code make a strip, none of them per row: the raw encoder packs the pixels (with
    the row above the strip) into rows of ``line`` bytes, the last one padding; two views of
    those bytes one row apart, as greyscale images ``line`` pixels wide, are subtracted; and the
    difference, its padding column set to ``Up``, is read out. One byte along, each row's
    padding stands where the next row's filter type goes: the strip is a filter byte, then the
    difference without its last byte, and no row is copied on its own.
    """
    height = image.height
    bounds = [height * i // pieces for i in range(pieces + 1)]
    for top, bottom in itertools.pairwise(bounds):
        if image.mode == "P":
            # Palette indices are names, not amounts: a difference of two means nothing, and
            # ``Up`` makes the rows larger (a capture card's palette PNG: 122 KB against 98 KB
            # unfiltered) as well as slower. Each row's padding, a zero, is the next one's
            # filter type, ``None``.
            yield (_FILTER_NONE, memoryview(_packed(image, line, top, bottom))[:-1])
        elif top == 0:
            packed = _packed(image, line, 0, bottom)
            head = b"\x00" + packed[: line - 1]
            if bottom == 1:
                yield (head,)
                continue
            yield (head + _FILTER_UP, _up_difference(packed, line, bottom - 1))
        else:
            packed = _packed(image, line, top - 1, bottom)
            yield (_FILTER_UP, _up_difference(packed, line, bottom - top))


def _packed(image: Image.Image, line: int, top: int, bottom: int) -> bytes:
    """Rows ``top`` to ``bottom`` of ``image`` as the raw encoder packs them, ``line`` bytes a
    row (the rows as PNG stores them, then one byte of padding)."""
    encoder = Image._getencoder(image.mode, "raw", (image.mode, line))
    try:
        encoder.setimage(image.im, (0, top, image.width, bottom))
        chunks = []
        while True:  # the buffer holds every row: one round
            _, status, data = encoder.encode(line * (bottom - top))
            chunks.append(data)
            if status:
                break
        if status < 0:
            raise RuntimeError(f"raw encoder error {status}")
    finally:
        encoder.cleanup()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _up_difference(packed: bytes, line: int, rows: int) -> memoryview:
    """The ``rows`` last rows of ``packed`` minus the row above each, padding bytes set to the
    ``Up`` filter type; without the very last byte (see :func:`_filtered_strips`)."""
    view = memoryview(packed)
    # Pillow maps any buffer without copying it (its annotation names bytes alone).
    below = Image.frombuffer("L", (line, rows), view[line:], "raw", "L", 0, 1)  # type: ignore[arg-type]
    above = Image.frombuffer("L", (line, rows), view, "raw", "L", 0, 1)  # type: ignore[arg-type]
    difference = ImageChops.subtract_modulo(below, above)
    difference.paste(_FILTER_UP[0], (line - 1, 0, line, rows))
    return memoryview(_packed(difference, line, 0, rows))[:-1]


def _chunk(tag: bytes, data: bytes) -> bytes:
    return b"".join(_chunk_parts(tag, [data]))


def _chunk_parts(tag: bytes, data: list[bytes]) -> list[bytes]:
    """A PNG chunk whose data is ``data`` end to end, in parts (none of them copied)."""
    crc = zlib.crc32(tag)
    for part in data:
        crc = zlib.crc32(part, crc)
    length = sum(len(part) for part in data)
    return [struct.pack(">I", length) + tag, *data, struct.pack(">I", crc)]


def _png_ready(image: Image.Image) -> Image.Image:
    """The image in a mode PNG stores directly (L, LA, RGB, RGBA)."""
    if image.mode in _COLOUR_TYPES:
        return image
    has_alpha = image.mode in ("PA", "La") or "transparency" in image.info
    if image.mode == "RGBa":
        has_alpha = True
    return image.convert("RGBA" if has_alpha else "RGB")


def _pillow_png(image: Image.Image, level: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=level)
    return out.getvalue()
