"""The accent bar and the site label stay legible over any capture, the light busy one above all."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from ogshot.card import Card
from ogshot.contrast import RGB
from ogshot.fonts import FontSet
from ogshot.layouts import Layout, LayoutRegistry
from ogshot.render import render_detailed
from ogshot.samples import CAPTURES

#: The bounds held, on the 10th-percentile worst pixel: WCAG AA for text (the label) and for
#: graphics (the bar, against the pixels next to it).
LABEL_CONTRAST = 4.5
BAR_CONTRAST = 3.0
#: How far around the bar its surroundings are measured.
RING = 6

LAYOUTS_WITH_A_CAPTURE = ("browser", "default", "split")


@cache
def capture(name: str) -> Image.Image:
    return CAPTURES[name]()


def _luminance(pixels: NDArray[np.float64]) -> NDArray[np.float64]:
    s = pixels / 255
    linear = np.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4)
    return np.asarray(linear @ np.array([0.2126, 0.7152, 0.0722]), dtype=np.float64)


def contrast_percentile(colour: RGB, pixels: NDArray[np.float64], q: float = 10) -> float:
    """The contrast ``colour`` keeps with the ``q``-th percentile worst of ``pixels``."""
    own = float(_luminance(np.array(colour, dtype=np.float64)))
    lum = _luminance(pixels.reshape(-1, 3))
    ratio = (np.maximum(lum, own) + 0.05) / (np.minimum(lum, own) + 0.05)
    return float(np.percentile(ratio, q))


def _area(image: Image.Image, rect: tuple[int, int, int, int]) -> NDArray[np.float64]:
    return np.asarray(image.crop(rect).convert("RGB"), dtype=np.float64)


def _ring(image: Image.Image, box: tuple[int, int, int, int]) -> NDArray[np.float64]:
    """The pixels within RING of the bar, the bar's own left out."""
    x, y, w, h = box
    outer = _area(image, (x - RING, y - RING, x + w + RING, y + h + RING)).copy()
    inner = np.zeros(outer.shape[:2], dtype=bool)
    inner[RING : RING + h, RING : RING + w] = True
    return outer[~inner]


def legibility(
    layouts: LayoutRegistry,
    fonts: FontSet,
    layout: str,
    capture_name: str,
    theme: str,
    accent: str = "",
) -> tuple[float | None, float | None]:
    """(label, bar): each one's 10th-percentile contrast on the card, None where absent."""
    spec = layouts.get(layout)
    card = Card(
        title="Ship social cards that load before the crawler gives up",
        subtitle="Typography, caching and captures, explained.",
        site="example.org",
        theme=theme,  # type: ignore[arg-type]
        accent=accent,
    )
    rendered = render_detailed(card, spec, fonts, capture(capture_name))
    label = None
    site = next((p for p in rendered.placed if p.name == "site"), None)
    if site is not None:
        pixels = np.concatenate([_area(rendered.backdrop, r).reshape(-1, 3) for r in site.lines])
        label = contrast_percentile(site.colour, pixels)
    bar = None
    if spec.accent_bar is not None:
        x, y, w, h = spec.accent_bar.box
        accent = rendered.image.getpixel((x + w // 2, y + h // 2))  # the bar as drawn
        bar = contrast_percentile(accent, _ring(rendered.backdrop, spec.accent_bar.box))
    return label, bar


@pytest.mark.parametrize("theme", ["auto", "light", "dark"])
@pytest.mark.parametrize("layout", LAYOUTS_WITH_A_CAPTURE)
def test_the_bar_and_label_stay_legible_over_a_light_busy_capture(
    layouts: LayoutRegistry, fonts: FontSet, layout: str, theme: str
) -> None:
    label, bar = legibility(layouts, fonts, layout, "light-busy", theme)
    assert label is not None and label >= LABEL_CONTRAST, (layout, theme, label)
    assert bar is None or bar >= BAR_CONTRAST, (layout, theme, bar)


@pytest.mark.parametrize("theme", ["auto", "light", "dark"])
@pytest.mark.parametrize("capture_name", sorted(set(CAPTURES) - {"light-busy"}))
@pytest.mark.parametrize("layout", LAYOUTS_WITH_A_CAPTURE)
def test_the_bar_and_label_stay_legible_over_every_sample_capture(
    layouts: LayoutRegistry, fonts: FontSet, layout: str, capture_name: str, theme: str
) -> None:
    label, bar = legibility(layouts, fonts, layout, capture_name, theme)
    assert label is not None and label >= LABEL_CONTRAST, (layout, capture_name, theme, label)
    assert bar is None or bar >= BAR_CONTRAST, (layout, capture_name, theme, bar)


def test_no_plate_where_the_bar_and_label_are_legible_without_one(
    layouts: LayoutRegistry, fonts: FontSet
) -> None:
    # The split layout keeps its bar and label on its own background, beside the capture.
    card = Card(title="T", site="example.org")
    for name in CAPTURES:
        assert render_detailed(card, layouts.get("split"), fonts, capture(name)).plates == ()
    # A title card has no capture to guard against.
    assert render_detailed(card, layouts.get("default"), fonts).plates == ()


def test_a_light_accent_gets_a_plate_it_stands_out_from(
    layouts: LayoutRegistry, fonts: FontSet
) -> None:
    # A pale yellow bar cannot keep 3:1 on a white plate: the plate goes dark instead.
    card = Card(title="T", site="example.org", theme="light", accent="#fde68a")
    rendered = render_detailed(card, layouts.get("default"), fonts, capture("light-busy"))
    assert len(rendered.plates) == 1
    label, bar = legibility(layouts, fonts, "default", "light-busy", "light", accent="#fde68a")
    assert bar is not None and bar >= BAR_CONTRAST
    assert label is not None and label >= LABEL_CONTRAST


def test_every_layout_with_a_capture_is_checked(layouts: LayoutRegistry) -> None:
    shown = {spec.name for spec in layouts if spec.capture is not None}
    assert shown == set(LAYOUTS_WITH_A_CAPTURE)


def test_a_bar_and_label_far_apart_get_a_plate_each(fonts: FontSet) -> None:
    # A layout of one's own may put the bar at the top and the label at the bottom: one plate
    # spanning both would veil the whole card.
    data = Layout.model_validate(
        {
            "capture": {"box": [0, 0, 1200, 630], "scrim": "none"},
            "accent_bar": {"box": [80, 40, 96, 10]},
            "site": {"box": [80, 560, 1040, 40], "max_size": 24, "min_size": 18},
            "title": {"box": [80, 200, 1040, 200], "max_size": 60, "min_size": 30},
            "light": {"background": "#ffffff", "foreground": "#0f172a", "muted": "#475569",
                      "accent": "#4f46e5", "scrim": "#ffffff"},
            "dark": {"background": "#0b1020", "foreground": "#f8fafc", "muted": "#cbd5e1",
                     "accent": "#818cf8"},
        }
    )
    card = Card(title="T", site="example.org", theme="light")
    rendered = render_detailed(card, data, fonts, capture("light-busy"))
    assert len(rendered.plates) == 2
    assert all(bottom - top < 100 for _, top, _, bottom in rendered.plates)
