"""A machine with no fonts: the package's own fonts set every sample script.

``OGSHOT_SYSTEM_FONTS=false`` takes the system's font folders off the search path, which is
what a Mac, a slim container or a CI runner without Debian's Noto packages looks like to ogshot.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import uharfbuzz as hb
from PIL import Image, ImageDraw

from ogshot.card import Card
from ogshot.cli import main
from ogshot.fonts import (
    BUNDLED_DIR,
    CJK,
    EMOJI,
    EMOJI_SIZE,
    FONT_DIR,
    SEARCH_DIRS,
    FontSet,
    search_path,
)
from ogshot.layouts import LayoutRegistry
from ogshot.render import render_detailed
from ogshot.samples import TITLES
from ogshot.settings import Settings
from ogshot.text import clusters
from ogshot.text.clusters import is_neutral
from ogshot.text.setter import Setter

from .imagecompare import ssim
from .sample_glyphs import drawn_clusters


def bare_settings(**extra: object) -> Settings:
    return Settings(_env_file=None, capture="none", system_fonts=False, **extra)  # type: ignore[call-arg]


@cache
def bare() -> FontSet:
    return FontSet.from_settings(bare_settings())


@pytest.fixture(scope="module")
def debian(tmp_path_factory: pytest.TempPathFactory) -> FontSet:
    """The full Debian set without the package's fonts, but for the emoji font: Debian 12's is
    older (2.042), and the pictures redrawn since (👩‍💻) are a difference on purpose. The emoji
    font has tests of its own."""
    emoji = tmp_path_factory.mktemp("emoji")
    (emoji / "NotoColorEmoji.ttf").symlink_to(BUNDLED_DIR / "NotoColorEmoji.ttf")
    return FontSet.from_dirs([emoji, *SEARCH_DIRS])


def test_the_bare_set_reads_nothing_outside_the_package() -> None:
    fonts = bare()
    assert fonts.dirs == (BUNDLED_DIR,)
    for face in fonts.faces:
        for path in face.files.values():
            assert path.is_relative_to(FONT_DIR), path


def test_the_bundled_fonts_come_with_their_licence() -> None:
    licence = (BUNDLED_DIR / "OFL.txt").read_text()
    assert "SIL Open Font License" in licence and "Noto" in licence


@pytest.mark.parametrize(("label", "title"), TITLES, ids=[label for label, _ in TITLES])
def test_every_sample_script_renders_with_real_glyphs(
    label: str, title: str, layouts: LayoutRegistry
) -> None:
    fonts = bare()
    assert fonts.missing(title) == {}, label
    card = Card(title=title, subtitle="Fast, careful social preview images", site="example.org")
    result = render_detailed(card, layouts.get("default"), fonts)
    drawn = drawn_clusters(fonts, result)
    # Every drawn character is in the font chosen for it: no box anywhere.
    assert [(c, f) for c, f, covered in drawn if not covered] == [], label
    assert {f for _, f, _ in drawn} <= set(fonts.names)
    assert len(drawn) >= 10


@pytest.mark.parametrize(("label", "title"), TITLES, ids=[label for label, _ in TITLES])
def test_a_bare_card_matches_the_card_drawn_with_debians_fonts(
    label: str, title: str, layouts: LayoutRegistry, debian: FontSet
) -> None:
    card = Card(title=title, subtitle="Fast, careful social preview images", site="example.org")
    layout = layouts.get("default")
    ours = render_detailed(card, layout, bare()).image
    theirs = render_detailed(card, layout, debian).image
    half = (600, 315)
    score = ssim(ours.resize(half, Image.Resampling.BOX), theirs.resize(half, Image.Resampling.BOX))
    # Measured 0.995 (Chinese, Japanese) to 1.0; Korean was 0.94 while the CJK subset had no
    # space of its own.
    assert score >= 0.985, (label, score)


@pytest.mark.parametrize(("label", "title"), TITLES, ids=[label for label, _ in TITLES])
def test_bare_and_debian_sets_give_every_cluster_the_same_font(
    label: str, title: str, debian: FontSet
) -> None:
    """Spaces and punctuation stay in the font of the run around them when it has them: the
    package's subsets must have them wherever Debian's full fonts do, or a Korean title's
    spaces (say) are set in another font, at another width, on a machine without Debian's."""
    ours, theirs = Setter(bare(), "bold", title), Setter(debian, "bold", title)
    assert ours.parts == theirs.parts
    assert ours.picks == theirs.picks, (label, ours.parts)


def test_cjk_text_keeps_its_spaces_and_punctuation_in_the_cjk_font(debian: FontSet) -> None:
    for title in ("소셜 네트워크를 위한 카드", "「設定」と“引用”…", "价格：100元（含税）— 详情"):
        setter = Setter(bare(), "bold", title)
        neutral = [(c, f) for c, f in zip(setter.parts, setter.picks, strict=True) if is_neutral(c)]
        assert neutral and all(f == CJK for _, f in neutral), (title, neutral)
        # ...with the glyphs each face's shaping picks for them (the Korean face's space is its
        # own, wider one, reached by substitution rather than by the character map).
        region = setter.region
        widths = [fonts.advance(CJK, "bold", title, False, region) for fonts in (bare(), debian)]
        assert widths[0] == pytest.approx(widths[1], rel=1e-4), (title, widths)


def test_font_dirs_come_first_and_override_a_bundled_family(tmp_path: Path) -> None:
    dejavu = next(p for d in SEARCH_DIRS if d.is_dir() for p in d.rglob("DejaVuSans.ttf"))
    (tmp_path / "NotoSansHebrew-Regular.ttf").symlink_to(dejavu)
    fonts = FontSet.from_settings(bare_settings(font_dirs=str(tmp_path)))
    assert fonts.dirs == (tmp_path, BUNDLED_DIR)
    hebrew = next(face for face in fonts.faces if face.name == "NotoSansHebrew")
    assert hebrew.files["regular"].parent == tmp_path


def test_search_order_is_added_folders_then_package_then_system(tmp_path: Path) -> None:
    assert search_path([tmp_path]) == (tmp_path, BUNDLED_DIR, *SEARCH_DIRS)
    assert search_path(system=False) == (BUNDLED_DIR,)


def test_characters_no_font_has_are_logged_with_their_script(
    caplog: pytest.LogCaptureFixture, layouts: LayoutRegistry
) -> None:
    fonts = bare()
    title = "Tibetan ཀཁག and Cherokee ᎠᎡ"
    assert fonts.missing(title) == {"Tibetan": "ཀཁག", "Cherokee": "ᎠᎡ"}
    with caplog.at_level(logging.WARNING, logger="ogshot.fonts"):
        render_detailed(Card(title=title), layouts.get("default"), fonts)
    message = " ".join(r.getMessage() for r in caplog.records if r.name == "ogshot.fonts")
    assert "Tibetan: ཀ ཁ ག" in message and "Cherokee: Ꭰ Ꭱ" in message


def test_a_covered_title_logs_nothing(
    caplog: pytest.LogCaptureFixture, layouts: LayoutRegistry
) -> None:
    with caplog.at_level(logging.WARNING, logger="ogshot.fonts"):
        for _, title in TITLES:
            render_detailed(Card(title=title), layouts.get("default"), bare())
    assert not [r for r in caplog.records if r.name == "ogshot.fonts"]


def test_fonts_command_prints_coverage_by_script(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OGSHOT_SYSTEM_FONTS", "false")
    assert main(["fonts"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    for script in ("Arabic", "Hebrew", "Devanagari", "Thai", "Hangul", "Georgian", "Ethiopic"):
        assert script in rows, script
    assert float(rows["Hebrew"].split("%")[0].split()[-1]) >= 95
    # Counted with the current Unicode database: characters newer than Python's own count too.
    covered, assigned = rows["Devanagari"].split()[1].split("/")
    assert int(assigned) > 154 >= int(covered)  # Devanagari Extended-A (Unicode 15) is there
    assert "Garay" in out.split("no font for")[1]  # a script of Unicode 16
    assert str(BUNDLED_DIR) in out
    assert "no font for" in out and "Tibetan" in out.split("no font for")[1]


#: Emoji sequences drawn as one picture by a current Noto Color Emoji (2.051, Unicode 17).
#: The families are Google's design since Emoji 15.1 (grey silhouettes on a tile, as Unicode
#: recommends), one glyph each; the others are new in Emoji 16 and 17 and colourful.
SEQUENCES = {
    "family": "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "family-adult-adult-child": "\U0001f9d1\u200d\U0001f9d1\u200d\U0001f9d2",
    "ballet-dancers-17": "\U0001f9d1\u200d\U0001fa70",
    "flag-sark-16": "\U0001f1e8\U0001f1f6",
    "face-with-bags-under-eyes-16": "\U0001fae9",
    "leafless-tree-16": "\U0001fabe",
    "distorted-face-17": "\U0001faea",
}


def _emoji_face() -> Path:
    return next(face for face in bare().faces if face.name == EMOJI).files["regular"]


@pytest.mark.parametrize("sequence", SEQUENCES.values(), ids=SEQUENCES.keys())
def test_emoji_sequences_are_one_glyph_of_the_bundled_emoji_font(sequence: str) -> None:
    path = _emoji_face()
    assert path.is_relative_to(BUNDLED_DIR)
    assert bare().covers(EMOJI, sequence) and bare().pick(sequence) == EMOJI
    font = hb.Font(hb.Face(hb.Blob.from_file_path(str(path))))
    buf = hb.Buffer()
    buf.add_str(sequence)
    buf.guess_segment_properties()
    hb.shape(font, buf)
    # One picture for the whole sequence: not its people side by side, not a missing glyph.
    assert [info.codepoint != 0 for info in buf.glyph_infos] == [True], sequence


def _coloured_share(sequence: str) -> float:
    """Share of the opaque pixels of ``sequence`` drawn by the bundled emoji font that are
    clearly coloured (channels more than 48 apart), as the renderer draws emoji."""
    font = bare().font(EMOJI, "regular", EMOJI_SIZE)
    ascent, descent = font.getmetrics()
    image = Image.new("RGBA", (2 * EMOJI_SIZE, ascent + descent), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((0, ascent), sequence, font=font, embedded_color=True, anchor="ls")
    pixels = np.asarray(image).astype(int)
    opaque = pixels[..., :3][pixels[..., 3] > 128]
    assert len(opaque) > 1000, sequence  # something is drawn
    return float(((opaque.max(axis=1) - opaque.min(axis=1)) > 48).mean())


def test_emoji_new_in_unicode_16_and_17_are_drawn_in_colour_on_a_bare_card(
    layouts: LayoutRegistry,
) -> None:
    new = [SEQUENCES[k] for k in SEQUENCES if k.endswith(("-16", "-17"))]
    title = "Release notes " + " ".join(new)
    assert bare().missing(title) == {}
    result = render_detailed(Card(title=title), layouts.get("default"), bare())
    drawn = [
        c
        for placed in result.placed
        for line in placed.fitted.lines
        for run in line.runs
        if run.font == EMOJI
        for c in clusters(run.text)
        if not c.isspace()
    ]
    assert sorted(drawn) == sorted(new)
    for sequence in new:
        assert _coloured_share(sequence) > 0.3, sequence
