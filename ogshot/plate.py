"""The backing plate: the accent bar and the site label kept legible over a busy capture.

Over a capture, a layout's accent bar and site label lie on whatever the page has there: thin
coloured text, photos, dark and light side by side. Before either is drawn, the pixels around
the bar and behind the label are measured. When the bar would not keep a contrast of
:data:`BAR_CONTRAST` (WCAG's 3:1 for graphics) with every pixel next to it, or no colour the
label may take keeps :data:`~ogshot.contrast.MIN_CONTRAST` (4.5:1) with every pixel behind it,
one rounded plate in the palette's background colour is laid under both: at least
:data:`PLATE_OPACITY` opaque, so that it reads as a deliberate badge rather than a smudge, and
more where the page needs it. A plate the accent cannot stand out from (a light accent on a
light plate) is laid in the opposite extreme instead.
"""

from __future__ import annotations

import math
from functools import lru_cache

from PIL import Image, ImageDraw

from .contrast import (
    BLACK,
    MIN_CONTRAST,
    RGB,
    WHITE,
    Rect,
    extremes,
    mix,
    paint,
    relative_luminance,
    worst_contrast,
)
from .layouts import HEIGHT, WIDTH

#: The contrast the accent bar keeps with every pixel next to it (WCAG 1.4.11, non-text).
BAR_CONTRAST = 3.0
#: The least opacity of a plate, once one is needed.
PLATE_OPACITY = 0.9
#: Margins: of the plate around the bar and the label, and of the bar's measured surround.
PAD = 14
RING = 6
#: Aims a little over the bounds, for rounding and anti-aliasing.
_MARGIN = 0.2


def _legible(
    bar: tuple[RGB, RGB] | None,
    label: tuple[RGB, RGB] | None,
    accent: RGB,
    colours: list[RGB],
    plate: RGB | None = None,
    alpha: float = 0.0,
) -> bool:
    """Whether the bar and a label colour are legible over these extremes (veiled by a plate)."""
    def veiled(span: tuple[RGB, RGB]) -> tuple[RGB, RGB]:
        if plate is None:
            return span
        return mix(span[0], plate, alpha), mix(span[1], plate, alpha)

    margin = _MARGIN if plate is not None else 0.0
    if bar is not None and worst_contrast(accent, *veiled(bar)) < BAR_CONTRAST + margin:
        return False
    return label is None or any(
        worst_contrast(c, *veiled(label)) >= MIN_CONTRAST + margin for c in colours
    )


def plate_for(
    canvas: Image.Image,
    bar: Rect | None,
    label: list[Rect],
    accent: RGB,
    colours: list[RGB],
    background: RGB,
) -> tuple[RGB, float] | None:
    """The plate the bar and label need over ``canvas`` (colour, opacity), or None."""
    around = None
    if bar is not None:
        x0, y0, x1, y1 = bar
        around = extremes(canvas, [(x0 - RING, y0 - RING, x1 + RING, y1 + RING)])
    behind = extremes(canvas, label) if label else None
    if _legible(around, behind, accent, colours):
        return None
    # The background colour first; the extreme that contrasts most with the accent after it.
    far = WHITE if relative_luminance(accent) < 0.18 else BLACK
    for plate in (background, far):
        for step in range(6):
            alpha = PLATE_OPACITY + (1 - PLATE_OPACITY) * step / 5
            if _legible(around, behind, accent, colours, plate, alpha):
                return plate, alpha
    return far, 1.0


def groups(bar: Rect | None, label: list[Rect]) -> list[list[Rect]]:
    """The rectangles each plate goes under: one plate for a bar and a label that sit together
    (as in the built-in layouts), one each when a layout puts them apart."""
    if bar is None:
        return [label] if label else []
    if not label:
        return [[bar]]
    left = min(r[0] for r in label)
    top = min(r[1] for r in label)
    right = max(r[2] for r in label)
    bottom = max(r[3] for r in label)
    apart = max(left - bar[2], bar[0] - right, top - bar[3], bar[1] - bottom)
    return [[bar, *label]] if apart <= 2 * PAD else [[bar], label]


def lay_plate(canvas: Image.Image, rects: list[Rect], colour: RGB, alpha: float) -> Rect:
    """One rounded plate under ``rects`` (the bar and the label's lines); where it went."""
    left = max(0, min(r[0] for r in rects) - PAD)
    top = max(0, min(r[1] for r in rects) - PAD)
    right = min(WIDTH, max(r[2] for r in rects) + PAD)
    bottom = min(HEIGHT, max(r[3] for r in rects) + PAD)
    paint(canvas, colour, (left, top), _mask((right - left, bottom - top), math.ceil(alpha * 255)))
    return (left, top, right, bottom)


@lru_cache(maxsize=64)
def _mask(size: tuple[int, int], fill: int) -> Image.Image:
    """A rounded plate's mask, drawn four times larger and reduced: smooth corners. A site's
    label has the same size on every card, so the mask is kept."""
    scale = 4
    big = Image.new("L", (size[0] * scale, size[1] * scale), 0)
    ImageDraw.Draw(big).rounded_rectangle(
        (0, 0, big.width - 1, big.height - 1), PAD * scale, fill=fill
    )
    return big.resize(size, Image.Resampling.BOX)
