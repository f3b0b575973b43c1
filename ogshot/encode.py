"""Image encoding: the last, and most expensive, step of making a card.

``ENCODER_VERSION`` goes into cache keys: a change of encoder settings changes bytes.
"""

from __future__ import annotations

import io

from PIL import Image

ENCODER_VERSION = "pillow-1"

#: Quality for lossy formats: high enough that title text keeps crisp edges.
JPEG_QUALITY = 88
WEBP_QUALITY = 86


def encode(image: Image.Image, fmt: str) -> bytes:
    """Encode an RGB card as ``png``, ``jpeg`` or ``webp``."""
    out = io.BytesIO()
    if fmt == "png":
        image.save(out, "PNG", compress_level=1)
    elif fmt == "jpeg":
        image.convert("RGB").save(
            out, "JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False
        )
    elif fmt == "webp":
        image.save(out, "WEBP", quality=WEBP_QUALITY, method=2)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return out.getvalue()
