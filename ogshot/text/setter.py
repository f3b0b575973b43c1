"""The setter: one text in one weight of a font set, measured, wrapped and laid out in runs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bidi import get_base_level

from ..fonts import EMOJI, EMOJI_SIZE, FontSet, Weight, cjk_region
from . import order
from .breaking import _CHUNK, break_spans
from .clusters import clusters, is_neutral

ELLIPSIS = "…"


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
        self.base_rtl = bool(get_base_level(text)) if text else False
        self.parts = clusters(text)
        fonts.warn_missing(text)
        self.picks = self._pick_all(self.parts)
        # Where each cluster starts in the text (and its end): a span's text is one slice.
        self._starts = [0]
        for part in self.parts:
            self._starts.append(self._starts[-1] + len(part))
        #: The family of every cluster, when the whole text is set in one.
        self._family = self.picks[0] if len(set(self.picks)) == 1 else None
        self._widths: dict[tuple[int, int, int], float] = {}
        self._inks: dict[tuple[int, int], tuple[float, float]] = {}
        self._plain: dict[tuple[str, int], float] = {}
        self._units: dict[tuple[int, int, int], tuple[int, float, float]] = {}

    def _pick_all(self, parts: tuple[str, ...]) -> list[str]:
        """A family per cluster; spaces and punctuation stay in the font of the run before."""
        picks: list[str] = []
        for cluster in parts:
            family = self.fonts.pick(cluster)
            if picks and family != picks[-1] and is_neutral(cluster):
                prev = picks[-1]
                if prev != EMOJI and self.fonts.covers(prev, cluster):
                    family = prev
            picks.append(family)
        return picks

    # -- measuring ---------------------------------------------------------------------------

    def _run_width(self, text: str, family: str, size: int, rtl: bool) -> float:
        return self.fonts.advance(family, self.weight, text, rtl, self.region) * size

    def _pieces(self, i: int, j: int) -> list[tuple[str, str]]:
        """The text of clusters ``i:j`` in runs of one family: (text, family)."""
        starts, text = self._starts, self.text
        if j <= i:
            return []
        if self._family is not None:
            return [(text[starts[i] : starts[j]], self._family)]
        runs: list[tuple[str, str]] = []
        picks = self.picks
        begin = i
        for k in range(i + 1, j):
            if picks[k] != picks[begin]:
                runs.append((text[starts[begin] : starts[k]], picks[begin]))
                begin = k
        runs.append((text[starts[begin] : starts[j]], picks[begin]))
        return runs

    def width(self, i: int, j: int, size: int) -> float:
        """Advance width of clusters ``i:j`` at ``size``, font by font."""
        key = (i, j, size)
        found = self._widths.get(key)
        if found is None:
            found = sum(self._run_width(t, f, size, self.base_rtl) for t, f in self._pieces(i, j))
            if len(self._widths) < 50_000:
                self._widths[key] = found
        return found

    def _unit(self, i: int, j: int, size: int) -> tuple[int, float, float]:
        """For the span ``i:j`` at ``size``: where it ends without its trailing spaces, its width
        without them, and theirs. Wrapping asks this of every unit at every size it tries."""
        key = (i, j, size)
        found = self._units.get(key)
        if found is None:
            t = self._trim(i, j)
            found = (t, self.width(i, t, size), self._spaces(i, j, size))
            if len(self._units) < 50_000:
                self._units[key] = found
        return found

    def _spaces(self, i: int, j: int, size: int) -> float:
        """Width of the spaces that end the span ``i:j``."""
        count = j - self._trim(i, j)
        return count * self.width_of(" ", size) if count else 0.0

    def ink(self, i: int, j: int) -> tuple[float, float]:
        """How far the ink of clusters ``i:j`` reaches above and below the baseline, in ems."""
        key = (i, j)
        found = self._inks.get(key)
        if found is None:
            above = below = 0.0
            for text, family in self._pieces(i, j):
                a, b = self.fonts.ink(family, self.weight, text, self.base_rtl, self.region)
                above, below = max(above, a), max(below, b)
            found = (above, below)
            if len(self._inks) < 50_000:
                self._inks[key] = found
        return found

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
            size = _CHUNK
            while True:
                chunk = parts[begin : begin + size]
                last = begin + len(chunk) >= len(parts)
                spans = break_spans(chunk, begin)  # shared by the cache: never changed here
                if last or len(spans) > 1:
                    break
                # One word longer than the chunk: its end lies further on. Handing the chunk on
                # as a unit would cut the word where the chunk ends ("…expialidoc" "ious…").
                size *= 2
            if not last:
                spans = spans[:-1]  # the break after a chunk's last unit depends on what follows
            yield from spans
            begin = spans[-1][1]

    def longest_within(self, i: int, lo: int, hi: int, width: float, size: int) -> int:
        """The largest end in ``lo..hi`` whose span from ``i`` is at most ``width`` wide (``lo``
        when none is), by bisection: widths grow with the end."""
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.width(i, mid, size) <= width:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def split(self, i: int, j: int, width: float, size: int, most: int) -> list[tuple[int, int]]:
        """Cut a span wider than the line between clusters, at most ``most`` pieces.

        Each piece is the longest run of clusters that fits, so the word takes the fewest lines
        it can: the size is chosen on those; :func:`.cutting.even_cuts` then evens them out.
        """
        pieces: list[tuple[int, int]] = []
        start = i
        while j - start > 1 and self.width(start, j, size) > width:
            # The longest prefix that fits (at least one cluster).
            lo = self.longest_within(start, start + 1, j - 1, width, size)
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
            t, w, spaces = self._unit(i, j, size)
            if begin is not None:
                estimate = running + w
                fits = estimate <= width * 0.97 or (
                    estimate <= width * 1.03
                    and self.width(begin, t if t > i else self._trim(begin, j), size) <= width
                )
                if fits:
                    running = estimate + spaces
                    end = j
                    continue
                lines.append((begin, self._trim(begin, end)))
                begin = None
                if len(lines) >= limit:
                    return lines, True, broke
            if w <= width:
                begin, end = i, j
                running = w + spaces
                continue
            broke = True
            *full, last = self.split(i, t, width, size, limit - len(lines))
            for piece in full:
                lines.append(piece)
                if len(lines) >= limit:
                    return lines, True, broke
            begin, end = last[0], j
            running = self.width(last[0], last[1], size) + spaces
        if begin is not None and self._trim(begin, end) > begin:
            lines.append((begin, self._trim(begin, end)))
        left = bool(lines) and lines[-1][1] < self._trim(0, len(self.parts))
        return lines, left, broke

    def ellipsize(self, i: int, j: int, width: float, size: int) -> tuple[str, ...]:
        """The longest cluster prefix of the line that fits ``width`` with an ellipsis after it."""
        tail = self.width_of(ELLIPSIS, size)
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
        levels = order.levels(parts, self.base_rtl)
        pieces: list[tuple[str, str, int]] = []  # text, family, level
        for cluster, family, level in zip(parts, picks, levels, strict=True):
            if pieces and pieces[-1][1] == family and pieces[-1][2] == level:
                pieces[-1] = (pieces[-1][0] + cluster, family, level)
            else:
                pieces.append((cluster, family, level))
        runs = []
        for index in order.reorder([p[2] for p in pieces]):
            text, family, level = pieces[index]
            rtl = level % 2 == 1
            if family == EMOJI and rtl:
                # Colour emoji are drawn as a left-to-right strip: put the clusters in display
                # order here (a ZWJ sequence or flag stays whole).
                text, rtl = "".join(reversed(clusters(text))), False
            runs.append(Run(text, family, rtl, self._run_width(text, family, size, rtl)))
        return Line("".join(parts), tuple(runs), sum(r.width for r in runs))
