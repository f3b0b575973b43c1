"""Checking and decoding capture bytes that came from outside.

The image type and its pixel dimensions are read from the file's own header *before* Pillow is
asked to open it, so that a decompression bomb (a few kilobytes declaring 20000×20000 pixels) is
refused as an error whatever Pillow's global ``MAX_IMAGE_PIXELS`` says and without relying on its
warning. Only what passes is decoded.
"""

from __future__ import annotations

import io
import struct

from PIL import Image

from . import CaptureError

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def _bad(detail: str) -> CaptureError:
    return CaptureError("bad_image", detail)


def sniff(body: bytes) -> tuple[str, int, int]:
    """``(format, width, height)`` from the header of a PNG, JPEG or WebP file."""
    if not body:
        raise CaptureError("empty_body", "the upstream sent an empty body")
    if body.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(body) < 24 or body[12:16] != b"IHDR":
            raise _bad("the upstream sent a truncated PNG")
        width, height = struct.unpack(">II", body[16:24])
        return "png", width, height
    if body.startswith(b"\xff\xd8"):
        return ("jpeg", *_jpeg_size(body))
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return ("webp", *_webp_size(body))
    raise _bad("the upstream sent something that is not a PNG, JPEG or WebP image")


def _jpeg_size(body: bytes) -> tuple[int, int]:
    i = 2
    while i + 4 <= len(body):
        if body[i] != 0xFF:
            raise _bad("the upstream sent a corrupt JPEG")
        marker = body[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", body[i + 2 : i + 4])
        # SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > len(body):
                break
            height, width = struct.unpack(">HH", body[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise _bad("the upstream sent a JPEG without a frame header")


def _webp_size(body: bytes) -> tuple[int, int]:
    chunk = body[12:16]
    if chunk == b"VP8X" and len(body) >= 30:
        width = int.from_bytes(body[24:27], "little") + 1
        height = int.from_bytes(body[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and len(body) >= 30 and body[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", body[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(body) >= 25 and body[20] == 0x2F:
        bits = int.from_bytes(body[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise _bad("the upstream sent a WebP without a readable header")


def check(
    body: bytes,
    max_pixels: int,
    want: tuple[int, int] | None = None,
    full_page: bool = False,
) -> tuple[str, int, int]:
    """Sniff the header and refuse images too big to decode or not the size asked for.

    ``want`` is the viewport asked for. Providers may render at a device scale factor, so a
    capture of ``k×`` the viewport (k = 1..3) is accepted; a full-page capture may be any height.
    """
    fmt, width, height = sniff(body)
    if width <= 0 or height <= 0:
        raise _bad("the upstream sent an image with no pixels")
    if width * height > max_pixels:
        raise CaptureError(
            "image_too_large",
            f"the upstream image is {width}×{height} pixels, over the {max_pixels} pixel cap",
        )
    if want is not None:
        w, h = want
        ok = any(width == w * k and (full_page or height == h * k) for k in (1, 2, 3))
        if not ok:
            raise CaptureError(
                "wrong_size", f"asked the upstream for {w}×{h}, it sent {width}×{height}"
            )
    return fmt, width, height


def decode(body: bytes, max_pixels: int) -> Image.Image:
    """Check, then fully decode, a capture; any failure is a ``CaptureError``."""
    fmt, width, height = check(body, max_pixels)
    try:
        with Image.open(io.BytesIO(body), formats=[fmt.upper()]) as im:
            if im.size != (width, height):
                raise _bad("the image header contradicts itself")
            im.load()
            return im.copy() if im.mode in ("RGB", "RGBA", "L") else im.convert("RGB")
    except CaptureError:
        raise
    except (OSError, ValueError, SyntaxError, struct.error) as exc:
        raise _bad(f"the upstream image does not decode: {exc}") from None
