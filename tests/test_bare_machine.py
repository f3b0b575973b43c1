"""A machine with no fonts: the package's own fonts set every sample script.

``OGSHOT_SYSTEM_FONTS=false`` takes the system's font folders off the search path, which is
what a Mac, a slim container or a CI runner without Debian's Noto packages looks like to ogshot.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

import pytest
from PIL import Image

from ogshot.card import Card
from ogshot.cli import main
from ogshot.fonts import BUNDLED_DIR, FONT_DIR, SEARCH_DIRS, FontSet, search_path
from ogshot.layouts import LayoutRegistry
from ogshot.render import render_detailed
from ogshot.samples import TITLES
from ogshot.settings import Settings
from ogshot.text import clusters

from .imagecompare import ssim


def bare_settings(**extra: object) -> Settings:
    return Settings(_env_file=None, capture="none", system_fonts=False, **extra)  # type: ignore[call-arg]


@cache
def bare() -> FontSet:
    return FontSet.from_settings(bare_settings())


@cache
def debian() -> FontSet:
    """The full Debian set alone, without the package's fonts."""
    return FontSet.from_dirs(list(SEARCH_DIRS))


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
    by_name = {face.name: face for face in fonts.faces}
    drawn = 0
    for placed in result.placed:
        for line in placed.fitted.lines:
            for run in line.runs:
                for cluster in clusters(run.text):
                    if cluster.isspace() or cluster == "…":
                        continue
                    # Every drawn character is in the font chosen for it: no box anywhere.
                    assert fonts.covers(run.font, cluster), (label, cluster, run.font)
                    assert run.font in by_name
                    drawn += 1
    assert drawn >= 10


@pytest.mark.parametrize(("label", "title"), TITLES, ids=[label for label, _ in TITLES])
def test_a_bare_card_matches_the_card_drawn_with_debians_fonts(
    label: str, title: str, layouts: LayoutRegistry
) -> None:
    card = Card(title=title, subtitle="Fast, careful social preview images", site="example.org")
    layout = layouts.get("default")
    ours = render_detailed(card, layout, bare()).image
    theirs = render_detailed(card, layout, debian()).image
    half = (600, 315)
    score = ssim(ours.resize(half, Image.Resampling.BOX), theirs.resize(half, Image.Resampling.BOX))
    # Korean is the furthest (0.94): the package's CJK subset has no ASCII, so the spaces
    # between Korean words are Inter's rather than the CJK font's.
    assert score >= 0.93, (label, score)


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
    assert "100.0%" in rows["Hebrew"] or "99" in rows["Hebrew"]
    assert str(BUNDLED_DIR) in out
    assert "no font for" in out and "Tibetan" in out.split("no font for")[1]
