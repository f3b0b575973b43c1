"""Comparing images the way a reader would notice a difference: structure, tile by tile.

A mean pixel difference over a whole card hides a missing subtitle or one reversed word: they
change a few thousand pixels of a 190,000-pixel image. SSIM (Wang et al., 2004) on the
luminance, averaged over tiles a few words wide, sees them: the tile where the change is drops
far below the bound while the others stay at 1.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image

_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
_WINDOW = 7


def _luma(image: Image.Image) -> NDArray[np.float64]:
    return np.asarray(image.convert("L"), dtype=np.float64)


def _mean_filter(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """Mean over every 7×7 window (valid positions only), by summed-area tables."""
    s = np.cumsum(np.cumsum(np.pad(a, ((1, 0), (1, 0))), axis=0), axis=1)
    w = _WINDOW
    total = s[w:, w:] - s[:-w, w:] - s[w:, :-w] + s[:-w, :-w]
    return np.asarray(total / (w * w), dtype=np.float64)


def ssim_map(a: Image.Image, b: Image.Image) -> NDArray[np.float64]:
    """Local SSIM of the luminance of two same-size images, one value per 7×7 window."""
    if a.size != b.size:
        raise ValueError(f"sizes differ: {a.size} and {b.size}")
    x, y = _luma(a), _luma(b)
    mx, my = _mean_filter(x), _mean_filter(y)
    vx = _mean_filter(x * x) - mx * mx
    vy = _mean_filter(y * y) - my * my
    cov = _mean_filter(x * y) - mx * my
    num = (2 * mx * my + _C1) * (2 * cov + _C2)
    den = (mx * mx + my * my + _C1) * (vx + vy + _C2)
    return np.asarray(num / den, dtype=np.float64)


def ssim(a: Image.Image, b: Image.Image) -> float:
    """Mean SSIM of two images: 1 for identical, lower as structure differs."""
    return float(ssim_map(a, b).mean())


def tile_ssim(a: Image.Image, b: Image.Image, tiles: tuple[int, int] = (8, 4)) -> list[float]:
    """Mean SSIM of each tile of a ``tiles`` grid (columns, rows), row by row."""
    local = ssim_map(a, b)
    cols, rows = tiles
    h, w = local.shape
    out = []
    for r in range(rows):
        for c in range(cols):
            piece = local[r * h // rows : (r + 1) * h // rows, c * w // cols : (c + 1) * w // cols]
            out.append(float(piece.mean()))
    return out


def worst_tile(a: Image.Image, b: Image.Image, tiles: tuple[int, int] = (8, 4)) -> float:
    """The lowest tile SSIM: how much the most changed part of the image changed."""
    return min(tile_ssim(a, b, tiles))
