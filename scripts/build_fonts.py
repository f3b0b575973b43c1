"""Build the fonts that ship inside the package (ogshot/fonts/noto) from Noto's releases.

    python scripts/build_fonts.py SOURCE_DIR [OUT_DIR]

SOURCE_DIR holds the Noto files of the Debian packages in :data:`SOURCES`, unpacked into it::

    apt-get download fonts-noto-core=20201225-1 fonts-noto-cjk=1:20220127+repack1-1 \
        fonts-noto-color-emoji=2.051-0+deb13u1
    for deb in *.deb; do dpkg-deb -x "$deb" SOURCE_DIR; done

(the emoji package is Debian 13's, the others Debian 12's: apt needs a trixie line in its
sources for the first). The build checks the versions it reads and stops on any other. Every file
is licensed under the SIL Open Font License 1.1, which allows subsetting and redistribution with
the licence; none of the Reserved Font Names is used by the result.

What is kept, and why (the README's fonts section gives the sizes):
- the script families (Arabic, Hebrew, Indic, Thai, Georgian, Ethiopic…): whole character sets,
  hinting dropped (cards are drawn at 24 px and up, where hinting changes little and costs a third
  of the file);
- Noto Sans CJK: one collection with the Japanese, Korean and Simplified Chinese faces, each cut
  to the same repertoire (kana, the JIS X 0208 and GB 2312 ideographs, KS X 1001's 2,350 hangul,
  and the ASCII, punctuation and symbols CJK text mixes in), so the three faces share one set of
  outlines;
- Noto Color Emoji: whole (its bitmaps are the file, palette PNGs that re-encoding makes larger).
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection, TTFont

from ogshot.fonts import CJK, FALLBACK_FAMILIES

#: The script families of the fallback chain, up to the CJK collection (built apart, below), and
#: the symbols the titles use; the chain itself is the one place that names them.
SCRIPT_FAMILIES = (*FALLBACK_FAMILIES[: FALLBACK_FAMILIES.index(CJK)], "NotoSansSymbols2")
WEIGHTS = ("Regular", "Bold")
#: Regions of the CJK collection, in the order the font set expects (jp, kr, sc).
CJK_FACES = ("Noto Sans CJK JP", "Noto Sans CJK KR", "Noto Sans CJK SC")
#: The Debian packages the build reads, and the version string (name table, ID 5) it expects of
#: the file each brings: one fixed source, so that a rebuild gives the same fonts.
SOURCES: tuple[tuple[str, str, str, str], ...] = (
    ("fonts-noto-core", "20201225-1", "NotoSansArabic-Regular.ttf", "Version 2.005;"),
    ("fonts-noto-cjk", "1:20220127+repack1-1", "NotoSansCJK-Regular.ttc", "Version 2.004;"),
    ("fonts-noto-color-emoji", "2.051-0+deb13u1", "NotoColorEmoji.ttf", "Version 2.051;"),
)


# Every font keeps its source's timestamps (head.modified): the same sources give the same bytes.


def _options() -> subset.Options:
    options = subset.Options()
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.notdef_outline = True
    options.glyph_names = False
    options.hinting = False
    options.drop_tables += ["DSIG"]
    return options


def _cjk_options() -> subset.Options:
    """The CJK collection keeps the features a shaper applies to horizontal and vertical text
    by default (fontTools' list), not the alternates a user picks (aalt, fwid, nalt…), which
    would each bring a second copy of the repertoire."""
    options = _options()
    options.layout_features = subset.Options().layout_features
    return options


def _default_language(font: TTFont) -> TTFont:
    """Keep each face's default language system only: the face is the region (a Korean title
    is set in the KR face), and its language-tagged lookups map the ideographs to the other
    regions' forms, which would bring in most of the other faces' outlines."""
    for tag in ("GSUB", "GPOS"):
        if tag in font:
            for record in font[tag].table.ScriptList.ScriptRecord:
                record.Script.LangSysRecord = []
                record.Script.LangSysCount = 0
    return font


def _find(source: Path, name: str) -> Path | None:
    found = sorted(source.rglob(name))
    return found[0] if found else None


#: What CJK text mixes in besides its own characters, kept in the CJK collection as its full
#: release has it: the font chain leaves a space or a punctuation mark in the font of the run
#: before it, so without these a Korean title's spaces (or a Chinese title's "…" and "“”") would
#: be Inter's on a machine with only the package's fonts, and the CJK font's on one with Debian's.
#: Letters and digits go to Inter either way (it comes first in the chain).
CJK_COMPANIONS: tuple[tuple[int, int], ...] = (
    (0x0020, 0x007E),  # ASCII
    (0x00A0, 0x00BF),  # Latin-1 punctuation and signs
    (0x00D7, 0x00D7),  # ×
    (0x00F7, 0x00F7),  # ÷
    (0x2000, 0x206F),  # general punctuation: dashes, quotes, …, ※
    (0x2100, 0x218F),  # letterlike symbols (℃ №) and number forms (Ⅰ Ⅱ ⅰ)
    (0x2190, 0x21FF),  # arrows
    (0x2460, 0x24FF),  # enclosed alphanumerics (① ⑴ ⒈)
    (0x25A0, 0x25FF),  # geometric shapes (■ ○ ◎ ▲)
    (0x2600, 0x26FF),  # miscellaneous symbols (★ ☆ ♪)
    (0x3200, 0x33FF),  # enclosed CJK letters and CJK compatibility (㈱ ㍿ ㎏)
    (0xFE10, 0xFE1F),  # vertical forms
    (0xFE30, 0xFE6F),  # CJK compatibility forms and small form variants
)


def _cjk_repertoire() -> set[int]:
    """Kana, hangul, CJK punctuation, the ideographs of JIS X 0208 and GB 2312, and the
    characters CJK text mixes in (:data:`CJK_COMPANIONS`)."""
    cps: set[int] = set(range(0x3000, 0x3100)) | set(range(0x31F0, 0x3200))
    cps |= set(range(0xFF00, 0xFFF0)) | set(range(0x3130, 0x3190))
    for first, last in CJK_COMPANIONS:
        cps |= set(range(first, last + 1))
    for cp in [*range(0x4E00, 0xA000), *range(0xAC00, 0xD7A4)]:
        ch = chr(cp)
        for codec in ("shift_jis", "gb2312", "euc_kr"):
            try:
                # Two bytes: in the standard's own table (euc_kr spells other hangul in eight).
                if len(ch.encode(codec)) != 2:
                    continue
            except UnicodeEncodeError:
                continue
            # KS X 1001's hanja are left to the Japanese and Chinese sets: Korean titles are
            # written in hangul.
            if codec != "euc_kr" or cp >= 0xAC00:
                cps.add(cp)
            break
    return cps


def _script_fonts(source: Path, out: Path) -> None:
    for family in SCRIPT_FAMILIES:
        for weight in WEIGHTS:
            path = _find(source, f"{family}-{weight}.ttf")
            if path is None:
                print(f"missing {family}-{weight}", file=sys.stderr)
                continue
            font = TTFont(str(path), recalcTimestamp=False)
            subsetter = subset.Subsetter(_options())
            subsetter.populate(unicodes=font.getBestCmap().keys())
            subsetter.subset(font)
            font.save(str(out / path.name))


def _cjk(source: Path, out: Path) -> None:
    wanted = _cjk_repertoire()
    for weight in WEIGHTS:
        path = _find(source, f"NotoSansCJK-{weight}.ttc")
        if path is None:
            print(f"missing NotoSansCJK-{weight}", file=sys.stderr)
            continue
        collection = TTCollection(str(path))
        faces = {f["name"].getDebugName(4).replace(f" {weight}", ""): f for f in collection.fonts}
        numbers = {name: list(collection.fonts).index(faces[name]) for name in CJK_FACES}
        # One glyph set for the three faces: the outlines any of them reaches from the
        # repertoire, through its character map or the substitutions a shaper makes by default
        # (the Korean face's space, quotes and ellipsis are its own glyphs, chosen by 'locl').
        glyphs: set[str] = set()
        for name in CJK_FACES:
            font = _default_language(TTFont(str(path), fontNumber=numbers[name]))
            subsetter = subset.Subsetter(_cjk_options())
            subsetter.populate(unicodes=wanted)
            subsetter.subset(font)
            glyphs |= set(font.getGlyphOrder())
        kept = []
        for name in CJK_FACES:
            font = TTFont(str(path), fontNumber=numbers[name], recalcTimestamp=False)
            font = _default_language(font)
            options = _cjk_options()
            # Exactly these glyphs in every face (no per-face closure), so that they can share
            # one outline table.
            options.layout_closure = False
            subsetter = subset.Subsetter(options)
            subsetter.populate(glyphs=sorted(glyphs), unicodes=wanted)
            subsetter.subset(font)
            kept.append(font)
        # Same source, same glyph set: the outlines and metrics are one table, stored once.
        for font in kept[1:]:
            for tag in ("CFF ", "hmtx", "vmtx", "VORG"):
                if tag in kept[0]:
                    font[tag] = kept[0][tag]
        result = TTCollection()
        result.fonts = kept
        result.save(str(out / path.name), shareTables=True)


def _emoji(source: Path, out: Path) -> None:
    path = _find(source, "NotoColorEmoji.ttf")
    if path is not None:
        (out / path.name).write_bytes(path.read_bytes())


def _check_sources(source: Path) -> None:
    """Stop unless SOURCE_DIR holds the releases of :data:`SOURCES`."""
    for package, version, name, expected in SOURCES:
        path = _find(source, name)
        if path is None:
            sys.exit(f"{name} not found: unpack {package} {version} into {source}")
        font = TTFont(str(path), lazy=True, fontNumber=0)
        found = font["name"].getDebugName(5) or ""
        font.close()
        if not found.startswith(expected):
            sys.exit(f"{path}: {found!r}, expected {expected!r} ({package} {version})")
        print(f"{package} {version}: {path}", file=sys.stderr)


def main(argv: list[str]) -> None:
    source = Path(argv[1])
    out = Path(argv[2]) if len(argv) > 2 else Path(__file__).parent.parent / "ogshot/fonts/noto"
    _check_sources(source)
    out.mkdir(parents=True, exist_ok=True)
    _script_fonts(source, out)
    _cjk(source, out)
    _emoji(source, out)


if __name__ == "__main__":
    main(sys.argv)
