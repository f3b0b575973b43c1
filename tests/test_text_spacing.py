"""Line spacing from the ink: marks on one line never touch the line above."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from ogshot.card import Card
from ogshot.fonts import EMOJI, FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.render import render_detailed
from ogshot.text import Fitted, fit

#: Titles whose marks stack high above and deep below their letters, long enough for two lines
#: or more in every layout.
STACKED = {
    # shadda with fatha or kasra, tanwin, and kasra under descending letters
    "arabic": "شَدَّةٌ مُشَدَّدَةٌ عَلَى كُلِّ حَرْفٍ فِي هَٰذَا ٱلْعُنْوَانِ ٱلطَّوِيلِ جِدًّا لِكَيْ يَنْكَسِرَ",
    # circumflex with acute, breve with dot below: Vietnamese stacks two marks on a capital
    "vietnamese": "ẤN TƯỢNG ĐẶC BIỆT: NHỮNG TẤM THẺ ĐẸP NHẤT CHO MẠNG XÃ HỘI VIỆT NAM",
    # upper vowels with tone marks over them, and vowels below
    "thai": "ที่นี่น้ำปั้นกู้คืน ผู้ใหญ่ฤดูร้อน ปู่ย่าตายายเล่านิทานให้ฟังทุกคืน",
    "devanagari": "स्त्रीत्व क्षेत्रीय कृष्ण हृदय द्विभाषी शृंखला के लिए तेज़ कार्ड बनाएँ",
}


def _ink_rows(fitted: Fitted, rects: tuple[tuple[int, int, int, int], ...],
              fonts: FontSet, weight: str) -> list[tuple[int, int]]:
    """Top and bottom of each line's ink, drawing each line alone where the card drew it."""
    rows = []
    for line, rect in zip(fitted.lines, rects, strict=True):
        mask = Image.new("L", (1200, 630), 0)
        draw = ImageDraw.Draw(mask)
        baseline = rect[1] + fitted.ascent
        x = float(rect[0])
        for run in line.runs:
            if run.font != EMOJI:
                font = fonts.font(run.font, weight, fitted.size)  # type: ignore[arg-type]
                draw.text((x, baseline), run.text, font=font, fill=255, anchor="ls",
                          direction="rtl" if run.rtl else "ltr")
            x += run.width
        box = mask.getbbox()
        assert box is not None
        rows.append((box[1], box[3]))
    return rows


@pytest.mark.parametrize("layout", ["card", "default", "split", "browser"])
@pytest.mark.parametrize("label", sorted(STACKED))
def test_marks_on_a_line_never_touch_the_line_above(
    layouts: LayoutRegistry, fonts: FontSet, label: str, layout: str
) -> None:
    spec = layouts.get(layout)
    rendered = render_detailed(Card(title=STACKED[label]), spec, fonts)
    title = next(p for p in rendered.placed if p.name == "title")
    # The browser layout's title box is two lines of 56 px at most: spaced by their ink, two
    # lines of Arabic, Thai or Devanagari do not fit it, and the title takes one smaller line.
    assert len(title.fitted.lines) >= (1 if layout == "browser" else 2), (label, layout)
    rows = _ink_rows(title.fitted, title.lines, fonts, spec.title.weight)
    for (_, bottom), (top, _) in zip(rows, rows[1:], strict=False):
        assert top - bottom >= 1, (label, layout, rows)
    # The box clips what leaves it: every line's ink stays inside.
    x, y, w, h = spec.title.box
    assert rows[0][0] >= y and rows[-1][1] <= y + h, (rows, spec.title.box)


def test_latin_keeps_the_layouts_line_height(fonts: FontSet) -> None:
    # Ink only widens the spacing where it would cross: plain Latin lines keep the nominal step.
    fitted = fit("Typography for every script, set with care on every card we make today",
                 fonts=fonts, weight="bold", width=1040, height=300, max_size=80, min_size=40,
                 max_lines=3, line_height=1.12)
    assert len(fitted.lines) >= 2
    assert fitted.line_height == round(fitted.size * 1.12)
