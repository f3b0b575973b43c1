"""Pure rendering: a card, its layout, the fonts and an optional capture in; an image out.

Nothing here opens a file, makes a request or knows about HTTP. ``RENDERER_VERSION`` names the
drawing code: bump it whenever a change here can change pixels, so that caches and ETags move on.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from PIL import Image, ImageChops, ImageDraw, ImageOps, ImageStat

from .card import Card
from .fonts import FontSet
from .layouts import HEIGHT, WIDTH, Layout, Palette, TextBox
from .text import Fitted, fit

RENDERER_VERSION = "1"

ThemeName = Literal["light", "dark"]
RGB = tuple[int, int, int]


def hex_rgb(value: str) -> RGB:
    return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))


def relative_luminance(rgb: RGB) -> float:
    """WCAG 2 relative luminance of an sRGB colour."""

    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: RGB, b: RGB) -> float:
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def resolve_theme(card: Card, layout: Layout, capture: Image.Image | None) -> ThemeName:
    """``auto`` follows the capture's brightness, or the layout's preference on a title card."""
    if card.theme != "auto":
        return card.theme
    if capture is None:
        return layout.auto_theme
    mean = ImageStat.Stat(capture.convert("L").reduce(8)).mean[0]
    return "light" if mean >= 128 else "dark"


@lru_cache(maxsize=64)
def _background(
    kind: str, start: str, end: str | None, size: tuple[int, int] = (WIDTH, HEIGHT)
) -> Image.Image:
    """The static background layer; computed once per layout and theme, then copied."""
    if kind == "solid" or end is None:
        return Image.new("RGB", size, hex_rgb(start))
    # A diagonal gradient: a horizontal ramp rotated 30°, cropped to the canvas.
    ramp = Image.linear_gradient("L").rotate(-60, expand=True, resample=Image.Resampling.BILINEAR)
    w, h = ramp.size
    ramp = ramp.crop((w // 4, h // 4, w - w // 4, h - h // 4)).resize(size)
    return Image.composite(
        Image.new("RGB", size, hex_rgb(end)), Image.new("RGB", size, hex_rgb(start)), ramp
    )


@lru_cache(maxsize=16)
def _bottom_scrim(size: tuple[int, int], colour: str, strength: int) -> Image.Image:
    """An RGBA layer that darkens towards the bottom: text stays legible on any capture."""
    w, h = size
    alpha = Image.linear_gradient("L").resize((1, h)).point(lambda v: min(255, v * strength // 255))
    layer = Image.new("RGBA", size, hex_rgb(colour) + (0,))
    layer.putalpha(alpha.resize(size))
    return layer


def _rounded_mask(size: tuple[int, int], radius: int) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, size[0] - 1, size[1] - 1), radius, fill=255)
    return mask


def _place_capture(canvas: Image.Image, capture: Image.Image, layout: Layout) -> None:
    spec = layout.capture
    assert spec is not None
    x, y, w, h = spec.box
    # Cover the box, keeping the top of the page where its headline is.
    fitted = ImageOps.fit(
        capture.convert("RGB"), (w, h), Image.Resampling.LANCZOS, centering=(0.5, 0.0)
    )
    mask = _rounded_mask((w, h), spec.radius) if spec.radius else None
    canvas.paste(fitted, (x, y), mask)
    if spec.scrim == "full":
        veil = Image.new("RGBA", (w, h), (0, 0, 0, 150))
        canvas.paste(veil, (x, y), veil if mask is None else _mask_and(veil, mask))
    elif spec.scrim == "bottom":
        scrim = _bottom_scrim((w, h), "#000000", 235)
        canvas.paste(scrim, (x, y), scrim if mask is None else _mask_and(scrim, mask))


def _mask_and(layer: Image.Image, mask: Image.Image) -> Image.Image:
    return ImageChops.multiply(layer.getchannel("A"), mask)


def fit_box(text: str, spec: TextBox, fonts: FontSet) -> Fitted:
    """Fit ``text`` into a layout's text box."""
    _, _, w, h = spec.box
    return fit(
        text,
        width=w,
        height=h,
        max_size=spec.max_size,
        min_size=spec.min_size,
        max_lines=spec.max_lines,
        line_height=spec.line_height,
        measure_at=lambda size: fonts.get(spec.weight, size).getlength,
    )


def _draw_text(
    draw: ImageDraw.ImageDraw, text: str, spec: TextBox, fonts: FontSet, fill: RGB
) -> tuple[int, int]:
    """Draw ``text`` in its box; returns the vertical extent actually used."""
    if spec.uppercase:
        text = text.upper()
    fitted = fit_box(text, spec, fonts)
    font = fonts.get(spec.weight, fitted.size)
    ascent, descent = font.getmetrics()
    x, y, w, h = spec.box
    block = (len(fitted.lines) - 1) * fitted.line_height + ascent + descent
    if spec.valign == "middle":
        top = y + (h - block) // 2
    elif spec.valign == "bottom":
        top = y + h - block
    else:
        top = y
    top = max(y, top)
    for i, line in enumerate(fitted.lines):
        baseline = top + ascent + i * fitted.line_height
        if spec.align == "left":
            draw.text((x, baseline), line, font=font, fill=fill, anchor="ls")
        elif spec.align == "center":
            draw.text((x + w / 2, baseline), line, font=font, fill=fill, anchor="ms")
        else:
            draw.text((x + w, baseline), line, font=font, fill=fill, anchor="rs")
    return top, top + block


def render_card(
    card: Card, layout: Layout, fonts: FontSet, capture: Image.Image | None = None
) -> Image.Image:
    """Draw one 1200×630 card. ``capture`` is a decoded page capture, or None for a title card."""
    if layout.capture is None:
        capture = None
    theme = resolve_theme(card, layout, capture)
    palette: Palette = layout.palette(theme)
    accent = hex_rgb(card.accent or palette.accent)

    canvas = _background(layout.background, palette.background, palette.background_end).copy()
    text_palette = palette
    if capture is not None:
        _place_capture(canvas, capture, layout)
        if layout.capture is not None and layout.capture.scrim != "none":
            # Text sits on the darkened capture: light text whatever the theme.
            text_palette = layout.dark

    draw = ImageDraw.Draw(canvas)
    if layout.accent_bar is not None:
        x, y, w, h = layout.accent_bar.box
        draw.rounded_rectangle((x, y, x + w - 1, y + h - 1), min(w, h) // 2, fill=accent)

    colours = {
        "foreground": hex_rgb(text_palette.foreground),
        "muted": hex_rgb(text_palette.muted),
        "accent": accent,
    }
    site = card.site_label
    if layout.site is not None and site:
        _draw_text(draw, site, layout.site, fonts, colours[layout.site.color])
    if card.title:
        _draw_text(draw, card.title, layout.title, fonts, colours[layout.title.color])
    if layout.subtitle is not None and card.subtitle:
        _draw_text(draw, card.subtitle, layout.subtitle, fonts, colours[layout.subtitle.color])
    return canvas
