"""Shaped glyphs drawn from masks rasterised once: what a text run costs after its first card.

A run of text is shaped by the font set's persistent HarfBuzz font (the same shaping that
measured it while fitting), and each glyph it yields is placed from a coverage mask: the
glyph's outline rasterised by HarfBuzz's own rasteriser at the run's size, at a quarter-pixel
phase of where it lands. Masks are kept in a bounded least-recently-used table, so a card
pays for the outlines of the glyphs it is the first to use, and otherwise only for placing
them: one blend of the text's colour through each glyph's mask, over that glyph's box alone
(:func:`lay`), in C.

Pillow's text drawing instead shapes the run again (building a HarfBuzz font afresh for every
call) and rasterises every glyph of it, twice, on every card.

Positions are quantised to :data:`PHASES` steps of a pixel on each axis, so a mask is the
same whichever card first asked for it: the pixels of a card do not depend on what the table
holds, on which thread drew it, or on the order cards come in.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, cast

import uharfbuzz as hb
from PIL import Image
from PIL import _imaging as core_images

#: Steps per pixel at which a glyph may be placed, across and down: a glyph lands within an
#: eighth of a pixel of where HarfBuzz put it.
PHASES = 4
#: What the masks of one font set may take in memory, in bytes: their pixels and what keeps
#: each of them (see :func:`_cost`).
BUDGET = 16 * 2**20
#: Memory a kept mask takes beyond its pixels, measured (resident size grown per mask): Pillow's
#: image struct and its Python object, the key and value tuples and the table's node, and a
#: row pointer per row. So the table stays within its budget even when filled with the masks
#: of dots and commas, whose pixels are the least of it.
_OVERHEAD = 700
_ROW_OVERHEAD = 8
#: What an entry without a mask takes (a space, a glyph without ink): its key and node.
_ENTRY = 128

#: The uharfbuzz this module is tested with (and pyproject's floor): its rasteriser's
#: ``draw_glyph_or_fail``, ``render()`` giving a ``RasterImage`` or None, rows bottom to top.
TESTED_UHARFBUZZ = (0, 57, 0)


def usable(module: Any) -> bool:
    """Whether ``module`` (uharfbuzz) is at least the tested version and has every part of
    HarfBuzz's rasteriser used here; else Pillow draws the text."""
    numbers = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", str(getattr(module, "__version__", "")))
    if numbers is None:
        return False
    version = tuple(int(part or 0) for part in numbers.groups())
    raster = getattr(module, "RasterDraw", None)
    image = getattr(module, "RasterImage", None)
    return (
        version >= TESTED_UHARFBUZZ
        and raster is not None
        and image is not None
        and all(hasattr(raster, name) for name in ("transform", "draw_glyph_or_fail", "render"))
        and all(hasattr(image, name) for name in ("extents", "buffer"))
    )


#: Whether this uharfbuzz's rasteriser draws the glyphs (else Pillow does).
AVAILABLE = usable(hb)

#: One glyph as placed: its mask (Pillow's core image) and the box it covers in the target.
Placed = tuple[Any, tuple[int, int, int, int]]
#: A kept glyph: its mask (Pillow's core image), the mask's size, and where its top-left
#: corner lies from the pixel the glyph's origin falls in; ``None`` for a glyph with no ink
#: (a space); :data:`_NO_OUTLINE` for one HarfBuzz cannot draw (a bitmap glyph).
_Mask = tuple[Any, int, int, int, int] | None
_NO_OUTLINE: _Mask = (None, 0, 0, 0, 0)
_Key = tuple[object, int, int, int, int]
#: Not in the table (``None`` there means a glyph without ink).
_ABSENT = object()


class GlyphMasks:
    """Rasterised glyph masks by font, size, glyph and phase; bounded, shared by threads.

    ``budget`` bounds the bytes of pixels kept; the masks least recently used go first.
    """

    def __init__(self, budget: int = BUDGET) -> None:
        self.budget = budget
        self._kept: OrderedDict[_Key, _Mask] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        # A rasteriser holds the outline being drawn: one per thread.
        self._local = threading.local()
        self.rasterised = 0

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def kept_bytes(self) -> int:
        return self._bytes

    def place(
        self,
        font: hb.Font,
        font_key: object,
        upem: int,
        size: int,
        infos: Sequence[hb.GlyphInfo],
        positions: Sequence[hb.GlyphPosition],
        x: float,
        baseline: int,
    ) -> list[Placed] | None:
        """The masks of a shaped run whose pen starts at ``x`` on ``baseline`` (pixels of the
        target image), with where each goes; None when a glyph has no outline to draw.

        ``font_key`` names the font (file and face); ``font`` is HarfBuzz's font for it at its
        units per em, ``upem``; ``size`` is the size in pixels per em.
        """
        if not AVAILABLE:
            return None
        scale = size / upem
        kept = self._kept
        entries: list[tuple[_Key, _Mask | object, int, int]] = []
        missing = False
        pen = x
        with self._lock:
            for info, pos in zip(infos, positions, strict=True):
                # Where the glyph's origin lands, as a whole pixel and a phase within it.
                ix, qx = _snap(pen + pos.x_offset * scale)
                iy, qy = _snap(pos.y_offset * scale) if pos.y_offset else (0, 0)  # marks; upward
                key = (font_key, size, info.codepoint, qx, qy)
                mask = kept.get(key, _ABSENT)
                if mask is _ABSENT:
                    missing = True
                else:
                    kept.move_to_end(key)
                entries.append((key, mask, ix, baseline - iy))
                pen += pos.x_advance * scale
        if missing:
            wanted = dict.fromkeys(key for key, mask, _, _ in entries if mask is _ABSENT)
            made = {key: self._rasterise(font, scale, key) for key in wanted}
            self._keep(made)
            entries = [(k, made[k] if m is _ABSENT else m, x0, y0) for k, m, x0, y0 in entries]
        out: list[Placed] = []
        for _, found, left, top in entries:
            if found is None:
                continue
            if found is _NO_OUTLINE:
                return None
            core, w, h, dx, dy = cast(tuple[Any, int, int, int, int], found)
            out.append((core, (left + dx, top + dy, left + dx + w, top + dy + h)))
        return out

    def _rasterise(self, font: hb.Font, scale: float, key: _Key) -> _Mask:
        raster: hb.RasterDraw | None = getattr(self._local, "raster", None)
        if raster is None:
            raster = self._local.raster = hb.RasterDraw()
        _, _, glyph, qx, qy = key
        done = False
        try:
            raster.transform = (scale, 0.0, 0.0, scale, qx / PHASES, qy / PHASES)
            drawn = raster.draw_glyph_or_fail(font, glyph)
            image = raster.render()  # and forgets the outline, for the next glyph
            if image is None and drawn:
                raise MemoryError("HarfBuzz could not rasterise a glyph")
            done = True
        finally:
            if not done:
                # It may still hold part of this outline: the thread's next glyph gets a new one.
                self._local.raster = None
        self.rasterised += 1
        if not drawn:
            extents = font.get_glyph_extents(glyph)
            if extents is None or extents.width == 0 or extents.height == 0:
                return None
            return _NO_OUTLINE
        assert image is not None
        e = image.extents
        if e.width == 0 or e.height == 0:
            return None
        # HarfBuzz's rows run bottom to top, in a buffer ``stride`` wide; y grows upward from
        # the baseline. Row r (from y = r to r + 1) is the image row just above baseline - r.
        mask = Image.frombuffer(
            "L", (e.width, e.height), image.buffer, "raw", "L", e.stride, -1
        ).copy()
        return (mask.im, e.width, e.height, e.x_origin, -(e.y_origin + e.height))

    def _keep(self, made: dict[_Key, _Mask]) -> None:
        with self._lock:
            for key, mask in made.items():
                if key in self._kept:
                    continue  # another thread made it meanwhile: the same pixels
                self._kept[key] = mask
                self._bytes += _cost(mask)
            while self._bytes > self.budget and self._kept:
                _, old = self._kept.popitem(last=False)
                self._bytes -= _cost(old)


def _snap(at: float) -> tuple[int, int]:
    """A coordinate as a whole pixel and the nearest of :data:`PHASES` phases within it."""
    whole = math.floor(at)
    phase = round((at - whole) * PHASES)
    return (whole + 1, 0) if phase == PHASES else (whole, phase)


def _cost(mask: _Mask) -> int:
    """The bytes a kept entry takes, counted against the budget."""
    if mask is None or mask[0] is None:
        return _ENTRY
    _, width, height, _, _ = mask
    return width * height + _ROW_OVERHEAD * height + _OVERHEAD


def lay(
    canvas: Image.Image,
    colour: tuple[int, ...],
    placed: Sequence[Placed],
    at: tuple[int, int],
    size: tuple[int, int],
) -> None:
    """Lay the glyphs on ``canvas`` in ``colour``, each through its own mask: only the pixels
    under a glyph's box are blended. Boxes are relative to ``at`` and clipped to ``size`` there.

    Overlapping glyphs blend in turn, which is the same as one blend through their masks
    combined (to a level of rounding).
    """
    core = canvas.im
    fill = core_images.fill  # a plain image of the colour, as Image.new makes
    mode = canvas.mode
    ox, oy = at
    width, height = size
    for mask, (x0, y0, x1, y1) in placed:
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
            if cx1 <= cx0 or cy1 <= cy0:
                continue
            mask = mask.crop((cx0 - x0, cy0 - y0, cx1 - x0, cy1 - y0))
            x0, y0, x1, y1 = cx0, cy0, cx1, cy1
        core.paste(
            fill(mode, (x1 - x0, y1 - y0), colour), (x0 + ox, y0 + oy, x1 + ox, y1 + oy), mask
        )
