from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from ogshot.card import Card
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.render import contrast_ratio, render_card

GOLDEN = Path(__file__).parent / "golden"

GOLDEN_CARDS = {
    "default-dark": Card(
        title="How we render social cards in milliseconds",
        subtitle="Typography, caching and captures, explained.",
        site="ogshot.dev",
    ),
    "default-light": Card(title="Hello", site="example.org", theme="light", accent="#e11d48"),
}


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0–255."""
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3


@pytest.mark.parametrize("name", sorted(GOLDEN_CARDS))
def test_golden_images(name: str, layouts: LayoutRegistry, fonts: FontSet) -> None:
    card = GOLDEN_CARDS[name]
    image = render_card(card, layouts.get(card.template), fonts)
    path = GOLDEN / f"{name}.png"
    if os.environ.get("OGSHOT_UPDATE_GOLDEN"):
        image.save(path)
    golden = Image.open(path)
    assert golden.size == image.size == (1200, 630)
    # Tolerance absorbs anti-aliasing differences between FreeType builds, not layout changes.
    assert difference(image, golden) < 1.0


def test_a_different_title_is_not_within_tolerance(layouts: LayoutRegistry, fonts: FontSet) -> None:
    golden = Image.open(GOLDEN / "default-dark.png")
    other = render_card(
        Card(
            title="Something else entirely",
            subtitle="Typography, caching and captures, explained.",
            site="ogshot.dev",
        ),
        layouts.get("default"),
        fonts,
    )
    assert difference(other, golden) >= 1.0


def test_accent_and_theme_change_pixels(layouts: LayoutRegistry, fonts: FontSet) -> None:
    layout = layouts.get("default")
    dark = render_card(Card(title="T", theme="dark"), layout, fonts)
    light = render_card(Card(title="T", theme="light"), layout, fonts)
    assert (
        ImageStat.Stat(light.convert("L")).mean[0] > ImageStat.Stat(dark.convert("L")).mean[0] + 100
    )
    bar = layout.accent_bar
    assert bar is not None
    red = render_card(Card(title="T", accent="#ff0000"), layout, fonts)
    x, y, w, h = bar.box
    assert red.getpixel((x + w // 2, y + h // 2)) == (255, 0, 0)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_palette_text_contrast_meets_wcag(theme: str, layouts: LayoutRegistry) -> None:
    from ogshot.render import hex_rgb

    for layout in layouts:
        palette = layout.palette(theme)  # type: ignore[arg-type]
        for colour in (palette.foreground, palette.muted):
            for bg in (palette.background, palette.background_end or palette.background):
                assert contrast_ratio(hex_rgb(colour), hex_rgb(bg)) >= 4.5, (
                    layout.name,
                    colour,
                    bg,
                )


def test_long_title_stays_inside_its_box(layouts: LayoutRegistry, fonts: FontSet) -> None:
    layout = layouts.get("default")
    base = render_card(Card(title="x", theme="dark", site="s"), layout, fonts)
    long = render_card(
        Card(title="Supercalifragilistic " * 14, theme="dark", site="s"), layout, fonts
    )
    x, y, w, h = layout.title.box
    diff = ImageChops.difference(base, long).convert("L").point(lambda v: 255 if v > 24 else 0)
    bbox = diff.getbbox()
    assert bbox is not None
    left, top, right, bottom = bbox
    assert left >= x and right <= x + w and top >= y and bottom <= y + h
