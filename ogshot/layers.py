"""The layers under a card's text: background, window frame, shadow, placeholder and capture.

Everything here is pure drawing. The static part of a layout (all that depends only on the layout,
theme and accent) is drawn once and cached; the capture is fitted into its box and given its scrim.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from PIL import Image, ImageDraw, ImageFilter, ImageOps

from .contrast import RGB, WHITE, extremes, hex_rgb, mix
from .layouts import HEIGHT, WIDTH, Box, Layout, Palette

ThemeName = Literal["light", "dark"]
BLACK: RGB = (0, 0, 0)
_CHROME_BAR = 44


@lru_cache(maxsize=4)
def _ramp(size: tuple[int, int]) -> Image.Image:
    """A diagonal 0→255 ramp: a horizontal one rotated 30°, cropped to the canvas."""
    ramp = Image.linear_gradient("L").rotate(-60, expand=True, resample=Image.Resampling.BILINEAR)
    w, h = ramp.size
    return ramp.crop((w // 4, h // 4, w - w // 4, h - h // 4)).resize(size)


@lru_cache(maxsize=1)
def _glow_mask() -> Image.Image:
    """A soft round light near the top right corner, blurred small and scaled up (cheap)."""
    small = Image.new("L", (WIDTH // 8, HEIGHT // 8), 0)
    cx, cy, r = WIDTH // 8 * 0.86, HEIGHT // 8 * 0.02, 46
    ImageDraw.Draw(small).ellipse((cx - r, cy - r, cx + r, cy + r), fill=150)
    small = small.filter(ImageFilter.GaussianBlur(18))
    return small.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)


def _gradient(size: tuple[int, int], start: RGB, end: RGB) -> Image.Image:
    return Image.composite(Image.new("RGB", size, end), Image.new("RGB", size, start), _ramp(size))


def _rounded_mask(size: tuple[int, int], radius: int) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, size[0] - 1, size[1] - 1), radius, fill=255)
    return mask


def _shadow(canvas: Image.Image, box: Box, radius: int, strength: int) -> None:
    x, y, w, h = box
    scale = 4
    pad = 40
    small = Image.new("L", ((WIDTH + 2 * pad) // scale, (HEIGHT + 2 * pad) // scale), 0)
    ImageDraw.Draw(small).rounded_rectangle(
        (
            (x + pad) // scale,
            (y + pad + 14) // scale,
            (x + w + pad) // scale,
            (y + h + pad + 14) // scale,
        ),
        max(1, radius // scale),
        fill=strength,
    )
    small = small.filter(ImageFilter.GaussianBlur(6))
    mask = small.resize((WIDTH + 2 * pad, HEIGHT + 2 * pad), Image.Resampling.BICUBIC)
    canvas.paste(BLACK, (0, 0, WIDTH, HEIGHT), mask.crop((pad, pad, WIDTH + pad, HEIGHT + pad)))


def _content_box(layout: Layout) -> Box:
    """Where the capture goes: the capture box, less the title bar of a browser frame."""
    spec = layout.capture
    assert spec is not None
    x, y, w, h = spec.box
    if spec.frame == "browser":
        return (x, y + _CHROME_BAR, w, h - _CHROME_BAR)
    return spec.box


def _draw_frame(canvas: Image.Image, layout: Layout, palette: Palette, dark: bool) -> None:
    spec = layout.capture
    assert spec is not None
    x, y, w, h = spec.box
    bg, fg = hex_rgb(palette.background), hex_rgb(palette.foreground)
    chrome = mix(bg, fg, 0.14 if dark else 0.07)
    draw = ImageDraw.Draw(canvas)
    draw.rounded_rectangle((x, y, x + w - 1, y + h - 1), spec.radius, fill=chrome)
    for i, colour in enumerate(((255, 95, 87), (254, 188, 46), (40, 200, 64))):
        cx, cy = x + 26 + i * 22, y + _CHROME_BAR // 2
        draw.ellipse((cx - 6, cy - 6, cx + 6, cy + 6), fill=colour)
    pill = mix(bg, fg, 0.05) if dark else WHITE
    draw.rounded_rectangle(
        (x + 110, y + 9, x + w - 110, y + _CHROME_BAR - 9), (_CHROME_BAR - 18) // 2, fill=pill
    )


def _draw_placeholder(
    canvas: Image.Image, layout: Layout, palette: Palette, accent: RGB, dark: bool
) -> None:
    spec = layout.capture
    assert spec is not None
    x, y, w, h = _content_box(layout)
    bg, fg = hex_rgb(palette.background), hex_rgb(palette.foreground)
    if spec.placeholder == "accent":
        panel = _gradient((w, h), accent, mix(accent, bg, 0.55))
        draw = ImageDraw.Draw(panel)
        # A few soft rings: something to look at where the page would be.
        ring = mix(accent, WHITE, 0.3)
        for i in range(4):
            r = 80 + i * 70
            cx, cy = w - 60, h // 4
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=ring, width=3)
        radius = spec.radius if spec.frame == "none" else 0
        canvas.paste(panel, (x, y), _rounded_mask((w, h), radius) if radius else None)
    elif spec.placeholder == "skeleton":
        page = mix(bg, WHITE, 0.04) if not dark else mix(bg, fg, 0.04)
        line = mix(page, fg, 0.12)
        draw = ImageDraw.Draw(canvas)
        draw.rectangle((x, y, x + w - 1, y + h - 1), fill=page)
        m = 48
        draw.rounded_rectangle(
            (x + m, y + 36, x + m + w // 3, y + 60), 12, fill=mix(page, accent, 0.7)
        )
        for i, frac in enumerate((0.82, 0.9, 0.66)):
            top = y + 92 + i * 34
            draw.rounded_rectangle(
                (x + m, top, x + m + int((w - 2 * m) * frac), top + 14), 7, fill=line
            )
        block = mix(page, accent, 0.18)
        draw.rounded_rectangle((x + m, y + 210, x + w // 2 - 12, y + h + 40), 16, fill=block)
        draw.rounded_rectangle((x + w // 2 + 12, y + 210, x + w - m, y + h + 40), 16, fill=line)


def _background(layout: Layout, palette: Palette, accent: RGB) -> Image.Image:
    start = hex_rgb(palette.background)
    if layout.background == "solid" or palette.background_end is None:
        canvas = Image.new("RGB", (WIDTH, HEIGHT), start)
    else:
        canvas = _gradient((WIDTH, HEIGHT), start, hex_rgb(palette.background_end))
    if layout.background == "glow":
        canvas.paste(accent, (0, 0, WIDTH, HEIGHT), _glow_mask())
    return canvas


@lru_cache(maxsize=64)
def static_layer(layout: Layout, theme: ThemeName, accent: RGB, with_capture: bool) -> Image.Image:
    """Everything of a layout that does not depend on the text or the capture's pixels."""
    palette = layout.palette(theme)
    dark = theme == "dark"
    canvas = _background(layout, palette, accent)
    spec = layout.capture
    if spec is not None and (with_capture or spec.placeholder != "none"):
        if spec.shadow:
            _shadow(canvas, spec.box, spec.radius, 110 if dark else 60)
        if spec.frame == "browser":
            _draw_frame(canvas, layout, palette, dark)
        if not with_capture:
            _draw_placeholder(canvas, layout, palette, accent, dark)
    return canvas


@lru_cache(maxsize=256)
def box_extremes(layout: Layout, theme: ThemeName, accent: RGB, box: Box) -> tuple[RGB, RGB]:
    """Per-channel extremes of a title card's static layer over a text box."""
    x, y, w, h = box
    return extremes(static_layer(layout, theme, accent, False), [(x, y, x + w, y + h)])


@lru_cache(maxsize=16)
def _bottom_ramp(size: tuple[int, int], strength: int) -> tuple[int, Image.Image]:
    """Clear at the top, rising from a tenth of the way down to ``strength`` at two thirds.

    As the row where it starts and the mask from there down: the clear rows cost nothing.
    """
    w, h = size

    def ease(v: int) -> int:
        t = min(1.0, max(0.0, (v / 255 - 0.1) / 0.58))
        return int(strength * t**0.8 + 0.5)

    ramp = Image.linear_gradient("L").resize((1, h)).point(ease).resize(size)
    top = (ramp.getbbox() or (0, h, w, h))[1]
    return top, ramp.crop((0, top, w, h))


def covers_card(layout: Layout) -> bool:
    """Whether a capture, once placed, hides every pixel of the layout's static layer."""
    spec = layout.capture
    return (
        spec is not None
        and spec.box == (0, 0, WIDTH, HEIGHT)
        and spec.frame == "none"
        and spec.radius == 0
        and not spec.shadow
    )


def place_capture(
    canvas: Image.Image | None, capture: Image.Image, layout: Layout, scrim: RGB
) -> Image.Image:
    """The capture fitted into its box, on ``canvas``; without a canvas it becomes the canvas."""
    spec = layout.capture
    assert spec is not None
    x, y, w, h = _content_box(layout)
    # Cover the box, keeping the top of the page where its headline is: a new image either way.
    rgb = capture if capture.mode == "RGB" else capture.convert("RGB")
    fitted = ImageOps.fit(rgb, (w, h), Image.Resampling.BILINEAR, centering=(0.5, 0.0))
    if spec.scrim == "full":
        fitted = Image.blend(fitted, Image.new("RGB", (w, h), scrim), 0.6)
    elif spec.scrim == "bottom":
        top, ramp = _bottom_ramp((w, h), 228)
        fitted.paste(Image.new("RGB", ramp.size, scrim), (0, top), ramp)
    if canvas is None:
        return fitted
    radius = spec.radius if spec.frame == "none" else 0
    if spec.frame == "browser" and spec.radius:
        # Round the bottom corners only: the title bar carries the top ones.
        mask = Image.new("L", (w, h), 0)
        ImageDraw.Draw(mask).rounded_rectangle((0, -spec.radius, w - 1, h - 1), spec.radius, 255)
        canvas.paste(fitted, (x, y), mask)
    else:
        canvas.paste(fitted, (x, y), _rounded_mask((w, h), radius) if radius else None)
    return canvas
