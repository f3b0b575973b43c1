"""The font set: a chain of fonts chosen per character by glyph coverage, loaded once.

The chain starts with the vendored Inter (Latin, Greek, Cyrillic). The other scripts come from
Noto families (:data:`FALLBACK_FAMILIES`), each looked up by file name along the search path:

1. the folders of ``OGSHOT_FONT_DIRS``, in the order given (to add or override a family);
2. the Noto subsets that ship inside the package (:data:`BUNDLED_DIR`): Arabic, Hebrew, the Indic
   scripts, Thai, Lao, Khmer, Myanmar, Georgian, Armenian, Ethiopic, CJK and colour emoji, so that
   ``pip install`` alone sets every script of the samples on a machine with no fonts at all;
3. the system's font folders (:data:`SEARCH_DIRS`), unless ``OGSHOT_SYSTEM_FONTS`` is off: they
   bring the families the package does not ship (symbols, math, DejaVu Sans).

The first folder holding a file name wins, so a family comes from one place. A family found
nowhere is left out and its characters fall to the next font in the chain that has them. Each
grapheme cluster is set in the first font whose character map (read with fontTools) covers the
whole cluster; a title with characters no font has is logged with their scripts, never drawn as
silent boxes.

Fonts are data that change the pixels, so the set has a ``version``: a digest of which fonts are in
use and their revisions. It goes into every cache key and ETag.
"""

from __future__ import annotations

import hashlib
import logging
import math
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import uharfbuzz as hb
from fontTools import unicodedata as ucd
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont, features

from .glyphs import GlyphMasks, Placed

if TYPE_CHECKING:
    from .settings import Settings

Weight = Literal["regular", "medium", "bold"]
WEIGHTS: tuple[Weight, ...] = ("regular", "medium", "bold")

FONT_DIR = Path(__file__).resolve().parent / "fonts"
#: The Noto subsets that ship with the package (built by scripts/build_fonts.py).
BUNDLED_DIR = FONT_DIR / "noto"

log = logging.getLogger("ogshot.fonts")


def _system_dirs() -> tuple[Path, ...]:
    home = Path.home()
    if sys.platform == "darwin":
        return (Path("/System/Library/Fonts"), Path("/Library/Fonts"), home / "Library/Fonts")
    if sys.platform == "win32":
        return (Path("C:/Windows/Fonts"),)
    return (
        Path("/usr/share/fonts"),
        Path("/usr/local/share/fonts"),
        home / ".local/share/fonts",
        home / ".fonts",
    )


#: The system's font folders, searched after the bundled fonts, in this order.
SEARCH_DIRS: tuple[Path, ...] = _system_dirs()


def search_path(extra: Sequence[Path] = (), *, system: bool = True) -> tuple[Path, ...]:
    """Where fonts are looked for, in order: ``extra`` folders, the package's, the system's."""
    return (*extra, BUNDLED_DIR, *(SEARCH_DIRS if system else ()))


_INTER: dict[Weight, str] = {
    "regular": "inter/Inter-Regular.otf",
    "medium": "inter/Inter-Medium.otf",
    "bold": "inter/Inter-Bold.otf",
}

#: Fallback families after Inter, most general first. Each is looked up as ``<stem>-<Weight>.ttf``
#: (or .otf/.ttc); a family missing on the machine is skipped.
FALLBACK_FAMILIES: tuple[str, ...] = (
    "NotoSans",
    "NotoSansArabic",
    "NotoSansHebrew",
    "NotoSansDevanagari",
    "NotoSansBengali",
    "NotoSansGurmukhi",
    "NotoSansGujarati",
    "NotoSansTamil",
    "NotoSansTelugu",
    "NotoSansKannada",
    "NotoSansMalayalam",
    "NotoSansSinhala",
    "NotoSansThai",
    "NotoSansLao",
    "NotoSansKhmer",
    "NotoSansMyanmar",
    "NotoSansGeorgian",
    "NotoSansArmenian",
    "NotoSansEthiopic",
    "NotoSansCJK",
    "NotoSansSymbols",
    "NotoSansSymbols2",
    "NotoSansMath",
    "NotoColorEmoji",
    "DejaVuSans",
)

EMOJI = "NotoColorEmoji"
CJK = "NotoSansCJK"
#: Colour emoji bitmaps exist at this one size: draw there, then scale.
EMOJI_SIZE = 109
#: Faces of the Noto CJK collection, by region; the region follows the text (kana, hangul).
CJK_FACES = {"jp": 0, "kr": 1, "sc": 2}
#: Measured advances a font set keeps (a few MB at most) before it starts again.
_ADVANCES_KEPT = 20_000

_ZWJ = "\u200d"
_VS16 = "\ufe0f"
_KEYCAP = "\u20e3"


def layout_engine() -> ImageFont.Layout:
    """RAQM (HarfBuzz + fribidi) when Pillow has it: it shapes and orders every script."""
    if features.check_feature("raqm"):
        return ImageFont.Layout.RAQM
    return ImageFont.Layout.BASIC


@dataclass(frozen=True)
class Face:
    """One family of the chain: its files by weight and the code points it covers."""

    name: str
    files: dict[Weight, Path]
    coverage: frozenset[int]
    fingerprint: str

    @property
    def is_emoji(self) -> bool:
        return self.name == EMOJI


def _index(dirs: Sequence[Path]) -> dict[str, Path]:
    """Font files by file name; the first folder that has a name wins."""
    found: dict[str, Path] = {}
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in (".ttf", ".otf", ".ttc") and path.is_file():
                found.setdefault(path.name, path)
    return found


def _find(stem: str, index: dict[str, Path]) -> dict[Weight, Path]:
    """The files of one family by weight; medium and bold fall back to regular."""
    suffixes: dict[Weight, str] = {"regular": "Regular", "medium": "Medium", "bold": "Bold"}
    found: dict[Weight, Path] = {}
    for weight, suffix in suffixes.items():
        names = [f"{stem}-{suffix}{ext}" for ext in (".ttf", ".otf", ".ttc")]
        if weight == "regular":
            names.insert(0, f"{stem}.ttf")
        path = next((index[name] for name in names if name in index), None)
        if path is not None:
            found[weight] = path
    if "regular" not in found:
        return {}
    for weight in WEIGHTS:
        found.setdefault(weight, found["regular"])
    return found


def _read_face(name: str, files: dict[Weight, Path]) -> Face:
    path = files["regular"]
    font = (
        TTFont(str(path), lazy=True, fontNumber=0)
        if path.suffix == ".ttc"
        else TTFont(str(path), lazy=True)
    )
    try:
        cmap = font.getBestCmap() or {}
        head = font["head"]
        coverage = frozenset(cmap)
        fingerprint = f"{name}:{path.name}:{path.stat().st_size}:{head.fontRevision:.3f}"
        fingerprint += f":{head.checkSumAdjustment}"
    finally:
        font.close()
    others: tuple[Weight, ...] = ("medium", "bold")
    for weight in others:
        other = files[weight]
        if other != path:
            fingerprint += f":{other.name}:{other.stat().st_size}"
    return Face(name, files, coverage, fingerprint)


def cjk_region(text: str) -> str:
    """Which regional CJK face suits ``text``: kana means Japanese, hangul Korean, else Chinese."""
    for ch in text:
        cp = ord(ch)
        if 0x3040 <= cp <= 0x30FF or 0x31F0 <= cp <= 0x31FF or 0xFF66 <= cp <= 0xFF9F:
            return "jp"
        if 0xAC00 <= cp <= 0xD7AF or 0x1100 <= cp <= 0x11FF or 0x3130 <= cp <= 0x318F:
            return "kr"
    return "sc"


def wants_emoji(cluster: str) -> bool:
    """Whether a grapheme cluster is meant as a colour emoji rather than a text symbol."""
    if _VS16 in cluster or _ZWJ in cluster or _KEYCAP in cluster:
        return True
    cp = ord(cluster[0])
    if 0x1F1E6 <= cp <= 0x1F1FF:  # regional indicators: flags
        return True
    # Pictographs of the supplementary planes default to emoji presentation; "©", "™" or digits
    # (which the emoji font also covers, for keycaps) stay text.
    return 0x1F000 <= cp <= 0x1FAFF


def _ignorable(ch: str) -> bool:
    """Marks that need no glyph of their own for a font to be said to cover a cluster."""
    return ch in (_ZWJ, _VS16, "\ufe0e", "\u200c") or 0xE0020 <= ord(ch) <= 0xE007F


class FontSet:
    """The fallback chain; fonts by family, weight and size, each loaded once and shared."""

    def __init__(self, faces: Iterable[Face], *, primary: Face) -> None:
        self.primary = primary
        self.faces: tuple[Face, ...] = (primary, *faces)
        self._by_name = {face.name: face for face in self.faces}
        self._engine = layout_engine()
        self._cache: dict[tuple[str, Weight, int], ImageFont.FreeTypeFont] = {}
        self._picks: dict[str, str] = {}
        self._lock = threading.Lock()
        self._shapers: dict[tuple[Path, int], tuple[hb.Font, int, int]] = {}
        self._named: dict[tuple[str, Weight, str], tuple[hb.Font, int, int]] = {}
        #: Rasterised glyphs of this set's fonts, for :meth:`glyphs`.
        self.masks = GlyphMasks()
        self._advances: dict[tuple[str, Weight, str, bool, str], float] = {}
        self._inks: dict[tuple[str, Weight, str, bool, str], tuple[float, float]] = {}
        #: The search path the set was read from (empty when built from faces directly).
        self.dirs: tuple[Path, ...] = ()
        self._warned: set[str] = set()
        digest = hashlib.sha256()
        for face in self.faces:
            digest.update(face.fingerprint.encode())
        digest.update(str(self._engine).encode())
        # Widths come from HarfBuzz: a new shaper may wrap a title differently.
        digest.update(f"harfbuzz {hb.version_string()} uharfbuzz {hb.__version__}".encode())
        self.version = digest.hexdigest()[:16]

    @classmethod
    def default(cls, search_dirs: Sequence[Path] | None = None) -> FontSet:
        """Inter, then every fallback family found along ``search_dirs`` (default:
        :func:`search_path`); one shared set per search path."""
        dirs = search_path() if search_dirs is None else tuple(search_dirs)
        return _default(dirs)

    @classmethod
    def from_settings(cls, settings: Settings) -> FontSet:
        """The shared set for the search path that ``settings`` describe."""
        extra = [Path(p).expanduser() for p in settings.font_dir_list]
        return _default(search_path(extra, system=settings.system_fonts))

    @classmethod
    def from_dirs(cls, dirs: Sequence[Path]) -> FontSet:
        inter = {weight: FONT_DIR / rel for weight, rel in _INTER.items()}
        primary = _read_face("Inter", inter)
        primary = Face(
            primary.name,
            primary.files,
            primary.coverage,
            primary.fingerprint
            + "".join(hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in inter.values()),
        )
        faces = []
        index = _index(dirs)
        for stem in FALLBACK_FAMILIES:
            files = _find(stem, index)
            if files:
                faces.append(_read_face(stem, files))
        found = cls(faces, primary=primary)
        found.dirs = tuple(dirs)
        return found

    @property
    def names(self) -> list[str]:
        """The families in use, in fallback order."""
        return [face.name for face in self.faces]

    def get(self, weight: Weight, size: int) -> ImageFont.FreeTypeFont:
        """The primary (Inter) font at ``size``."""
        return self.font(self.primary.name, weight, size)

    def font(
        self, name: str, weight: Weight, size: int, region: str = "sc"
    ) -> ImageFont.FreeTypeFont:
        """Family ``name`` at ``size`` (the emoji font only exists at :data:`EMOJI_SIZE`)."""
        if name == EMOJI:
            size = EMOJI_SIZE
        key_name = f"{name}/{region}" if name == CJK else name
        key = (key_name, weight, size)
        font = self._cache.get(key)
        if font is None:
            with self._lock:
                font = self._cache.get(key)
                if font is None:
                    path = self._by_name[name].files[weight]
                    index = CJK_FACES.get(region, 0) if path.suffix == ".ttc" else 0
                    font = ImageFont.truetype(
                        str(path), size, index=index, layout_engine=self._engine
                    )
                    self._cache[key] = font
        return font

    def advance(self, name: str, weight: Weight, text: str, rtl: bool, region: str = "sc") -> float:
        """Advance width of ``text`` shaped in one font, in ems: multiply by a size for pixels.

        Pillow's RAQM layout shapes with HarfBuzz too, but builds HarfBuzz's font afresh on every
        call, and with it the lookup tables of the font's kerning: 85 µs a call for Inter, for
        any length of text. Here each font file gets one persistent HarfBuzz font, so measuring a
        word takes 2 µs; the widths agree with Pillow's to about a tenth of a pixel (HarfBuzz
        positions scale linearly, and Pillow asks FreeType for unhinted advances). Emoji, drawn
        from bitmaps, and text drawn without RAQM (unshaped) are measured by Pillow itself.
        """
        key = (name, weight, region, rtl, text)
        found = self._advances.get(key)
        if found is not None:
            return found
        if name == EMOJI:
            found = self.font(name, weight, EMOJI_SIZE).getlength(text) / EMOJI_SIZE
        elif not self.shapes:
            found = self.font(name, weight, 1000, region).getlength(text) / 1000
        else:
            buf, upem = self._shaped(name, weight, region, text, rtl)
            found = sum(pos.x_advance for pos in buf.glyph_positions) / upem
        if len(text) <= 128:  # words and short lines: what comes back
            if len(self._advances) >= _ADVANCES_KEPT:
                self._advances.clear()  # bounded; the common words are back at once
            self._advances[key] = found
        return found

    def ink(
        self, name: str, weight: Weight, text: str, rtl: bool, region: str = "sc"
    ) -> tuple[float, float]:
        """How far the ink of ``text`` shaped in one font reaches above and below the baseline,
        in ems (both positive outward): the glyphs' own extents where HarfBuzz placed them,
        stacked marks included, not the font's nominal ascent and descent.
        """
        key = (name, weight, region, rtl, text)
        found = self._inks.get(key)
        if found is not None:
            return found
        if name == EMOJI:
            # Bitmaps: the ink is what the drawn strip's alpha covers.
            font = self.font(name, weight, EMOJI_SIZE)
            ascent, descent = font.getmetrics()
            strip = Image.new("RGBA", (max(1, math.ceil(font.getlength(text))), ascent + descent))
            ImageDraw.Draw(strip).text(
                (0, ascent), text, font=font, embedded_color=True, anchor="ls"
            )
            box = strip.getchannel("A").getbbox() or (0, ascent, 0, ascent)
            found = (max(0, ascent - box[1]) / EMOJI_SIZE, max(0, box[3] - ascent) / EMOJI_SIZE)
        elif not self.shapes:
            left, top, right, bottom = self.font(name, weight, 1000, region).getbbox(
                text, anchor="ls"
            )
            found = (max(0, -top) / 1000, max(0, bottom) / 1000)
        else:
            buf, upem = self._shaped(name, weight, region, text, rtl)
            shaper = self._shaper(name, weight, region)[0]
            above = below = 0
            for info, pos in zip(buf.glyph_infos, buf.glyph_positions, strict=True):
                extents = shaper.get_glyph_extents(info.codepoint)
                if extents is None or extents.height == 0:
                    continue  # a space: no ink
                top = pos.y_offset + extents.y_bearing
                above = max(above, top)
                below = max(below, -(top + extents.height))
            found = (above / upem, below / upem)
        if len(text) <= 128:
            if len(self._inks) >= _ADVANCES_KEPT:
                self._inks.clear()
            self._inks[key] = found
        return found

    @property
    def shapes(self) -> bool:
        """Whether Pillow shapes text (RAQM): without it, no direction can be asked for."""
        return bool(self._engine == ImageFont.Layout.RAQM)

    def glyphs(
        self,
        name: str,
        weight: Weight,
        region: str,
        size: int,
        text: str,
        rtl: bool,
        x: float,
        baseline: int,
    ) -> list[Placed] | None:
        """``text`` shaped in one font at ``size`` as glyph masks, placed for a pen starting at
        ``x`` on ``baseline``: the shaping that :meth:`advance` measured, drawn from HarfBuzz's
        outlines (see :mod:`ogshot.glyphs`). None for what must be drawn by Pillow: colour
        emoji (bitmaps), text set without RAQM (unshaped), a glyph without an outline.
        """
        if name == EMOJI or not self.shapes:
            return None
        buf, upem = self._shaped(name, weight, region, text, rtl)
        font, _, number = self._shaper(name, weight, region)
        return self.masks.place(
            font,
            number,
            upem,
            size,
            buf.glyph_infos,
            buf.glyph_positions,
            x,
            baseline,
        )

    def _shaped(
        self, name: str, weight: Weight, region: str, text: str, rtl: bool
    ) -> tuple[hb.Buffer, int]:
        """``text`` shaped by HarfBuzz in one font, and that font's units per em."""
        shaper, upem, _ = self._shaper(name, weight, region)
        buf = hb.Buffer()
        buf.add_str(text)
        buf.guess_segment_properties()
        buf.direction = "rtl" if rtl else "ltr"
        hb.shape(shaper, buf)
        return buf, upem

    def _shaper(self, name: str, weight: Weight, region: str) -> tuple[hb.Font, int, int]:
        """HarfBuzz's font for family ``name`` in ``weight`` and ``region``, its units per em,
        and a number for its file and face in this set: one font per file and face, shared."""
        named = (name, weight, region)
        found = self._named.get(named)
        if found is None:
            path = self._by_name[name].files[weight]
            index = CJK_FACES.get(region, 0) if path.suffix == ".ttc" else 0
            with self._lock:
                found = self._shapers.get((path, index))
                if found is None:
                    face = hb.Face(hb.Blob.from_file_path(str(path)), index)
                    found = (hb.Font(face), face.upem, len(self._shapers))
                    self._shapers[(path, index)] = found
                self._named[named] = found
        return found

    def covers(self, name: str, cluster: str) -> bool:
        coverage = self._by_name[name].coverage
        return all(ord(ch) in coverage or _ignorable(ch) for ch in cluster)

    def pick(self, cluster: str) -> str:
        """The first family of the chain that has every character of ``cluster``.

        Emoji clusters go to the colour emoji font first. When no font has the whole cluster,
        the one that has its base character wins, so at worst a mark is missing, never a box.
        """
        found = self._picks.get(cluster)
        if found is not None:
            return found
        order: list[Face] = list(self.faces)
        if EMOJI in self._by_name and wants_emoji(cluster):
            order.insert(0, self._by_name[EMOJI])
        found = next((f.name for f in order if self.covers(f.name, cluster)), None)
        if found is None:
            base = cluster[0]
            found = next(
                (f.name for f in order if ord(base) in f.coverage and not f.is_emoji),
                self.primary.name,
            )
        if len(self._picks) < 50_000:
            self._picks[cluster] = found
        return found

    def has_glyph(self, ch: str) -> bool:
        """Whether any font of the set has ``ch``."""
        return any(ord(ch) in face.coverage for face in self.faces)

    def missing(self, text: str) -> dict[str, str]:
        """Characters of ``text`` that no font of the set has, by script name."""
        found: dict[str, str] = {}
        for ch in dict.fromkeys(text):
            # Separators and "other" characters (controls, format, unassigned) need no glyph; the
            # category comes from the current Unicode database, so new emoji are judged too.
            if _ignorable(ch) or ucd.category(ch)[0] in "ZC" or self.has_glyph(ch):
                continue
            script = script_name(ch)
            found[script] = found.get(script, "") + ch
        return found

    def warn_missing(self, text: str) -> dict[str, str]:
        """Log the characters of ``text`` that no font has (once per set of characters)."""
        found = self.missing(text)
        if found:
            key = "|".join(f"{k}:{v}" for k, v in sorted(found.items()))
            if key not in self._warned and len(self._warned) < 1000:
                self._warned.add(key)
                described = "; ".join(
                    f"{script}: {' '.join(chars[:20])}" for script, chars in sorted(found.items())
                )
                log.warning("no font has these characters, drawn as boxes (%s)", described)
        return found

    def coverage_by_script(self) -> list[tuple[str, int, int, list[str]]]:
        """For each script: characters covered, characters assigned, and the families used."""
        return _coverage_by_script(self)


def script_name(ch: str) -> str:
    """The Unicode script of ``ch`` by its English name ("Arabic", "Han", "Common"…)."""
    return str(ucd.script_name(ucd.script(ch)))


def _coverage_by_script(fonts: FontSet) -> list[tuple[str, int, int, list[str]]]:
    totals: dict[str, int] = {}
    covered: dict[str, int] = {}
    families: dict[str, dict[str, None]] = {}
    union: dict[int, str] = {}
    for face in reversed(fonts.faces):
        for cp in face.coverage:
            union[cp] = face.name  # the first face of the chain wins
    # Planes 0 to 3 (the supplementary special-purpose and private planes hold no script), with
    # the current Unicode database (unicodedata2, as the scripts of fontTools'), so that
    # characters newer than Python's own database count too.
    for cp in range(0x20, 0x40000):
        if 0xD800 <= cp <= 0xF8FF:
            continue
        ch = chr(cp)
        if ucd.category(ch) in ("Cn", "Co", "Cs", "Cc"):
            continue
        script = script_name(ch)
        if script in ("Common", "Inherited", "Unknown"):
            continue
        totals[script] = totals.get(script, 0) + 1
        family = union.get(cp)
        if family is not None:
            covered[script] = covered.get(script, 0) + 1
            families.setdefault(script, {})[family] = None
    return sorted(
        ((s, covered.get(s, 0), n, list(families.get(s, {}))) for s, n in totals.items()),
        key=lambda row: (-row[1] / row[2], row[0]),
    )


_DEFAULTS: dict[tuple[Path, ...], FontSet] = {}
_DEFAULTS_LOCK = threading.Lock()


def _default(dirs: tuple[Path, ...]) -> FontSet:
    # Reading the character maps of ~25 families takes a moment: do it once per process.
    with _DEFAULTS_LOCK:
        found = _DEFAULTS.get(dirs)
        if found is None:
            found = _DEFAULTS[dirs] = FontSet.from_dirs(dirs)
        return found
