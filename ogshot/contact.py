"""The contact sheet: every layout × sample titles in many scripts, on one image.

``ogshot contact-sheet -o sheet.jpg`` draws it; the README shows it. Rows cycle through a title
card and the four synthetic captures (light page, dark page, noisy image, busy white page), so
each layout is seen with and without a capture, in both themes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from PIL import Image, ImageDraw

from .card import Card
from .fonts import FontSet
from .layouts import HEIGHT, WIDTH, LayoutRegistry
from .render import render_card
from .samples import CAPTURES, TITLES

_ROW_CAPTURES: tuple[str | None, ...] = (None, "light", "dark", "noisy", "light-busy")


def contact_sheet(
    layouts: LayoutRegistry,
    fonts: FontSet,
    titles: Sequence[tuple[str, str]] = TITLES,
    thumb_width: int = 400,
) -> Image.Image:
    """A grid: one column per layout, one row per sample title."""
    names = layouts.names()
    thumb = (thumb_width, round(thumb_width * HEIGHT / WIDTH))
    label_w, header_h, gap = 150, 44, 8
    sheet = Image.new(
        "RGB",
        (
            label_w + len(names) * (thumb[0] + gap),
            header_h + len(titles) * (thumb[1] + gap),
        ),
        (24, 24, 27),
    )
    draw = ImageDraw.Draw(sheet)
    label_font = fonts.get("medium", 18)
    for col, name in enumerate(names):
        draw.text(
            (label_w + col * (thumb[0] + gap) + 4, header_h // 2),
            name,
            font=label_font,
            fill=(244, 244, 245),
            anchor="lm",
        )
    captures = {key: make() for key, make in CAPTURES.items()}
    for row, (label, title) in enumerate(titles):
        capture_name = _ROW_CAPTURES[row % len(_ROW_CAPTURES)]
        capture = captures[capture_name] if capture_name else None
        top = header_h + row * (thumb[1] + gap)
        draw.text((12, top + thumb[1] // 2 - 12), label, font=label_font, fill=(244, 244, 245))
        draw.text(
            (12, top + thumb[1] // 2 + 12),
            capture_name or "no capture",
            font=fonts.get("regular", 14),
            fill=(161, 161, 170),
        )
        theme: Literal["auto", "light"] = "light" if row % 3 == 1 else "auto"
        card = Card(
            title=title,
            subtitle="Fast, careful social preview images",
            site="example.org",
            theme=theme,
            accent=("#e11d48", "", "#0d9488", "")[row % 4],
        )
        for col, name in enumerate(names):
            image = render_card(card, layouts.get(name), fonts, capture)
            sheet.paste(
                image.resize(thumb, Image.Resampling.LANCZOS),
                (label_w + col * (thumb[0] + gap), top),
            )
    return sheet
