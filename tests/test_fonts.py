from __future__ import annotations

from pathlib import Path

import pytest
from PIL import ImageFont

from ogshot.fonts import (
    CJK,
    EMOJI,
    FONT_DIR,
    SEARCH_DIRS,
    FontSet,
    Weight,
    cjk_region,
    search_path,
    wants_emoji,
)
from ogshot.layouts import LayoutRegistry
from ogshot.samples import TITLES
from ogshot.text import clusters

SYSTEM = Path("/usr/share/fonts")


@pytest.mark.parametrize(
    ("cluster", "family"),
    [
        ("A", "Inter"),
        ("é", "Inter"),
        ("ж", "Inter"),
        ("λ", "Inter"),
        ("م", "NotoSansArabic"),
        ("ש", "NotoSansHebrew"),
        ("क्ष", "NotoSansDevanagari"),
        ("ก", "NotoSansThai"),
        ("ქ", "NotoSansGeorgian"),
        ("中", CJK),
        ("あ", CJK),
        ("한", CJK),
        ("😀", EMOJI),
        ("🇫🇷", EMOJI),
        ("👨\u200d👩\u200d👧", EMOJI),
        ("❤\ufe0f", EMOJI),
        ("©", "Inter"),
        ("7", "Inter"),
    ],
)
def test_each_script_goes_to_a_font_that_has_it(fonts: FontSet, cluster: str, family: str) -> None:
    assert fonts.pick(cluster) == family
    assert fonts.covers(family, cluster)


def test_inter_ships_inside_the_package(fonts: FontSet) -> None:
    assert fonts.names[0] == "Inter"
    assert fonts.primary.files["bold"].parent == FONT_DIR / "inter"


def test_system_dirs_are_the_standard_ones() -> None:
    home = str(Path.home())
    assert SEARCH_DIRS[:2] == (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
    assert all(str(d).startswith(home) for d in SEARCH_DIRS[2:])


def test_no_sample_cluster_falls_back_to_a_box(fonts: FontSet) -> None:
    for label, title in TITLES:
        for cluster in clusters(title):
            family = fonts.pick(cluster)
            if fonts.has_glyph(cluster[0]):
                assert ord(cluster[0]) in next(
                    f.coverage for f in fonts.faces if f.name == family
                ), (label, cluster, family)


def test_missing_family_degrades_to_the_next_font_that_has_the_glyph(tmp_path: Path) -> None:
    # No Noto Sans Arabic here: Arabic falls to DejaVu Sans, the next font of the chain with it.
    for name in ("NotoSans-Regular.ttf", "DejaVuSans.ttf"):
        (tmp_path / name).symlink_to(next(SYSTEM.rglob(name)))
    small = FontSet.from_dirs([tmp_path])
    assert small.names == ["Inter", "NotoSans", "DejaVuSans"]
    assert small.pick("م") == "DejaVuSans"
    assert small.covers("DejaVuSans", "م")
    # Thai is in none of these fonts: no font to fall to, so the primary font is kept.
    assert not small.has_glyph("ก")
    assert small.pick("ก") == "Inter"


def test_version_reflects_the_fonts_in_use(tmp_path: Path, fonts: FontSet) -> None:
    bare = FontSet.from_dirs([tmp_path])
    assert bare.names == ["Inter"]
    assert bare.version != fonts.version
    assert FontSet.from_dirs(list(search_path())).version == fonts.version
    assert len(fonts.version) == 16


def test_default_is_loaded_once() -> None:
    assert FontSet.default() is FontSet.default()


@pytest.mark.parametrize(
    ("text", "region"),
    [("東京タワーの夜", "jp"), ("서울의 밤", "kr"), ("北京的夜晚", "sc"), ("Hello", "sc")],
)
def test_cjk_region_follows_the_text(text: str, region: str) -> None:
    assert cjk_region(text) == region


@pytest.mark.parametrize(
    ("cluster", "emoji"),
    [("😀", True), ("☺\ufe0f", True), ("1\ufe0f\u20e3", True), ("©", False), ("1", False)],
)
def test_emoji_presentation(cluster: str, emoji: bool) -> None:
    assert wants_emoji(cluster) is emoji


def test_emoji_font_only_at_its_bitmap_size(fonts: FontSet) -> None:
    assert fonts.font(EMOJI, "bold", 40).size == 109


@pytest.mark.parametrize("weight", ["regular", "bold"])
@pytest.mark.parametrize("size", [24, 57, 96])
def test_measured_advances_agree_with_what_pillow_draws(
    fonts: FontSet, weight: Weight, size: int
) -> None:
    # Wrapping and alignment use these widths; drawing uses Pillow's shaping of the same text.
    samples = [(t, fonts.pick(clusters(t)[0])) for t in ADVANCE_SAMPLES]
    for text, family in samples:
        rtl = family in ("NotoSansArabic", "NotoSansHebrew")
        region = cjk_region(text)
        font = fonts.font(family, weight, size, region)
        drawn = font.getlength(text, direction="rtl" if rtl else "ltr")
        measured = fonts.advance(family, weight, text, rtl, region) * size
        assert measured == pytest.approx(drawn, abs=0.15), (text, family)


ADVANCE_SAMPLES = [
    "Ship social cards",
    "AVATAR To Wá",
    "Привет, мир",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "東京の天気は晴れ",
    "서울 날씨",
]


def test_advances_are_kept_within_a_bound(fonts: FontSet) -> None:
    other = FontSet.from_dirs([])
    for i in range(25_000):
        other.advance(other.primary.name, "regular", f"word{i}", False)
    assert 0 < len(other._advances) <= 20_000
    long = "x" * 500
    other.advance(other.primary.name, "regular", long, False)
    assert not any(key[-1] == long for key in other._advances)


def test_without_raqm_cards_still_render_unshaped(
    monkeypatch: pytest.MonkeyPatch, layouts: LayoutRegistry
) -> None:
    # Pillow without libraqm (libfribidi missing) refuses any text direction: a degraded
    # machine must still answer with a card, not an error.
    import ogshot.fonts as fonts_module
    from ogshot.card import Card
    from ogshot.render import render_card

    monkeypatch.setattr(fonts_module, "layout_engine", lambda: ImageFont.Layout.BASIC)
    basic = FontSet.from_dirs([])
    assert not basic.shapes
    image = render_card(
        Card(title="Unshaped but legible", site="example.org"), layouts.get("default"), basic
    )
    assert image.size == (1200, 630)
    assert image.getextrema() != ((0, 0), (0, 0), (0, 0))
    assert basic.advance(basic.primary.name, "bold", "Unshaped", False) > 0
