"""Text drawn from HarfBuzz's glyphs and kept masks: where Pillow draws it, whatever is kept."""

from __future__ import annotations

import subprocess
import sys
import threading
import tomllib
import types
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw

from ogshot import glyphs
from ogshot.card import Card
from ogshot.contrast import paint
from ogshot.fonts import CJK, EMOJI, FontSet, Weight, cjk_region
from ogshot.glyphs import GlyphMasks, Placed
from ogshot.layouts import LayoutRegistry
from ogshot.render import fit_box, render_card
from ogshot.samples import TITLES

from .imagecompare import ssim


def _paste(target: Image.Image, placed: list[Placed]) -> None:
    """Lay the glyphs on an ``L`` image at full coverage, clipped to it: each covers what lies
    under it by its mask's coverage (overlapping glyphs, as joined Arabic letters, add up)."""
    core = target.im
    for mask, box in placed:
        core.paste(255, box, mask)


#: (family, text, right to left): one run of each kind of script a card sets.
RUNS = (
    ("Inter", "Typography: AVAWAY, office “quotes” 0123", False),
    ("Inter", "Ça roule: naïve Łódź & Ærøskøbing", False),
    ("Inter", "Быстрые карточки", False),
    ("NotoSansArabic", "مرحبا بالعالم: بطاقات سريعة", True),
    ("NotoSansArabic", "تغيّر الذي", True),
    ("NotoSansHebrew", "שלום עולם", True),
    ("NotoSansDevanagari", "सामाजिक नेटवर्क के लिए तेज़ कार्ड", False),
    ("NotoSansThai", "การ์ดแบบรวดเร็ว", False),
    (CJK, "为社交网络快速生成预览卡片", False),
    (CJK, "ソーシャルカードを高速に", False),
    ("Inter", "Ṱ̈e̊x̧t w̃ith c̆ombining m̄arks", False),
)


def _strip(
    fonts: FontSet, family: str, text: str, rtl: bool, size: int, x: float, *, pillow: bool
) -> Image.Image:
    weight: Weight = "bold"
    region = cjk_region(text)
    strip = Image.new("L", (1400, 3 * size), 0)
    baseline = 2 * size
    if pillow:
        font = fonts.font(family, weight, size, region)
        ImageDraw.Draw(strip).text(
            (x, baseline), text, font=font, fill=255, anchor="ls", direction="rtl" if rtl else "ltr"
        )
    else:
        placed = fonts.glyphs(family, weight, region, size, text, rtl, x, baseline)
        assert placed is not None
        _paste(strip, placed)
    return strip


def _best_shift(theirs: Image.Image, ours: Image.Image) -> tuple[int, int]:
    """The shift of ``ours``, a pixel at most each way, that looks most like ``theirs``."""
    box = theirs.getbbox()
    assert box is not None
    shifts = [(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return max(shifts, key=lambda d: ssim(theirs.crop(box), ImageChops.offset(ours, *d).crop(box)))


@pytest.mark.parametrize(("family", "text", "rtl"), RUNS, ids=[r[1][:12] for r in RUNS])
@pytest.mark.parametrize("size", [22, 61])
def test_a_run_drawn_from_glyph_masks_lands_where_pillow_draws_it(
    fonts: FontSet, family: str, text: str, rtl: bool, size: int
) -> None:
    theirs = _strip(fonts, family, text, rtl, size, 20.3, pillow=True)
    ours = _strip(fonts, family, text, rtl, size, 20.3, pillow=False)
    a, b = theirs.getbbox(), ours.getbbox()
    assert a is not None and b is not None
    # The same ink box within a pixel or two (Pillow hints outlines and rounds positions; the
    # masks are unhinted, placed within an eighth of a pixel of HarfBuzz's position)...
    assert all(abs(p - q) <= 2 for p, q in zip(a, b, strict=True)), (a, b)
    # ...the same amount of ink...
    ink_a = sum(i * n for i, n in enumerate(theirs.histogram()))
    ink_b = sum(i * n for i, n in enumerate(ours.histogram()))
    assert abs(ink_a - ink_b) <= 0.04 * ink_a
    # ...the same shapes, and in the same place: moved a pixel any way, it looks less alike.
    assert ssim(theirs.crop(a), ours.crop(a)) >= 0.85
    assert _best_shift(theirs, ours) == (0, 0)


def test_the_comparison_sees_a_run_one_pixel_off(fonts: FontSet) -> None:
    theirs = _strip(fonts, "NotoSansThai", "การ์ดแบบรวดเร็ว", False, 61, 20.3, pillow=True)
    ours = _strip(fonts, "NotoSansThai", "การ์ดแบบรวดเร็ว", False, 61, 20.3, pillow=False)
    assert _best_shift(theirs, ImageChops.offset(ours, 0, 1)) == (0, -1)
    assert _best_shift(theirs, ImageChops.offset(ours, -1, 0)) == (1, 0)


def test_colour_emoji_and_unshaped_text_are_left_to_pillow(fonts: FontSet) -> None:
    assert fonts.glyphs(EMOJI, "regular", "sc", 40, "🚀", False, 0.0, 40) is None
    # Bitmap glyphs have no outline: the table says so rather than drawing nothing.
    font, upem, _ = fonts._shaper(EMOJI, "regular", "sc")
    buf, _ = fonts._shaped(EMOJI, "regular", "sc", "🚀", False)
    masks = GlyphMasks()
    assert masks.place(font, "emoji", upem, 40, buf.glyph_infos, buf.glyph_positions, 0, 40) is None
    assert fonts.glyphs("Inter", "bold", "sc", 40, "plain", False, 0.0, 40) is not None


def _cards() -> list[Card]:
    return [Card(title=t, subtitle="A subtitle, in Inter", site="example.org") for _, t in TITLES]


def _render_all(fonts: FontSet, layouts: LayoutRegistry) -> list[bytes]:
    layout = layouts.get("default")
    return [render_card(card, layout, fonts).tobytes() for card in _cards()]


def test_card_pixels_do_not_depend_on_what_the_glyph_table_holds(
    layouts: LayoutRegistry,
) -> None:
    fresh = FontSet.from_dirs(FontSet.default().dirs)
    first = _render_all(fresh, layouts)
    assert len(fresh.masks) > 0
    # Again from a full table, then from a table too small to keep one card's glyphs.
    assert _render_all(fresh, layouts) == first
    starved = FontSet.from_dirs(FontSet.default().dirs)
    starved.masks.budget = 2_000
    assert _render_all(starved, layouts) == first
    assert starved.masks.kept_bytes <= 2_000


def test_the_glyph_table_stays_within_its_budget(fonts: FontSet) -> None:
    masks = GlyphMasks(budget=200_000)
    font, upem, _ = fonts._shaper("Inter", "bold", "sc")
    buf, _ = fonts._shaped("Inter", "bold", "sc", "The quick brown fox jumps", False)
    for size in range(20, 120):
        for x in (0.0, 0.25, 0.5, 0.75):
            placed = masks.place(
                font, "inter", upem, size, buf.glyph_infos, buf.glyph_positions, x, 200
            )
            assert placed is not None and len(placed) == 21  # the letters; spaces have no ink
            assert masks.kept_bytes <= 200_000
    assert masks.rasterised > len(masks)  # the oldest were let go, and made again when asked


def test_threads_share_the_glyph_table_and_draw_what_one_thread_draws(
    layouts: LayoutRegistry,
) -> None:
    alone = _render_all(FontSet.from_dirs(FontSet.default().dirs), layouts)
    shared = FontSet.from_dirs(FontSet.default().dirs)
    shared.masks.budget = 300_000  # small enough that threads evict each other's glyphs
    results: list[list[bytes]] = []
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(2):
                results.append(_render_all(shared, layouts))
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert len(results) == 8 and all(r == alone for r in results)
    assert shared.masks.kept_bytes <= 300_000


def test_glyphs_laid_in_colour_are_one_blend_through_their_combined_mask(fonts: FontSet) -> None:
    # Arabic: joined letters overlap, and marks sit on letters.
    placed = fonts.glyphs("NotoSansArabic", "bold", "sc", 61, "تغيّر الذي سريعة", True, 10.4, 80)
    assert placed is not None
    backdrop = Image.linear_gradient("L").resize((600, 120)).convert("RGB")
    mask = Image.new("L", (600, 120))
    _paste(mask, placed)
    expected = backdrop.copy()
    paint(expected, (250, 240, 10), (0, 0), mask)
    laid = backdrop.copy()
    glyphs.lay(laid, (250, 240, 10), placed, (0, 0), (600, 120))
    diff = ImageChops.difference(laid, expected)
    assert max(hi for _, hi in diff.getextrema()) <= 1  # rounding of the blends in turn
    assert laid.tobytes() != backdrop.tobytes()


def test_glyphs_laid_in_colour_never_leave_their_box(fonts: FontSet) -> None:
    # A run starting left of the box, on a baseline that puts its top above it.
    placed = fonts.glyphs("Inter", "bold", "sc", 80, "Clipped glyphs", False, -30.0, 50)
    assert placed is not None
    canvas = Image.new("RGB", (700, 200), (0, 0, 0))
    glyphs.lay(canvas, (255, 255, 255), placed, (100, 50), (400, 60))
    assert canvas.getbbox() == (100, 50, 500, 110)
    # The glyphs run past every edge of the box: clipped, not shifted.
    inside = canvas.crop((100, 50, 500, 110)).convert("L")
    assert inside.getbbox() == (0, 0, 400, 60)


def test_cjk_lines_are_drawn_in_the_regional_face_they_were_measured_in(
    layouts: LayoutRegistry, fonts: FontSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Japanese title whose kana are cut off by the ellipsis: the lines left hold only Han
    # characters, which alone would pick the Chinese face; they were measured in the Japanese one.
    title = "直線骨格" * 60 + "のかな"
    layout = layouts.get("default")
    fitted = fit_box(title, layout.title, fonts)
    assert fitted.truncated and "の" not in "".join(line.text for line in fitted.lines)
    assert fitted.region == "jp"
    drawn: list[str] = []
    real = FontSet.glyphs

    def spy(self: FontSet, family: str, weight: Weight, region: str, *rest: object) -> object:
        if family == CJK:
            drawn.append(region)
        return real(self, family, weight, region, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(FontSet, "glyphs", spy)
    render_card(Card(title=title), layout, fonts)
    assert drawn and set(drawn) == {"jp"}


_FILL_TABLE = """
import ctypes, gc, sys
from ogshot.fonts import FontSet
from ogshot.glyphs import GlyphMasks

def resident() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

fonts = FontSet.default()
font, upem, _ = fonts._shaper("Inter", "regular", "sc")
text = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'-()"
buf, _ = fonts._shaped("Inter", "regular", "sc", text, False)
GlyphMasks().place(font, "warm", upem, 40, buf.glyph_infos, buf.glyph_positions, 0.0, 100)
gc.collect()
ctypes.CDLL("libc.so.6").malloc_trim(0)
masks = GlyphMasks(budget=int(sys.argv[1]))
before = resident()
for _ in range(2):
    for size in range(6, 60):
        for x in (0.0, 0.25, 0.5, 0.75):
            masks.place(font, "inter", upem, size, buf.glyph_infos, buf.glyph_positions, x, 100)
print(resident() - before, masks.rasterised, len(masks))
"""


def test_the_glyph_table_takes_about_its_budget_in_memory() -> None:
    # Small glyphs (6-59 px, four phases, made twice over), where what keeps each mask weighs
    # more than its pixels: the process grows by about the budget, not by twice it.
    budget = 3_000_000
    out = subprocess.run(
        [sys.executable, "-c", _FILL_TABLE, str(budget)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    grown, made, kept = map(int, out)
    assert made > 2 * kept  # the table was full and letting masks go
    assert grown <= 1.3 * budget, grown / budget


class _FailsOnce:
    """A rasteriser that fails once with the outline half drawn: by raising mid-glyph, or by
    rendering nothing (HarfBuzz out of memory)."""

    def __init__(self, how: str) -> None:
        import uharfbuzz as hb

        self.real = hb.RasterDraw()
        self.how = how
        self.failed = False

    @property
    def transform(self) -> object:
        return self.real.transform

    @transform.setter
    def transform(self, value: object) -> None:
        self.real.transform = value

    def draw_glyph_or_fail(self, font: object, glyph: int) -> bool:
        drawn: bool = self.real.draw_glyph_or_fail(font, glyph)
        if self.how == "raises" and not self.failed:
            self.failed = True
            raise RuntimeError("failed mid-glyph")
        return drawn

    def render(self) -> object:
        if self.how == "renders nothing" and not self.failed:
            self.failed = True
            return None  # the outline is still in the rasteriser
        return self.real.render()


@pytest.mark.parametrize("how", ["raises", "renders nothing"])
def test_a_failed_glyph_leaves_nothing_in_the_threads_rasteriser(fonts: FontSet, how: str) -> None:
    font, upem, _ = fonts._shaper("Inter", "bold", "sc")

    def run(masks: GlyphMasks, text: str) -> bytes:
        buf, _ = fonts._shaped("Inter", "bold", "sc", text, False)
        placed = masks.place(font, "inter", upem, 48, buf.glyph_infos, buf.glyph_positions, 4, 60)
        assert placed is not None
        strip = Image.new("L", (200, 80), 0)
        _paste(strip, placed)
        return strip.tobytes()

    expected = run(GlyphMasks(), "l")
    masks = GlyphMasks()
    masks._local.raster = _FailsOnce(how)
    with pytest.raises((RuntimeError, MemoryError)):
        run(masks, "O")
    # The next glyph on this thread is drawn alone, not over what is left of the "O".
    assert run(masks, "l") == expected


def _uharfbuzz(version: str, *, raster: tuple[str, ...], image: tuple[str, ...]) -> object:
    """A stand-in for a uharfbuzz module: its version, and what its rasteriser has."""
    module = types.SimpleNamespace(__version__=version)
    module.RasterDraw = type("RasterDraw", (), dict.fromkeys(raster))
    module.RasterImage = type("RasterImage", (), dict.fromkeys(image))
    return module


def test_glyphs_are_drawn_by_harfbuzz_only_from_the_tested_uharfbuzz_on() -> None:
    import uharfbuzz as hb

    used = ("transform", "draw_glyph_or_fail", "render")
    assert glyphs.usable(hb) and glyphs.AVAILABLE  # the installed one, which pyproject asks for
    assert glyphs.usable(_uharfbuzz("0.57.0", raster=used, image=("extents", "buffer")))
    assert glyphs.usable(_uharfbuzz("0.58.1rc1", raster=used, image=("extents", "buffer")))
    # Older ones had a rasteriser, but not the one tested here.
    assert not glyphs.usable(_uharfbuzz("0.54.0", raster=used, image=("extents", "buffer")))
    assert not glyphs.usable(_uharfbuzz("0.56.9", raster=used, image=("extents", "buffer")))
    assert not glyphs.usable(
        _uharfbuzz("0.57.0", raster=("transform", "render"), image=("extents", "buffer"))
    )
    assert not glyphs.usable(_uharfbuzz("0.57.0", raster=used, image=("extents",)))
    assert not glyphs.usable(types.SimpleNamespace(__version__="unknown"))


def test_pyproject_asks_for_the_uharfbuzz_the_glyphs_are_tested_with() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    wanted = [d for d in pyproject["project"]["dependencies"] if d.startswith("uharfbuzz")]
    floor = ".".join(map(str, glyphs.TESTED_UHARFBUZZ))
    assert wanted == [f"uharfbuzz>={floor}"]
