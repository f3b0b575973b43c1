"""Setting text: font runs, bidi order, Unicode line breaking and fitting. Nothing here draws.

The road from a string to lines:

1. the text is cut into grapheme clusters (UAX #29), each set in the first font of the chain
   that covers it (:meth:`FontSet.pick`); spaces and punctuation stay in the run around them;
2. line breaking follows UAX #14 (``uniseg``): CJK breaks between characters, other scripts at
   spaces; a unit wider than the line (a URL) is cut between grapheme clusters, never inside one;
3. :func:`fit` tries sizes from the box's maximum down (by bisection) until the text fits in its
   line limit; at the minimum size what does not fit is cut and ends in an ellipsis;
4. each line is ordered for display by the Unicode bidi algorithm (``python-bidi``), then split into
   runs of one font and one direction, which Pillow's RAQM layout (HarfBuzz) shapes.

Fitting returns values (:class:`Fitted`); work is bounded by the box's line count, not the length
of the text, so a 2,000-character title costs about what a short one does.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from bidi import algorithm as uba
from uniseg.graphemecluster import grapheme_clusters
from uniseg.linebreak import line_break_units

from .fonts import EMOJI, EMOJI_SIZE, FontSet, Weight, cjk_region

ELLIPSIS = "…"
_SPACES = re.compile(r"\s+")
#: Bidi classes the algorithm drops (explicit embeddings, zero-width joiners…): such a character
#: stands in as a neutral so that levels stay aligned with clusters.
_DROPPED = frozenset(uba.X9_REMOVED)


@dataclass(frozen=True)
class Run:
    """A piece of a line in one font and one direction, in display order."""

    text: str
    font: str
    rtl: bool
    width: float


@dataclass(frozen=True)
class Line:
    text: str
    runs: tuple[Run, ...]
    width: float


@dataclass(frozen=True)
class Fitted:
    size: int
    lines: tuple[Line, ...]
    line_height: int
    ascent: int
    descent: int
    truncated: bool
    #: The paragraph reads right to left: lines align to the right edge of a left-aligned box.
    rtl: bool

    @property
    def height(self) -> int:
        if not self.lines:
            return 0
        return (len(self.lines) - 1) * self.line_height + self.ascent + self.descent


def normalise(text: str) -> str:
    """One space between words; nothing at the ends."""
    return _SPACES.sub(" ", text).strip()


def _plain(ch: str) -> bool:
    """A character that always starts a grapheme cluster of its own and joins none."""
    cp = ord(ch)
    if cp < 0x300:
        return ch not in "\r\n"
    if 0x1100 <= cp <= 0x11FF or 0xA960 <= cp <= 0xA97F or 0xD7B0 <= cp <= 0xD7FF:
        return False  # Hangul jamo compose into syllables
    if 0x1F1E6 <= cp <= 0x1F1FF or 0x1F3FB <= cp <= 0x1F3FF:
        return False  # regional indicators pair into flags; skin tones modify
    return (
        ch not in _SPECIAL
        and (cp >= 0x10000 and cp >= 0x1F000 or cp < 0x10000)
        and (unicodedata.category(ch) not in _JOINING)
    )


_JOINING = frozenset({"Mn", "Mc", "Me", "Cf", "Cc", "Co", "Cs"})
#: Letters that UAX #29 treats as spacing marks or prepended characters.
_SPECIAL = frozenset("\u0e33\u0eb3\u0d4e")


def clusters(text: str) -> tuple[str, ...]:
    """Grapheme clusters (UAX #29): what a reader sees as one character.

    Text made only of characters that never join (most Latin, Greek, Cyrillic, CJK ideographs,
    punctuation) takes a fast path; anything else goes through the full algorithm.
    """
    if not text:
        return ()
    if all(_plain(ch) for ch in text):
        return tuple(text)
    return tuple(grapheme_clusters(text))


def _is_neutral(cluster: str) -> bool:
    """Spaces and punctuation, which may stay in the font of the run around them."""
    category = unicodedata.category(cluster[0])
    return category[0] in "ZP"


class Setter:
    """Measures and lays out one text in one weight of a font set.

    The text is cut into grapheme clusters and each cluster given its font once; everything after
    works on spans of cluster indices, so wrapping never re-segments or splits a cluster.
    """

    def __init__(self, fonts: FontSet, weight: Weight, text: str) -> None:
        self.fonts = fonts
        self.weight = weight
        self.text = text
        self.region = cjk_region(text)
        self.base_rtl = bool(uba.get_base_level(text)) if text else False
        self.parts = clusters(text)
        self.picks = self._pick_all(self.parts)
        self._widths: dict[tuple[int, int, int], float] = {}
        self._plain: dict[tuple[str, int], float] = {}

    def _pick_all(self, parts: tuple[str, ...]) -> list[str]:
        """A family per cluster; spaces and punctuation stay in the font of the run before."""
        picks: list[str] = []
        for cluster in parts:
            family = self.fonts.pick(cluster)
            if picks and family != picks[-1] and _is_neutral(cluster):
                prev = picks[-1]
                if prev != EMOJI and self.fonts.covers(prev, cluster):
                    family = prev
            picks.append(family)
        return picks

    # -- measuring ---------------------------------------------------------------------------

    def _run_width(self, text: str, family: str, size: int, rtl: bool) -> float:
        return self.fonts.advance(family, self.weight, text, rtl, self.region) * size

    def _pieces(self, parts: tuple[str, ...], picks: list[str]) -> list[tuple[str, str]]:
        runs: list[tuple[str, str]] = []
        for cluster, family in zip(parts, picks, strict=True):
            if runs and runs[-1][1] == family:
                runs[-1] = (runs[-1][0] + cluster, family)
            else:
                runs.append((cluster, family))
        return runs

    def width(self, i: int, j: int, size: int) -> float:
        """Advance width of clusters ``i:j`` at ``size``, font by font."""
        key = (i, j, size)
        found = self._widths.get(key)
        if found is None:
            found = sum(
                self._run_width(t, f, size, self.base_rtl)
                for t, f in self._pieces(self.parts[i:j], self.picks[i:j])
            )
            if len(self._widths) < 50_000:
                self._widths[key] = found
        return found

    def _spaces(self, i: int, j: int, size: int) -> float:
        """Width of the spaces that end the span ``i:j``."""
        count = j - self._trim(i, j)
        return count * self.width_of(" ", size) if count else 0.0

    def width_of(self, text: str, size: int) -> float:
        key = (text, size)
        found = self._plain.get(key)
        if found is None:
            primary = self.fonts.primary.name
            found = self._plain[key] = self.fonts.advance(primary, self.weight, text, False) * size
        return found

    def _trim(self, i: int, j: int) -> int:
        while j > i and self.parts[j - 1].isspace():
            j -= 1
        return j

    def metrics(self, size: int) -> tuple[int, int]:
        """Ascent and descent for lines of this text: the largest of the fonts it uses."""
        primary = self.fonts.primary.name
        ascent, descent = self.fonts.font(primary, self.weight, size).getmetrics()
        for family in set(self.picks):
            if family == primary:
                continue
            a, d = self.fonts.font(family, self.weight, size, self.region).getmetrics()
            if family == EMOJI:
                a, d = round(a * size / EMOJI_SIZE), round(d * size / EMOJI_SIZE)
            ascent, descent = max(ascent, a), max(descent, d)
        return ascent, descent

    # -- breaking ----------------------------------------------------------------------------

    def units(self, stop: int) -> Iterator[tuple[int, int]]:
        """UAX #14 units (a word and the spaces after it; one ideograph…) as cluster spans.

        Produced lazily, a chunk at a time, so that only as much text is examined as the lines
        can show; nothing past the first ``stop`` clusters is looked at.
        """
        parts = self.parts[:stop]
        begin = 0
        while begin < len(parts):
            chunk = parts[begin : begin + _CHUNK]
            last = begin + len(chunk) >= len(parts)
            spans = _spans(chunk, begin)  # shared by the cache: never changed here
            if not last and len(spans) > 1:
                spans = spans[:-1]  # the break after a chunk's last unit depends on what follows
            yield from spans
            begin = spans[-1][1]

    def _split(self, i: int, j: int, width: float, size: int, most: int) -> list[tuple[int, int]]:
        """Cut a span wider than the line between clusters, at most ``most`` pieces."""
        pieces: list[tuple[int, int]] = []
        start = i
        while j - start > 1 and self.width(start, j, size) > width:
            # The longest prefix that fits (at least one cluster), by bisection.
            lo, hi = start + 1, j - 1
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self.width(start, mid, size) <= width:
                    lo = mid
                else:
                    hi = mid - 1
            pieces.append((start, lo))
            start = lo
            if len(pieces) >= most:
                break
        pieces.append((start, j))
        return pieces

    def wrap(
        self, width: float, size: int, limit: int, units: Iterable[tuple[int, int]]
    ) -> tuple[list[tuple[int, int]], bool, bool]:
        """Greedy wrapping into at most ``limit`` lines.

        Also says whether clusters were left over, and whether a unit (a word) had to be cut
        because it is wider than the line.
        """
        broke = False
        lines: list[tuple[int, int]] = []
        begin: int | None = None
        end = 0
        # The line's width so far, spaces included, summed unit by unit: shaping the whole line
        # again for every unit would cost quadratic time. Sums can differ from the shaped line by
        # kerning across units, so near the limit the line is shaped whole to decide.
        running = 0.0
        for i, j in units:
            if begin is not None:
                estimate = running + self.width(i, self._trim(i, j), size)
                fits = estimate <= width * 0.97 or (
                    estimate <= width * 1.03
                    and self.width(begin, self._trim(begin, j), size) <= width
                )
                if fits:
                    running = estimate + self._spaces(i, j, size)
                    end = j
                    continue
                lines.append((begin, self._trim(begin, end)))
                begin = None
                if len(lines) >= limit:
                    return lines, True, broke
            if self.width(i, self._trim(i, j), size) <= width:
                begin, end = i, j
                running = self.width(i, self._trim(i, j), size) + self._spaces(i, j, size)
                continue
            broke = True
            *full, last = self._split(i, self._trim(i, j), width, size, limit - len(lines))
            for piece in full:
                lines.append(piece)
                if len(lines) >= limit:
                    return lines, True, broke
            begin, end = last[0], j
            running = self.width(last[0], last[1], size) + self._spaces(i, j, size)
        if begin is not None and self._trim(begin, end) > begin:
            lines.append((begin, self._trim(begin, end)))
        left = bool(lines) and lines[-1][1] < self._trim(0, len(self.parts))
        return lines, left, broke

    def ellipsize(self, i: int, j: int, width: float, size: int) -> tuple[str, ...]:
        """The longest cluster prefix of the line that fits ``width`` with an ellipsis after it."""
        tail = self.fonts.advance(self.fonts.primary.name, self.weight, ELLIPSIS, False) * size
        lo, hi = i, j
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.width(i, self._trim(i, mid), size) + tail <= width:
                lo = mid
            else:
                hi = mid - 1
        return (*self.parts[i : self._trim(i, lo)], ELLIPSIS)

    # -- display order -----------------------------------------------------------------------

    def layout(self, parts: tuple[str, ...], size: int) -> Line:
        """Runs of one font and direction, in the order they are drawn from left to right."""
        picks = self._pick_all(parts)
        levels = _levels(parts, self.base_rtl)
        pieces: list[tuple[str, str, int]] = []  # text, family, level
        for cluster, family, level in zip(parts, picks, levels, strict=True):
            if pieces and pieces[-1][1] == family and pieces[-1][2] == level:
                pieces[-1] = (pieces[-1][0] + cluster, family, level)
            else:
                pieces.append((cluster, family, level))
        runs = []
        for index in _reorder([p[2] for p in pieces]):
            text, family, level = pieces[index]
            rtl = level % 2 == 1
            if family == EMOJI and rtl:
                # Colour emoji are drawn as a left-to-right strip: put the clusters in display
                # order here (a ZWJ sequence or flag stays whole).
                text, rtl = "".join(reversed(clusters(text))), False
            runs.append(Run(text, family, rtl, self._run_width(text, family, size, rtl)))
        return Line("".join(parts), tuple(runs), sum(r.width for r in runs))


_CHUNK = 64
#: Characters among which UAX #14 allows a break only after spaces and after a hyphen inside a
#: word (letters of the alphabetic scripts, digits, symbols of its "alphabetic" class, and
#: punctuation that binds to its neighbours): such text is split directly, which is exact and far
#: cheaper than the full algorithm.
_BINDING = frozenset(" .,:;'\"()&#@*_=~<>^`!?-‘’“”–—…")
_WORDS = re.compile(r"\S+ *| +")
#: A hyphen inside a word, before a letter: UAX #14 breaks after it ("open-" "source").
_AFTER_HYPHEN = re.compile(r"(?<=[^\s-]-)(?=[^\W\d_])")
#: Where UAX #14 decides otherwise than the two rules above, sent to the full algorithm: no break
#: before closing punctuation, "!" or "?" (LB13) or after an opening parenthesis (LB14) even
#: across spaces, none between a quote and a parenthesis (LB15), a break before a parenthesis
#: that follows punctuation; curly quotes next to spaces (LB15a-b); "!", "?", dashes and "…"
#: glued to what follows, dashes glued to what precedes, em dashes apart only by spaces (LB17);
#: a hyphen that starts a word or is followed by anything but a letter, a digit, a space or the
#: end.
_DECIDED_ELSEWHERE = re.compile(
    r"^ | [.,:;)!?]|\( |[\"'] +\(|[^\w ]\("
    r"|[‘“’”](?: |$)|(?:^| )[‘“’”]"
    r"|[!?–—…][^ !?]|[^ ][–—]|— +—"
    r"|(?:^| )-|-[^\w ]|-_"
)


#: Modifier letters that UAX #14 classes as "break before" (BB), unlike the letters around them.
_BREAK_BEFORE = frozenset("\u02c8\u02cc")


def _simple(ch: str) -> bool:
    return ch in _BINDING or (
        ch.isalnum() and ord(ch) < 0x0530 and ch.isprintable() and ch not in _BREAK_BEFORE
    )


@lru_cache(maxsize=1024)
def _spans(parts: tuple[str, ...], first: int) -> tuple[tuple[int, int], ...]:
    """Line-break units of ``parts`` as spans of cluster indices counted from ``first``."""
    boundary: dict[int, int] = {}  # character offset -> index of the cluster starting there
    offset = 0
    for index, cluster in enumerate(parts):
        boundary[offset] = index
        offset += len(cluster)
    boundary[offset] = len(parts)
    spans: list[tuple[int, int]] = []
    begin = offset = 0
    joined = "".join(parts)
    fast = all(map(_simple, joined)) and not _DECIDED_ELSEWHERE.search(joined)
    if fast:
        units = [u for word in _WORDS.findall(joined) for u in _AFTER_HYPHEN.split(word)]
    else:
        units = list(line_break_units(joined))
    for unit in units:
        offset += len(unit)
        end = boundary.get(offset)
        if end is None or end <= begin:
            continue  # a break inside a cluster is no break
        if end < len(parts) and _hangul(parts[end - 1]) and _hangul(parts[end]):
            continue  # Korean breaks at spaces, as it is typeset, not between syllables
        spans.append((first + begin, first + end))
        begin = end
    if begin < len(parts):
        spans.append((first + begin, first + len(parts)))
    return tuple(spans)


def _hangul(cluster: str) -> bool:
    return 0xAC00 <= ord(cluster[0]) <= 0xD7A3


class _Lazy:
    """A list filled from an iterator only as far as it is read."""

    def __init__(self, source: Iterator[tuple[int, int]]) -> None:
        self._source = source
        self._items: list[tuple[int, int]] = []

    def __iter__(self) -> Iterator[tuple[int, int]]:
        index = 0
        while True:
            if index == len(self._items):
                item = next(self._source, None)
                if item is None:
                    return
                self._items.append(item)
            yield self._items[index]
            index += 1


def _balance(
    setter: Setter,
    spans: list[tuple[int, int]],
    width: int,
    size: int,
    units: Iterable[tuple[int, int]],
    broke: bool,
) -> list[tuple[int, int]]:
    """The narrowest wrapping with the same number of lines: no lone word on the last line.

    A narrower wrapping that would cut a word the full width keeps whole is not taken.
    """
    count = len(spans)
    lo, hi = width // 2, width
    best = spans
    for _ in range(6):
        if hi - lo < 8:
            break
        mid = (lo + hi) // 2
        lines, left, cut = setter.wrap(mid, size, count, units)
        if not left and len(lines) <= count and (broke or not cut):
            best, hi = lines, mid
        else:
            lo = mid
    return best


def _levels(parts: tuple[str, ...], rtl: bool) -> list[int]:
    """Resolved bidi embedding level of each cluster (rules up to I2; L1 for trailing spaces)."""
    if not rtl and not any(_strong_rtl(p) for p in parts):
        return [0] * len(parts)
    reps = "".join(_representative(p) for p in parts)
    storage = uba.get_empty_storage()
    storage["base_level"] = int(rtl)
    storage["base_dir"] = ("L", "R")[int(rtl)]
    uba.get_embedding_levels(reps, storage, False, False)
    uba.explicit_embed_and_overrides(storage, False)
    uba.resolve_weak_types(storage, False)
    uba.resolve_neutral_types(storage, False)
    uba.resolve_implicit_levels(storage, False)
    levels = [int(ch["level"]) for ch in storage["chars"]]
    # L1: whitespace at the end of the line takes the paragraph level.
    i = len(levels) - 1
    while i >= 0 and reps[i] == " ":
        levels[i] = int(rtl)
        i -= 1
    return levels


def _representative(cluster: str) -> str:
    """A character standing for the cluster in the bidi algorithm, of a class it handles."""
    ch = cluster[0]
    if ch.isspace():
        return " "
    kind = unicodedata.bidirectional(ch)
    if not kind:
        return "a"  # unassigned: left to right, the default
    if kind in _DROPPED or kind in ("LRI", "RLI", "FSI", "PDI"):
        return '"'  # isolates and dropped controls act as neutrals
    return ch


def _strong_rtl(cluster: str) -> bool:
    return unicodedata.bidirectional(cluster[0]) in ("R", "AL")


def _reorder(levels: list[int]) -> list[int]:
    """Rule L2 over runs: reverse every sequence at or above each level, highest first."""
    order = list(range(len(levels)))
    if not levels:
        return order
    top = max(levels)
    lowest_odd = min((lv for lv in levels if lv % 2), default=top + 1)
    for level in range(top, lowest_odd - 1, -1):
        i = 0
        while i < len(order):
            if levels[order[i]] >= level:
                j = i
                while j < len(order) and levels[order[j]] >= level:
                    j += 1
                order[i:j] = reversed(order[i:j])
                i = j
            else:
                i += 1
    return order


def fit(
    text: str,
    *,
    fonts: FontSet,
    weight: Weight,
    width: int,
    height: int,
    max_size: int,
    min_size: int,
    max_lines: int,
    line_height: float,
) -> Fitted:
    """The largest size in ``[min_size, max_size]`` at which ``text`` fits; else cut at min_size."""
    text = normalise(text)
    if not text:
        return Fitted(max_size, (), round(max_size * line_height), 0, 0, False, False)
    # No visible cluster is narrower than a tenth of an em: past this many, nothing can show.
    stop = max_lines * (width * 10 // min_size + 1) + 1
    setter = Setter(fonts, weight, text[: stop * 8])
    units = _Lazy(setter.units(stop))

    def attempt(size: int) -> tuple[list[tuple[int, int]], bool, bool, int, int, int]:
        ascent, descent = setter.metrics(size)
        step = max(1, round(size * line_height))
        rows = max(0, min(max_lines, (height - ascent - descent) // step + 1))
        if rows == 0:
            return [], True, False, step, ascent, descent
        lines, left, broke = setter.wrap(width, size, rows, units)
        return lines, left, broke, step, ascent, descent

    def largest(accept: Callable[[int], bool]) -> int | None:
        # Most titles fit at the largest size: try it before bisecting.
        if accept(max_size):
            return max_size
        best: int | None = None
        lo, hi = min_size, max_size - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            if accept(mid):
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        return best

    def whole(size: int) -> bool:
        _, left, broke, *_ = attempt(size)
        return not left and not broke

    def complete(size: int) -> bool:
        return not attempt(size)[1]

    # Shrinking beats cutting a word; cutting (a URL, a very long word) beats an ellipsis.
    best = largest(whole)
    if best is None:
        best = largest(complete)
    size = best if best is not None else min_size
    spans, left, broke, step, ascent, descent = attempt(size)
    left = left or len(text) > len(setter.text)
    if not left and len(spans) > 1:
        spans = _balance(setter, spans, width, size, units, broke)
    texts = [setter.parts[i:j] for i, j in spans]
    if left and spans:
        texts[-1] = setter.ellipsize(*spans[-1], width, size)
    laid = tuple(setter.layout(parts, size) for parts in texts)
    return Fitted(size, laid, step, ascent, descent, left, setter.base_rtl)
