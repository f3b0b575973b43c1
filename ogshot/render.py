"""Pure rendering: a card, its layout, the fonts and an optional capture in; an image out.

Nothing here opens a file, makes a request or knows about HTTP. ``RENDERER_VERSION`` names the
drawing code: bump it whenever a change here can change pixels, so that caches and ETags move on.

A card is drawn in layers: the static part of the layout (background, window frame, shadow,
placeholder), cached per layout, theme and accent; the capture and its scrim; then each text box.
Before a box is drawn the pixels under its lines are measured, and the text colour and, when
needed, a local scrim are chosen so that every pixel behind the text keeps a WCAG contrast of at
least 4.5:1.
Text is drawn through a mask the size of its box, so no glyph can leave it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from PIL import Image, ImageDraw, ImageFilter, ImageOps, ImageStat

from .card import Card
from .contrast import (
    RGB,
    WHITE,
    Rect,
    choose_colour,
    extremes,
    hex_rgb,
    mix,
    paint,
)
from .fonts import EMOJI, EMOJI_SIZE, FontSet, cjk_region
from .layouts import HEIGHT, WIDTH, Box, Layout, Palette, TextBox
from .text import Fitted, fit

RENDERER_VERSION = "4"


ThemeName = Literal["light", "dark"]
BLACK: RGB = (0, 0, 0)
_CHROME_BAR = 44


def resolve_theme(card: Card, layout: Layout, capture: Image.Image | None) -> ThemeName:
    """``auto`` follows the capture's brightness, or the layout's preference on a title card."""
    if card.theme != "auto":
        return card.theme
    if capture is None:
        return layout.auto_theme
    # A grid of every eighth pixel is plenty for a mean, at a hundredth of the cost of reading all.
    grid = capture.resize(
        (max(1, capture.width // 8), max(1, capture.height // 8)), Image.Resampling.NEAREST
    )
    mean = ImageStat.Stat(grid.convert("L")).mean[0]
    return "light" if mean >= 128 else "dark"


# -- static layers -------------------------------------------------------------------------------


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
def _static(layout: Layout, theme: ThemeName, accent: RGB, with_capture: bool) -> Image.Image:
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
def _box_extremes(layout: Layout, theme: ThemeName, accent: RGB, box: Box) -> tuple[RGB, RGB]:
    """Per-channel extremes of a title card's static layer over a text box."""
    x, y, w, h = box
    return extremes(_static(layout, theme, accent, False), [(x, y, x + w, y + h)])


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


def _covers_card(layout: Layout) -> bool:
    """Whether a capture, once placed, hides every pixel of the layout's static layer."""
    spec = layout.capture
    return (
        spec is not None
        and spec.box == (0, 0, WIDTH, HEIGHT)
        and spec.frame == "none"
        and spec.radius == 0
        and not spec.shadow
    )


def _place_capture(
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


# -- text ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placed:
    """A text box as drawn: where its lines are, in which colour, and with how much scrim."""

    name: str
    lines: tuple[Rect, ...]
    colour: RGB
    scrim: float
    fitted: Fitted


@dataclass(frozen=True)
class Rendered:
    image: Image.Image
    #: The card before any text was drawn (scrims included): what the text is read against.
    backdrop: Image.Image
    placed: tuple[Placed, ...]


def fit_box(text: str, spec: TextBox, fonts: FontSet) -> Fitted:
    """Fit ``text`` into a layout's text box."""
    _, _, w, h = spec.box
    return fit(
        text.upper() if spec.uppercase else text,
        fonts=fonts,
        weight=spec.weight,
        width=w,
        height=h,
        max_size=spec.max_size,
        min_size=spec.min_size,
        max_lines=spec.max_lines,
        line_height=spec.line_height,
    )


def _line_rects(fitted: Fitted, spec: TextBox) -> list[tuple[int, int, Rect]]:
    """For each line: its left x, its baseline and its rectangle on the canvas."""
    x, y, w, h = spec.box
    block = fitted.height
    if spec.valign == "middle":
        top = y + (h - block) // 2
    elif spec.valign == "bottom":
        top = y + h - block
    else:
        top = y
    top = max(y, top)
    align = spec.align
    if fitted.rtl:
        align = {"left": "right", "right": "left", "center": "center"}[align]  # type: ignore[assignment]
    out = []
    for i, line in enumerate(fitted.lines):
        baseline = top + fitted.ascent + i * fitted.line_height
        width = min(w, math.ceil(line.width))
        if align == "left":
            left = x
        elif align == "center":
            left = x + (w - width) // 2
        else:
            left = x + w - width
        rect = (left, baseline - fitted.ascent, left + width, baseline + fitted.descent)
        out.append((left, baseline, rect))
    return out


@lru_cache(maxsize=256)
def _emoji(fonts: FontSet, text: str, size: int) -> Image.Image:
    """A colour emoji run drawn at the font's one bitmap size, then scaled to ``size``."""
    font = fonts.font(EMOJI, "regular", EMOJI_SIZE)
    ascent, descent = font.getmetrics()
    width = max(1, math.ceil(font.getlength(text)))
    image = Image.new("RGBA", (width, ascent + descent), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((0, ascent), text, font=font, embedded_color=True, anchor="ls")
    scale = size / EMOJI_SIZE
    return image.resize(
        (max(1, round(width * scale)), max(1, round((ascent + descent) * scale))),
        Image.Resampling.LANCZOS,
    )


def _draw_box(
    canvas: Image.Image,
    fitted: Fitted,
    spec: TextBox,
    fonts: FontSet,
    colour: RGB,
    rows: list[tuple[int, int, Rect]],
) -> None:
    """Draw the lines through a mask the size of the box: nothing can land outside it."""
    bx, by, bw, bh = spec.box
    mask = Image.new("L", (bw, bh), 0)
    draw = ImageDraw.Draw(mask)
    colour_layer: list[tuple[Image.Image, int, int]] = []
    region = _region_cjk(fitted)
    for line, (left, baseline, _) in zip(fitted.lines, rows, strict=True):
        cx = float(left - bx)
        for run in line.runs:
            if run.font == EMOJI:
                image = _emoji(fonts, run.text, fitted.size)
                ascent = fonts.font(EMOJI, "regular", EMOJI_SIZE).getmetrics()[0]
                top = baseline - by - round(ascent * fitted.size / EMOJI_SIZE)
                colour_layer.append((image, round(cx), top))
            else:
                font = fonts.font(run.font, spec.weight, fitted.size, region)
                draw.text(
                    (cx, baseline - by),
                    run.text,
                    font=font,
                    fill=255,
                    anchor="ls",
                    direction=("rtl" if run.rtl else "ltr") if fonts.shapes else None,
                )
            cx += run.width
    paint(canvas, colour, (bx, by), mask)
    for image, ex, ey in colour_layer:
        # Clip the bitmap to the box before compositing.
        left, top = max(0, ex), max(0, ey)
        right, bottom = min(bw, ex + image.width), min(bh, ey + image.height)
        if right <= left or bottom <= top:
            continue
        piece = image.crop((left - ex, top - ey, right - ex, bottom - ey))
        canvas.paste(piece, (bx + left, by + top), piece)


def _region_cjk(fitted: Fitted) -> str:
    return cjk_region("".join(line.text for line in fitted.lines))


def render_detailed(
    card: Card,
    layout: Layout,
    fonts: FontSet,
    capture: Image.Image | None = None,
    *,
    keep_backdrop: bool = True,
) -> Rendered:
    """Draw one card and say where its text went, in which colour, over how much scrim.

    Without ``keep_backdrop`` the result's backdrop is the finished image itself (one copy of
    the card less, for callers that only want the image).
    """
    if layout.capture is None:
        capture = None
    theme = resolve_theme(card, layout, capture)
    palette = layout.palette(theme)
    other = layout.palette("light" if theme == "dark" else "dark")
    accent = hex_rgb(card.accent or palette.accent)

    if capture is not None and _covers_card(layout):
        canvas = _place_capture(None, capture, layout, hex_rgb(palette.scrim))
    else:
        canvas = _static(layout, theme, accent, capture is not None).copy()
        if capture is not None:
            _place_capture(canvas, capture, layout, hex_rgb(palette.scrim))

    colours = {
        "foreground": hex_rgb(palette.foreground),
        "muted": hex_rgb(palette.muted),
        "accent": accent,
    }
    texts = (
        ("site", layout.site, card.site_label),
        ("title", layout.title, card.title),
        ("subtitle", layout.subtitle, card.subtitle),
    )
    planned: list[tuple[str, TextBox, Fitted, list[tuple[int, int, Rect]], RGB, float]] = []
    bare = capture is None
    for name, spec, text in texts:
        if spec is None or not text:
            continue
        fitted = fit_box(text, spec, fonts)
        if not fitted.lines:
            continue
        rows = _line_rects(fitted, spec)
        # On a title card nothing but the static layer lies under the text until a scrim is
        # laid: its extremes over the whole box, measured once per layer, bound every line's.
        around = _box_extremes(layout, theme, accent, spec.box) if bare else None
        colour, alpha = choose_colour(
            canvas, [r for *_, r in rows], colours[spec.color], palette, other, around=around
        )
        bare = bare and alpha == 0
        planned.append((name, spec, fitted, rows, colour, alpha))

    if layout.accent_bar is not None:
        x, y, w, h = layout.accent_bar.box
        ImageDraw.Draw(canvas).rounded_rectangle(
            (x, y, x + w - 1, y + h - 1), min(w, h) // 2, fill=accent
        )
    backdrop = canvas.copy() if keep_backdrop else canvas
    placed = []
    for name, spec, fitted, rows, colour, alpha in planned:
        _draw_box(canvas, fitted, spec, fonts, colour, rows)
        placed.append(Placed(name, tuple(r for *_, r in rows), colour, alpha, fitted))
    return Rendered(canvas, backdrop, tuple(placed))


def render_card(
    card: Card, layout: Layout, fonts: FontSet, capture: Image.Image | None = None
) -> Image.Image:
    """Draw one 1200×630 card. ``capture`` is a decoded page capture, or None for a title card."""
    return render_detailed(card, layout, fonts, capture, keep_backdrop=False).image
