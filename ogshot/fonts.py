"""The font set: a chain of fonts chosen per character by glyph coverage, loaded once.

The chain starts with the vendored Inter (Latin, Greek, Cyrillic), which ships inside the package so
that a bare install always renders Latin titles the same way. Every other script comes from Noto
families found on the system (Debian's ``fonts-noto-core``, ``fonts-noto-cjk`` and
``fonts-noto-color-emoji``) under :data:`SEARCH_DIRS`; a missing family is simply left out and its
characters fall to the next font in the chain that has them. Each grapheme cluster is set in the
first font whose character map (read with fontTools) covers the whole cluster.

Fonts are data that change the pixels, so the set has a ``version``: a digest of which fonts are in
use and their revisions. It goes into every cache key and ETag.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import uharfbuzz as hb
from fontTools.ttLib import TTFont
from PIL import ImageFont, features

Weight = Literal["regular", "medium", "bold"]
WEIGHTS: tuple[Weight, ...] = ("regular", "medium", "bold")

FONT_DIR = Path(__file__).resolve().parent / "fonts"

#: Standard system font folders searched for the fallback families, in order.
SEARCH_DIRS: tuple[Path, ...] = (
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
)

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
        self._shapers: dict[tuple[Path, int], tuple[hb.Font, int]] = {}
        self._advances: dict[tuple[str, Weight, str, bool, str], float] = {}
        digest = hashlib.sha256()
        for face in self.faces:
            digest.update(face.fingerprint.encode())
        digest.update(str(self._engine).encode())
        # Widths come from HarfBuzz: a new shaper may wrap a title differently.
        digest.update(f"harfbuzz {hb.version_string()} uharfbuzz {hb.__version__}".encode())
        self.version = digest.hexdigest()[:16]

    @classmethod
    def default(cls, search_dirs: Sequence[Path] | None = None) -> FontSet:
        """Inter from the package, then every fallback family found under ``search_dirs``."""
        dirs = SEARCH_DIRS if search_dirs is None else tuple(search_dirs)
        return _default(dirs)

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
        return cls(faces, primary=primary)

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
            shaper, upem = self._shaper(name, weight, region)
            buf = hb.Buffer()
            buf.add_str(text)
            buf.guess_segment_properties()
            buf.direction = "rtl" if rtl else "ltr"
            hb.shape(shaper, buf)
            found = sum(pos.x_advance for pos in buf.glyph_positions) / upem
        if len(text) <= 128:  # words and short lines: what comes back
            if len(self._advances) >= _ADVANCES_KEPT:
                self._advances.clear()  # bounded; the common words are back at once
            self._advances[key] = found
        return found

    @property
    def shapes(self) -> bool:
        """Whether Pillow shapes text (RAQM): without it, no direction can be asked for."""
        return bool(self._engine == ImageFont.Layout.RAQM)

    def _shaper(self, name: str, weight: Weight, region: str) -> tuple[hb.Font, int]:
        path = self._by_name[name].files[weight]
        index = CJK_FACES.get(region, 0) if path.suffix == ".ttc" else 0
        found = self._shapers.get((path, index))
        if found is None:
            with self._lock:
                found = self._shapers.get((path, index))
                if found is None:
                    face = hb.Face(hb.Blob.from_file_path(str(path)), index)
                    found = self._shapers[(path, index)] = (hb.Font(face), face.upem)
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


_DEFAULTS: dict[tuple[Path, ...], FontSet] = {}
_DEFAULTS_LOCK = threading.Lock()


def _default(dirs: tuple[Path, ...]) -> FontSet:
    # Reading the character maps of ~25 families takes a moment: do it once per process.
    with _DEFAULTS_LOCK:
        found = _DEFAULTS.get(dirs)
        if found is None:
            found = _DEFAULTS[dirs] = FontSet.from_dirs(dirs)
        return found
