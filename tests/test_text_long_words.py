"""A word wider than the line: cut into even pieces, at the largest size at which they fit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import ImageFont

from ogshot.fonts import FontSet
from ogshot.text import Setter, clusters, fit

SUPER = "Supercalifragilisticexpialidocious" * 4
GERMAN = "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft"
TOKEN = "sha256-3f2a9c1be07d44a8b6e5f0c2d9a17e3b8c4f6a0d2e9b7c1a5f3e8d0b4c6a2f9e1d7b3a5c"

#: The boxes of the split layout's title (narrow, five lines) and the default layout's (wide).
SPLIT = dict(width=528, height=300, max_size=64, min_size=30, max_lines=5, line_height=1.12)
DEFAULT = dict(width=1040, height=300, max_size=80, min_size=40, max_lines=3, line_height=1.12)

CASES = [
    pytest.param(SUPER, SPLIT, id="supercalifragilistic-x4-split"),
    pytest.param(SUPER, DEFAULT, id="supercalifragilistic-x4-default"),
    pytest.param(GERMAN, SPLIT, id="german-compound-split"),
    pytest.param(GERMAN, DEFAULT, id="german-compound-default"),
    pytest.param(TOKEN, SPLIT, id="token-split"),
    pytest.param(TOKEN, DEFAULT, id="token-default"),
]


def _pieces_needed(font: ImageFont.FreeTypeFont, text: str, width: float) -> int:
    """The fewest lines ``text`` takes when cut between clusters: greedy is optimal for that.

    Measured with Pillow (RAQM), independently of the setter's own widths.
    """
    parts = clusters(text)
    count, start = 0, 0
    while start < len(parts):
        end = start + 1
        while end < len(parts) and font.getlength("".join(parts[start : end + 1])) <= width:
            end += 1
        count, start = count + 1, end
    return count


@pytest.mark.parametrize(("text", "box"), CASES)
def test_a_long_word_breaks_evenly_at_the_largest_size_that_fits(
    fonts: FontSet, text: str, box: dict[str, float]
) -> None:
    fitted = fit(text, fonts=fonts, weight="bold", **box)  # type: ignore[arg-type]
    assert not fitted.truncated
    # Cut between clusters, and nothing added at the cuts (no hyphen: they are not syllables).
    assert "".join(line.text for line in fitted.lines) == text
    assert len(fitted.lines) >= 2
    widths = [line.width for line in fitted.lines]
    # Even: every line within one em of every other (pieces end between clusters, so they can
    # only be as even as a letter's width); in particular no stub of a last line.
    assert max(widths) - min(widths) <= fitted.size, widths
    assert max(widths) <= box["width"] + 1
    # The largest size: one pixel larger, the word needs more lines than the box can hold.
    bigger = fitted.size + 1
    if bigger <= box["max_size"]:
        font = fonts.get("bold", bigger)
        ascent, descent = font.getmetrics()
        step = round(bigger * box["line_height"])
        rows = min(int(box["max_lines"]), int(box["height"] - ascent - descent) // step + 1)
        assert _pieces_needed(font, text, box["width"]) > rows, (fitted.size, rows)


def test_a_long_word_after_other_words_breaks_evenly(fonts: FontSet) -> None:
    text = f"Ein {GERMAN} und mehr"
    fitted = fit(text, fonts=fonts, weight="bold", **SPLIT)  # type: ignore[arg-type]
    assert not fitted.truncated
    assert fitted.lines[0].text == "Ein" and fitted.lines[-1].text.endswith("und mehr")
    pieces = [line.width for line in fitted.lines[1:-1]]  # the lines made of the word alone
    assert len(pieces) >= 2
    assert max(pieces) - min(pieces) <= fitted.size, [line.text for line in fitted.lines]


def test_a_word_longer_than_a_chunk_is_one_unit(fonts: FontSet) -> None:
    # Text is examined 64 clusters at a time; a word running past a chunk's end is still one
    # unit (it was handed on cut at the chunk's end, and then set as two words).
    units = list(Setter(fonts, "bold", f"{SUPER} end").units(10_000))
    assert units[0] == (0, len(SUPER) + 1)


def test_a_thai_phrase_is_still_cut_where_the_line_is_full(fonts: FontSet) -> None:
    # Thai, Lao, Khmer and Myanmar write no spaces between words: a unit is a phrase, cut
    # between clusters where the line is full, as before; even cutting is for words.
    text = "การ์ดแบบรวดเร็วสำหรับเครือข่ายสังคมออนไลน์ทุกแห่ง"
    setter = Setter(fonts, "regular", text)
    size, width = 40, 300
    lines, left, broke = setter.wrap(width, size, 8, setter.units(10_000))
    assert broke and not left and len(lines) >= 3
    for i, j in lines[:-1]:
        assert setter.width(i, j, size) <= width < setter.width(i, j + 1, size)


def test_a_cut_word_leaves_no_stub_before_the_words_that_follow_it(fonts: FontSet) -> None:
    # Balancing the lines alone left "cious ist lang" after "…gilisticexpialido": the cut word's
    # pieces are evened out, its last piece sharing its line with the words after it.
    text = "Supercalifragilisticexpialidocious" * 2 + " ist lang"
    box = dict(width=460, height=300, max_size=80, min_size=30, max_lines=5, line_height=1.12)
    fitted = fit(text, fonts=fonts, weight="bold", **box)  # type: ignore[arg-type]
    assert not fitted.truncated and fitted.lines[-1].text.endswith(" ist lang")
    font = fonts.get("bold", fitted.size)
    pieces = [font.getlength(line.text.removesuffix(" ist lang")) for line in fitted.lines]
    assert min(pieces) >= 0.6 * max(pieces), [line.text for line in fitted.lines]


_LETTERS = st.sampled_from("abcdefghijklmnopqrstuvwxyzäöüßABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(
        st.text(_LETTERS, min_size=1, max_size=90), min_size=1, max_size=6
    ),
    width=st.integers(min_value=200, max_value=1040),
)
def test_cut_words_keep_every_letter_in_order_within_the_box(
    words: list[str], width: int
) -> None:
    fonts = FontSet.default()
    text = " ".join(words)
    box = dict(width=width, height=300, max_size=80, min_size=30, max_lines=5, line_height=1.12)
    fitted = fit(text, fonts=fonts, weight="bold", **box)  # type: ignore[arg-type]
    assert fitted.height <= 300
    for line in fitted.lines:
        assert line.width <= width + 1
    if not fitted.truncated:
        # Lines end at spaces or between the letters of a cut word; nothing is added or lost.
        assert "".join(line.text for line in fitted.lines).replace(" ", "") == "".join(words)
