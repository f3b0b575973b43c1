"""The font set: the vendored Inter family, loaded once and shared by every render.

Fonts are data that change the pixels, so the set has a ``version`` (a digest of the font files)
that goes into every cache key and ETag.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Literal

from PIL import ImageFont, features

Weight = Literal["regular", "medium", "bold"]

FONT_DIR = Path(__file__).resolve().parent / "fonts"

_INTER: dict[Weight, str] = {
    "regular": "inter/Inter-Regular.otf",
    "medium": "inter/Inter-Medium.otf",
    "bold": "inter/Inter-Bold.otf",
}


def layout_engine() -> ImageFont.Layout:
    """RAQM (HarfBuzz + fribidi) when Pillow has it: it shapes and orders every script."""
    if features.check_feature("raqm"):
        return ImageFont.Layout.RAQM
    return ImageFont.Layout.BASIC


class FontSet:
    """Fonts by weight and size; ``get`` is cheap after the first call for a size."""

    def __init__(self, files: dict[Weight, Path]) -> None:
        self._files = files
        self._engine = layout_engine()
        self._cache: dict[tuple[Weight, int], ImageFont.FreeTypeFont] = {}
        self._lock = threading.Lock()
        digest = hashlib.sha256()
        for weight in sorted(files):
            digest.update(weight.encode())
            digest.update(files[weight].read_bytes())
        digest.update(str(self._engine).encode())
        self.version = digest.hexdigest()[:16]

    @classmethod
    def default(cls) -> FontSet:
        return cls({weight: FONT_DIR / rel for weight, rel in _INTER.items()})

    def get(self, weight: Weight, size: int) -> ImageFont.FreeTypeFont:
        key = (weight, size)
        font = self._cache.get(key)
        if font is None:
            with self._lock:
                font = self._cache.get(key)
                if font is None:
                    font = ImageFont.truetype(
                        str(self._files[weight]), size, layout_engine=self._engine
                    )
                    self._cache[key] = font
        return font
