from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageChops, ImageStat

from ogshot.card import Card
from ogshot.contrast import paint
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.render import render_card, render_detailed
from ogshot.samples import CAPTURES, TITLES

from .conftest import decode
from .imagecompare import worst_tile

GOLDEN = Path(__file__).parent / "golden"
LAYOUTS = ("browser", "card", "default", "split")
HALF = (600, 315)


@cache
def capture(name: str | None) -> Image.Image | None:
    return CAPTURES[name]() if name else None


def golden_cases() -> dict[str, tuple[str, Card, str | None]]:
    cases: dict[str, tuple[str, Card, str | None]] = {
        "default-dark": (
            "default",
            Card(
                title="How we render social cards in milliseconds",
                subtitle="Typography, caching and captures, explained.",
                site="ogshot.dev",
            ),
            None,
        ),
        "default-light": (
            "default",
            Card(title="Hello", site="example.org", theme="light", accent="#e11d48"),
            None,
        ),
    }
    for layout in LAYOUTS:
        card = Card(
            title="Typography for every script: العربية, עברית, 中文 🚀",
            subtitle="Fast, careful social preview images",
            site="example.org",
        )
        cases[f"{layout}-title-card"] = (layout, card, None)
        cases[f"{layout}-light-page"] = (layout, card, "light")
    return cases


GOLDEN_CASES = golden_cases()


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0–255."""
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3


#: The least SSIM any tile of an eighth of the width and a quarter of the height may keep. A
#: FreeType build's anti-aliasing moves tiles to about 0.99; a missing subtitle or one word
#: reversed drops its tiles below 0.9.
TILE_SSIM = 0.98


def matches_golden(image: Image.Image, golden: Image.Image) -> bool:
    """Whether a half-size card is the golden one: close on average and in every tile."""
    return difference(image, golden) < 1.5 and worst_tile(image, golden) >= TILE_SSIM


def _half(
    card: Card, layout: str, capture_name: str | None, layouts: LayoutRegistry, fonts: FontSet
) -> Image.Image:
    image = render_card(card, layouts.get(layout), fonts, capture(capture_name))
    return image.resize(HALF, Image.Resampling.BOX)


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_images(name: str, layouts: LayoutRegistry, fonts: FontSet) -> None:
    layout, card, capture_name = GOLDEN_CASES[name]
    image = render_card(card, layouts.get(layout), fonts, capture(capture_name))
    assert image.size == (1200, 630) and image.mode == "RGB"
    # Stored at half size: enough to catch a layout change, small enough to keep in the repo.
    small = image.resize(HALF, Image.Resampling.BOX)
    path = GOLDEN / f"{name}.png"
    if os.environ.get("OGSHOT_UPDATE_GOLDEN"):
        small.save(path, optimize=True)
    golden = Image.open(path)
    assert golden.size == HALF
    assert matches_golden(small, golden), (difference(small, golden), worst_tile(small, golden))


_WITH_SUBTITLE = sorted(name for name, case in GOLDEN_CASES.items() if case[1].subtitle)
_WITH_HEBREW = sorted(name for name, case in GOLDEN_CASES.items() if "עברית" in case[1].title)


@pytest.mark.parametrize("name", _WITH_SUBTITLE)
def test_golden_comparison_fails_when_the_subtitle_is_deleted(
    name: str, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    layout, card, capture_name = GOLDEN_CASES[name]
    damaged = _half(card.model_copy(update={"subtitle": ""}), layout, capture_name, layouts, fonts)
    assert not matches_golden(damaged, Image.open(GOLDEN / f"{name}.png"))


@pytest.mark.parametrize("name", _WITH_HEBREW)
def test_golden_comparison_fails_when_one_hebrew_word_is_reversed(
    name: str, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    layout, card, capture_name = GOLDEN_CASES[name]
    title = card.title.replace("עברית", "עברית"[::-1])
    damaged = _half(card.model_copy(update={"title": title}), layout, capture_name, layouts, fonts)
    assert not matches_golden(damaged, Image.open(GOLDEN / f"{name}.png"))


def test_the_damage_cases_exist() -> None:
    assert len(_WITH_SUBTITLE) >= 8 and len(_WITH_HEBREW) >= 8


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
    ).resize(HALF, Image.Resampling.BOX)
    assert not matches_golden(other, golden)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_accent_and_theme_change_pixels(
    layout: str, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    spec = layouts.get(layout)
    dark = render_card(Card(title="T", theme="dark"), spec, fonts)
    light = render_card(Card(title="T", theme="light"), spec, fonts)
    assert (
        ImageStat.Stat(light.convert("L")).mean[0] > ImageStat.Stat(dark.convert("L")).mean[0] + 60
    )
    red = render_card(Card(title="T", theme="dark", accent="#ff0000"), spec, fonts)
    blue = render_card(Card(title="T", theme="dark", accent="#0000ff"), spec, fonts)
    assert difference(red, blue) > 0.05


def test_accent_bar_takes_the_accent(layouts: LayoutRegistry, fonts: FontSet) -> None:
    layout = layouts.get("default")
    bar = layout.accent_bar
    assert bar is not None
    red = render_card(Card(title="T", accent="#ff0000"), layout, fonts)
    x, y, w, h = bar.box
    assert red.getpixel((x + w // 2, y + h // 2)) == (255, 0, 0)


def _luminance(rgb: tuple[int, int, int]) -> float:
    def lin(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(rgb[0]) + 0.7152 * lin(rgb[1]) + 0.0722 * lin(rgb[2])


def measured_contrast(
    image: Image.Image, backdrop: Image.Image, colour: tuple[int, int, int]
) -> tuple[float, int]:
    """Lowest contrast between the text colour and the backdrop under every fully inked pixel."""
    ink = ImageChops.difference(image, Image.new("RGB", image.size, colour)).convert("L")
    mask = ink.point(lambda v: 255 if v == 0 else 0)
    # Pixels the backdrop already had in the text colour are no ink.
    same = ImageChops.difference(backdrop, Image.new("RGB", image.size, colour)).convert("L")
    mask = ImageChops.multiply(mask, same.point(lambda v: 255 if v > 0 else 0))
    count = int(ImageStat.Stat(mask).sum[0] // 255)
    if count == 0:
        return 21.0, 0
    sentinel = Image.new("RGB", image.size, colour)
    under = Image.composite(backdrop, sentinel, mask)
    colours = under.getcolors(maxcolors=image.width * image.height) or []
    lt = _luminance(colour)
    worst = 21.0
    for _, rgb in colours:
        if rgb == colour:
            continue
        lb = _luminance(rgb)
        hi, lo = max(lt, lb), min(lt, lb)
        worst = min(worst, (hi + 0.05) / (lo + 0.05))
    return worst, count


@pytest.mark.parametrize("capture_name", [None, "light", "dark", "noisy"])
@pytest.mark.parametrize("theme", ["auto", "light", "dark"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_text_contrast_meets_wcag_on_any_capture(
    layout: str, theme: str, capture_name: str | None, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    card = Card(
        title="Legible on anything: Ünïcödé, العربية, 中文",
        subtitle="Subtitles and site labels too",
        site="example.org",
        theme=theme,  # type: ignore[arg-type]
        accent="#fde047",  # a pale accent: the hardest for text drawn in it
    )
    result = render_detailed(card, layouts.get(layout), fonts, capture(capture_name))
    assert result.placed
    for placed in result.placed:
        worst, inked = measured_contrast(result.image, result.backdrop, placed.colour)
        assert inked > 20, placed.name
        assert worst >= 4.5, (placed.name, worst, placed.colour, placed.scrim)


@pytest.mark.parametrize("label", [label for label, _ in TITLES] + ["long", "ws-word"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_title_stays_inside_its_box(
    layout: str, label: str, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    titles = dict(TITLES) | {"long": "Supercalifragilistic " * 14, "ws-word": "W" * 300}
    spec = layouts.get(layout)
    card = Card(title=titles[label], site="", theme="dark")
    result = render_detailed(card, spec, fonts, capture("noisy"))
    diff = ImageChops.difference(result.image, result.backdrop).convert("L")
    bbox = diff.point(lambda v: 255 if v > 0 else 0).getbbox()
    assert bbox is not None
    x, y, w, h = spec.title.box
    left, top, right, bottom = bbox
    assert left >= x and right <= x + w and top >= y and bottom <= y + h


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("capture_name", [None, "light", "dark", "noisy"])
def test_every_layout_works_with_and_without_a_capture(
    layout: str, capture_name: str | None, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    card = Card(title="A title", subtitle="A subtitle", site="example.org")
    image = render_card(card, layouts.get(layout), fonts, capture(capture_name))
    assert image.size == (1200, 630) and image.mode == "RGB"
    if capture_name and layouts.get(layout).capture is not None:
        bare = render_card(card, layouts.get(layout), fonts, None)
        assert difference(image, bare) > 2


def test_api_caps_the_title_and_renders_every_script(client: TestClient) -> None:
    for _, title in TITLES:
        for template in LAYOUTS:
            response = client.get("/og.png", params={"title": title[:300], "template": template})
            assert response.status_code == 200, (title, template)
            assert decode(response.content).size == (1200, 630)
    assert client.get("/og.png", params={"title": "x" * 300}).status_code == 200
    too_long = client.get("/og.png", params={"title": "x" * 301})
    assert too_long.status_code == 422
    assert too_long.json()["error"] == "invalid_parameter"


def test_contact_sheet_command_draws_every_layout(tmp_path: Path) -> None:
    from ogshot.cli import main

    out = tmp_path / "sheet.png"
    assert main(["contact-sheet", "-o", str(out), "--width", "120"]) == 0
    with Image.open(out) as sheet:
        width, height = sheet.size
    columns = (width - 150) // (120 + 8)
    rows = (height - 44) // (63 + 8)
    assert columns == len(LAYOUTS) and rows == len(TITLES)


@pytest.mark.parametrize("mask_kind", ["gradient", "empty", "full", "corner"])
def test_paint_lays_the_same_pixels_as_pillow_paste(mask_kind: str) -> None:
    base = Image.effect_noise((160, 90), 50).convert("RGB")
    mask = Image.new("L", (100, 60), 0)
    if mask_kind == "gradient":
        mask = Image.linear_gradient("L").resize((100, 60))
    elif mask_kind == "full":
        mask.paste(255, (0, 0, 100, 60))
    elif mask_kind == "corner":
        mask.paste(200, (70, 40, 100, 60))
    expected = base.copy()
    expected.paste((200, 30, 90), (30, 20, 130, 80), mask)
    painted = base.copy()
    paint(painted, (200, 30, 90), (30, 20), mask)
    assert painted.tobytes() == expected.tobytes()


def test_title_cards_choose_the_same_colours_without_measuring_each_line(
    layouts: LayoutRegistry, fonts: FontSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ogshot.render as render_module

    cards = [
        Card(title=title, subtitle="A subtitle under it", site="example.org", theme=theme)
        for _, title in TITLES[:6]
        for theme in ("light", "dark")
    ]
    cards.append(Card(title="Accent as text", accent="#fefefe", theme="light"))
    fast = [
        [(p.name, p.colour, p.scrim) for p in render_detailed(c, layout, fonts).placed]
        for layout in layouts
        for c in cards
    ]
    monkeypatch.setattr(render_module, "box_extremes", lambda *args: None)
    measured = [
        [(p.name, p.colour, p.scrim) for p in render_detailed(c, layout, fonts).placed]
        for layout in layouts
        for c in cards
    ]
    assert fast == measured
