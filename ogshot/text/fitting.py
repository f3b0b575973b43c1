"""Fitting: the largest size at which a text fits its box, and the lines it takes there."""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cachetools import LRUCache

from ..fonts import FontSet, Weight
from .breaking import _Lazy
from .clusters import normalise
from .cutting import even_cuts
from .setter import Line, Setter


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
    #: The regional CJK face the whole text was measured with (``jp``, ``kr`` or ``sc``): the
    #: lines are drawn in it too, even when the kana or hangul that chose it were cut off.
    region: str = "sc"

    @property
    def height(self) -> int:
        if not self.lines:
            return 0
        return (len(self.lines) - 1) * self.line_height + self.ascent + self.descent


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


#: The least gap left between the ink of a line and the ink of the next, in ems; and in
#: pixels, for the anti-aliased fringe that rasterising adds around each line's outlines.
CLEARANCE = 0.05
FRINGE = 2


def spacing(
    inks: list[tuple[float, float]], size: int, step: int, ascent: int, descent: int
) -> tuple[int, int, int]:
    """Line step, ascent and descent for lines whose ink reaches ``inks`` (ems above and below
    their baselines): the nominal ones from the fonts' metrics, widened where ink would cross
    them. Consecutive lines are set at least :data:`CLEARANCE` apart, ink to ink (stacked
    Arabic marks over the letters that descend on the line above), with one step for all
    lines, so that their rhythm stays even; the first line's ink stays below the block's top
    and the last line's above its bottom, where the box would clip it.
    """
    for (_, below), (above, _) in zip(inks, inks[1:], strict=False):
        step = max(step, math.ceil((below + above + CLEARANCE) * size) + FRINGE)
    if inks:
        ascent = max(ascent, math.ceil(inks[0][0] * size))
        descent = max(descent, math.ceil(inks[-1][1] * size))
    return step, ascent, descent


#: A title that fits one line at this share of its best size is set on one line there.
ONE_LINE_SHARE = 0.8


def _one_line(
    best: int,
    min_size: int,
    attempt: Callable[[int], tuple[list[tuple[int, int]], bool, bool, int, int, int]],
) -> int:
    """``best``, or a size a little smaller at which a short title takes one line, not two."""
    lines, *_ = attempt(best)
    if len(lines) != 2:
        return best
    lo, hi = max(min_size, math.ceil(best * ONE_LINE_SHARE)), best - 1
    found = None
    while lo <= hi:  # the largest size whose whole text is one line
        mid = (lo + hi) // 2
        spans, left, broke, *_ = attempt(mid)
        if len(spans) == 1 and not left and not broke:
            found, lo = mid, mid + 1
        else:
            hi = mid - 1
    return found if found is not None else best


#: Fitted texts kept per font set (the least recently used forgotten first), and the longest
#: text kept: a site's label and tagline come back on every one of its cards, and stay kept
#: however many new titles come between them.
_KEPT = 1024
_KEPT_TEXT = 256
#: What a fitting depends on, in the order of fit's arguments.
_FitKey = tuple[str, Weight, int, int, int, int, int, float]
_kept: weakref.WeakKeyDictionary[FontSet, LRUCache[_FitKey, Fitted]] = (
    weakref.WeakKeyDictionary()
)
_kept_lock = threading.Lock()


def forget(fonts: FontSet) -> None:
    """Forget the texts fitted in ``fonts``: what a benchmark of fitting itself starts from."""
    with _kept_lock:
        _kept.pop(fonts, None)


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
    """The largest size in ``[min_size, max_size]`` at which ``text`` fits; else cut at min_size.

    Fitting is pure: a text fitted once in a font set is answered from memory the next time.
    """
    key: _FitKey = (text, weight, width, height, max_size, min_size, max_lines, line_height)
    with _kept_lock:  # a lookup moves the text to the recent end
        kept = _kept.get(fonts)
        found = kept.get(key) if kept is not None else None
    if found is not None:
        return found
    found = _fit(fonts, key)
    if len(text) <= _KEPT_TEXT:
        with _kept_lock:
            kept = _kept.get(fonts)
            if kept is None:
                kept = _kept[fonts] = LRUCache(maxsize=_KEPT)
            kept[key] = found
    return found


def _fit(fonts: FontSet, key: _FitKey) -> Fitted:
    """:func:`fit` without memory, for its key."""
    text, weight, width, height, max_size, min_size, max_lines, line_height = key
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
        while rows > 0:
            lines, left, broke = setter.wrap(width, size, rows, units)
            if len(lines) < 2:
                return lines, left, broke, step, ascent, descent
            s, a, d = spacing([setter.ink(i, j) for i, j in lines], size, step, ascent, descent)
            if (len(lines) - 1) * s + a + d <= height:
                return lines, left, broke, s, a, d
            rows = len(lines) - 1  # spaced by their ink, these lines overflow: one fewer
        return [], True, False, step, ascent, descent

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
    if best is not None:
        size = _one_line(best, min_size, attempt)
    spans, left, broke, step, ascent, descent = attempt(size)
    left = left or len(text) > len(setter.text)
    if not left and len(spans) > 1:
        wrapped = spans
        spans = _balance(setter, spans, width, size, units, broke)
        if broke:
            spans = even_cuts(setter, spans, width, size, units)
        # Other lines have other ink: keep the balanced ones only if they still fit the box.
        nominal = max(1, round(size * line_height)), *setter.metrics(size)
        vertical = spacing([setter.ink(i, j) for i, j in spans], size, *nominal)
        if (len(spans) - 1) * vertical[0] + vertical[1] + vertical[2] <= height:
            step, ascent, descent = vertical
        else:
            spans = wrapped
    texts = [setter.parts[i:j] for i, j in spans]
    if left and spans:
        texts[-1] = setter.ellipsize(*spans[-1], width, size)
    laid = tuple(setter.layout(parts, size) for parts in texts)
    return Fitted(size, laid, step, ascent, descent, left, setter.base_rtl, setter.region)
