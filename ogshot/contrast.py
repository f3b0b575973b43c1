"""Contrast: WCAG luminance, and choosing a text colour and scrim legible on measured pixels.

The renderer measures the pixels under each line of a text box before drawing it. A colour is
legible there when its contrast with every one of those pixels is at least :data:`MIN_CONTRAST`.
The bound used is conservative: the per-channel minimum and maximum of the area bracket every
pixel's luminance, so a colour legible against both is legible against all.
"""

from __future__ import annotations

import math
from itertools import compress

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from .layouts import HEIGHT, WIDTH, Palette

RGB = tuple[int, int, int]
Rect = tuple[int, int, int, int]  # left, top, right, bottom

#: The contrast every text pixel's background must keep (WCAG AA for normal text).
MIN_CONTRAST = 4.5
#: What a scrim aims for: a margin over the minimum for rounding and anti-aliasing.
_TARGET = 4.7

WHITE: RGB = (255, 255, 255)
BLACK: RGB = (0, 0, 0)


def paint(canvas: Image.Image, colour: RGB, at: tuple[int, int], mask: Image.Image) -> None:
    """Lay ``colour`` on ``canvas`` through ``mask`` (an ``L`` image placed at ``at``).

    The same pixels as ``canvas.paste(colour, box, mask)``, in half the time: Pillow blends an
    image through a mask twice as fast as a colour, and only the mask's non-zero area is worked.
    """
    bbox = mask.getbbox()
    if bbox is None:
        return
    if bbox != (0, 0, *mask.size):
        mask = mask.crop(bbox)
    size = (bbox[2] - bbox[0], bbox[3] - bbox[1])
    canvas.paste(Image.new(canvas.mode, size, colour), (at[0] + bbox[0], at[1] + bbox[1]), mask)


def hex_rgb(value: str) -> RGB:
    return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))


def _channel(c: float) -> float:
    s = c / 255
    return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4


#: :func:`_channel` of every 8-bit value, the values pixels have.
_LINEAR = tuple(_channel(c) for c in range(256))


def relative_luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour."""
    r, g, b = (_LINEAR[c] if type(c) is int else _channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """``a`` moved a fraction ``t`` of the way to ``b``."""
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


_VALUES = range(256)
_VALUES_DOWN = range(255, -1, -1)


def extremes(image: Image.Image, rects: list[Rect]) -> tuple[RGB, RGB]:
    """Per-channel minimum and maximum of the pixels under ``rects``: bounds for every pixel."""
    lo, hi = [255, 255, 255], [0, 0, 0]
    for left, top, right, bottom in rects:
        left, top = max(0, left), max(0, top)
        right, bottom = min(WIDTH, right), min(HEIGHT, bottom)
        if right <= left or bottom <= top:
            continue
        # One pass over the pixels for all three channels (getextrema splits them first).
        counts = image.crop((left, top, right, bottom)).histogram()
        for i in range(3):
            band = counts[256 * i : 256 * (i + 1)]
            # The first and last values any pixel has, found in C (a photograph's run from
            # either end before its first pixel is long, and a Python loop paid for each step).
            a = next(compress(_VALUES, band))
            b = next(compress(_VALUES_DOWN, reversed(band)))
            lo[i], hi[i] = min(lo[i], a), max(hi[i], b)
    return (lo[0], lo[1], lo[2]), (hi[0], hi[1], hi[2])


def worst_contrast(colour: RGB, lo: RGB, hi: RGB) -> float:
    """The lowest contrast ``colour`` can have with any pixel between ``lo`` and ``hi``."""
    lum = relative_luminance(colour)
    if lum >= relative_luminance(hi):
        return contrast_ratio(colour, hi)
    if lum <= relative_luminance(lo):
        return contrast_ratio(colour, lo)
    return 1.0


def _scrim_alpha(colour: RGB, worst: RGB, scrim: RGB) -> float:
    """The least opacity of ``scrim`` over ``worst`` that gives ``colour`` the target contrast."""
    lo, hi = 0.0, 1.0
    for _ in range(14):
        mid = (lo + hi) / 2
        veiled = tuple(c + (s - c) * mid for c, s in zip(worst, scrim, strict=True))
        if contrast_ratio(colour, veiled) >= _TARGET:  # type: ignore[arg-type]
            hi = mid
        else:
            lo = mid
    return hi


def _apply_scrim(
    canvas: Image.Image, rects: list[Rect], colour: RGB, alpha: float, pad: int
) -> None:
    """Veil the area around the lines: full ``alpha`` under them, fading out beyond."""
    scale = 4
    margin = 2 * pad
    left = max(0, min(r[0] for r in rects) - margin)
    top = max(0, min(r[1] for r in rects) - margin)
    right = min(WIDTH, max(r[2] for r in rects) + margin)
    bottom = min(HEIGHT, max(r[3] for r in rects) + margin)
    size = (right - left, bottom - top)
    small = Image.new("L", (size[0] // scale + 1, size[1] // scale + 1), 0)
    draw = ImageDraw.Draw(small)
    for x0, y0, x1, y1 in rects:
        draw.rounded_rectangle(
            (
                (x0 - pad - left) // scale,
                (y0 - pad - top) // scale,
                (x1 + pad - left) // scale,
                (y1 + pad - top) // scale,
            ),
            pad // scale,
            fill=255,
        )
    blurred = small.filter(ImageFilter.GaussianBlur(pad / scale / 2.5))
    # The blur softens the edges outward; under the lines themselves the mask must stay full.
    small = ImageChops.lighter(small, blurred)
    full = math.ceil(alpha * 255)
    # Strength first, on the small mask; then up to full size, straight to the area's size.
    small = small.point([(v * full + 127) // 255 for v in range(256)])
    mask = small.resize(
        size, Image.Resampling.BILINEAR, box=(0, 0, size[0] / scale, size[1] / scale)
    )
    hard = ImageDraw.Draw(mask)
    for x0, y0, x1, y1 in rects:
        hard.rectangle((x0 - 2 - left, y0 - 2 - top, x1 + 2 - left, y1 + 2 - top), fill=full)
    paint(canvas, colour, (left, top), mask)


def choose_colour(
    canvas: Image.Image,
    rects: list[Rect],
    wanted: RGB,
    palette: Palette,
    other: Palette,
    *,
    around: tuple[RGB, RGB] | None = None,
) -> tuple[RGB, float]:
    """Text colour for lines over ``rects``, adding a scrim when no candidate is legible.

    ``around`` may bound the pixels under ``rects`` from outside (the extremes of a larger area
    that holds them): when the wanted colour is legible against those, nothing is measured.
    """
    candidates = [wanted, hex_rgb(palette.foreground), hex_rgb(other.foreground)]
    if around is not None and worst_contrast(wanted, *around) >= MIN_CONTRAST:
        return wanted, 0.0
    lo, hi = extremes(canvas, rects)
    for colour in candidates:
        if worst_contrast(colour, lo, hi) >= MIN_CONTRAST:
            return colour, 0.0
    colour = hex_rgb(palette.foreground)
    scrim = hex_rgb(palette.scrim)
    if (relative_luminance(colour) > 0.5) == (relative_luminance(scrim) > 0.5):
        scrim = BLACK if relative_luminance(colour) > 0.5 else WHITE
    clear = 1.0  # how much of the original pixels still shows through the scrims laid so far
    for _ in range(4):
        # Normally one pass; rounding in the mask can leave a pixel short, and a second, thin
        # scrim over the first settles it.
        worst = hi if relative_luminance(colour) > relative_luminance(scrim) else lo
        alpha = max(_scrim_alpha(colour, worst, scrim), 1 / 255)
        _apply_scrim(canvas, rects, scrim, alpha, pad=20)
        clear *= 1 - alpha
        lo, hi = extremes(canvas, rects)
        if worst_contrast(colour, lo, hi) >= MIN_CONTRAST:
            break
    return colour, 1 - clear
