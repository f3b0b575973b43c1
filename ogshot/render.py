"""Pure rendering: a card, its layout, the fonts and an optional capture in; an image out.

Nothing here opens a file, makes a request or knows about HTTP. ``RENDERER_VERSION`` names the
drawing code: bump it whenever a change here can change pixels, so that caches and ETags move on.

A card is drawn in layers: the static part of the layout (background, window frame, shadow,
placeholder), cached per layout, theme and accent; the capture and its scrim; then each text box.
Before a box is drawn the pixels under its lines are measured, and the text colour and, when
needed, a local scrim are chosen so that every pixel behind the text keeps a WCAG contrast of at
least 4.5:1.
Text is clipped to its box, so no glyph can leave it. Glyphs come from HarfBuzz's shaping of
each run and masks rasterised once (:mod:`.glyphs`), blended glyph by glyph; colour emoji, and
text on a Pillow without RAQM, are drawn by Pillow (through a mask the size of the box).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageStat

from . import glyphs
from .card import Card
from .contrast import RGB, Rect, choose_colour, hex_rgb, paint
from .fonts import EMOJI, EMOJI_SIZE, FontSet
from .layers import ThemeName, box_extremes, covers_card, place_capture, static_layer
from .layouts import Layout, Palette, TextBox
from .plate import groups, lay_plate, plate_for
from .text import Fitted, fit

RENDERER_VERSION = "13"


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
    #: Where backing plates went under the accent bar and site label, if they were needed.
    plates: tuple[Rect, ...] = ()


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
    """Draw the lines, clipped to the box: nothing can land outside it."""
    bx, by, bw, bh = spec.box
    # Runs drawn from kept glyph masks are laid glyph by glyph; what Pillow draws (the rare
    # run it must) goes through a mask the size of the box.
    mask: Image.Image | None = None
    draw: ImageDraw.ImageDraw | None = None
    laid: list[glyphs.Placed] = []
    colour_layer: list[tuple[Image.Image, int, int]] = []
    region = fitted.region  # the face the lines were measured in
    for line, (left, baseline, _) in zip(fitted.lines, rows, strict=True):
        cx = float(left - bx)
        for run in line.runs:
            if run.font == EMOJI:
                image = _emoji(fonts, run.text, fitted.size)
                ascent = fonts.font(EMOJI, "regular", EMOJI_SIZE).getmetrics()[0]
                top = baseline - by - round(ascent * fitted.size / EMOJI_SIZE)
                colour_layer.append((image, round(cx), top))
                cx += run.width
                continue
            placed = fonts.glyphs(
                run.font, spec.weight, region, fitted.size, run.text, run.rtl, cx, baseline - by
            )
            if placed is not None:
                laid.extend(placed)
            else:
                if mask is None:
                    mask = Image.new("L", (bw, bh), 0)
                    draw = ImageDraw.Draw(mask)
                assert draw is not None
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
    glyphs.lay(canvas, colour, laid, (bx, by), (bw, bh))
    if mask is not None:
        paint(canvas, colour, (bx, by), mask)
    for image, ex, ey in colour_layer:
        # Clip the bitmap to the box before compositing.
        left, top = max(0, ex), max(0, ey)
        right, bottom = min(bw, ex + image.width), min(bh, ey + image.height)
        if right <= left or bottom <= top:
            continue
        piece = image.crop((left - ex, top - ey, right - ex, bottom - ey))
        canvas.paste(piece, (bx + left, by + top), piece)


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

    if capture is not None and covers_card(layout):
        canvas = place_capture(None, capture, layout, hex_rgb(palette.scrim))
    else:
        canvas = static_layer(layout, theme, accent, capture is not None).copy()
        if capture is not None:
            place_capture(canvas, capture, layout, hex_rgb(palette.scrim))

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
    boxes: list[tuple[str, TextBox, Fitted, list[tuple[int, int, Rect]]]] = []
    for name, spec, text in texts:
        if spec is None or not text:
            continue
        fitted = fit_box(text, spec, fonts)
        if fitted.lines:
            boxes.append((name, spec, fitted, _line_rects(fitted, spec)))

    plates: tuple[Rect, ...] = ()
    if capture is not None:
        plates = _plates(canvas, layout, boxes, accent, colours, palette, other)

    planned: list[tuple[str, TextBox, Fitted, list[tuple[int, int, Rect]], RGB, float]] = []
    bare = capture is None
    for name, spec, fitted, rows in boxes:
        # On a title card nothing but the static layer lies under the text until a scrim is
        # laid: its extremes over the whole box, measured once per layer, bound every line's.
        around = box_extremes(layout, theme, accent, spec.box) if bare else None
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
    return Rendered(canvas, backdrop, tuple(placed), plates)


def _plates(
    canvas: Image.Image,
    layout: Layout,
    boxes: list[tuple[str, TextBox, Fitted, list[tuple[int, int, Rect]]]],
    accent: RGB,
    colours: dict[str, RGB],
    palette: Palette,
    other: Palette,
) -> tuple[Rect, ...]:
    """Lay a backing plate under the accent bar and site label where the capture needs one."""
    bar: Rect | None = None
    if layout.accent_bar is not None:
        x, y, w, h = layout.accent_bar.box
        bar = (x, y, x + w, y + h)
    site = next(((spec, rows) for name, spec, _, rows in boxes if name == "site"), None)
    label = [r for *_, r in site[1]] if site else []
    wanted = colours[site[0].color] if site else accent
    candidates = [wanted, hex_rgb(palette.foreground), hex_rgb(other.foreground)]
    found = plate_for(canvas, bar, label, accent, candidates, hex_rgb(palette.background))
    if found is None:
        return ()
    return tuple(lay_plate(canvas, group, *found) for group in groups(bar, label))


def render_card(
    card: Card, layout: Layout, fonts: FontSet, capture: Image.Image | None = None
) -> Image.Image:
    """Draw one 1200×630 card. ``capture`` is a decoded page capture, or None for a title card."""
    return render_detailed(card, layout, fonts, capture, keep_backdrop=False).image
