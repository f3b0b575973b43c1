"""Where a word wider than the line is cut: evenly, once the size is chosen.

Wrapping cuts such a word where each line is full (:meth:`Setter.split`), which gives the
fewest lines and so the largest size; the last piece keeps what is left, often a stub
("…expialidoc" "ious"). :func:`even_cuts` then moves the cuts, keeping the lines.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable

from .breaking import unspaced
from .setter import Setter


def even_cuts(
    setter: Setter,
    lines: list[tuple[int, int]],
    width: float,
    size: int,
    units: Iterable[tuple[int, int]],
) -> list[tuple[int, int]]:
    """The same lines, with every word that was cut between clusters cut evenly.

    Cut where the line is full, a word keeps what is left for its last line, often a stub
    ("…expialidoc" "ious"). Here its pieces are made as even as clusters allow, its last
    piece still sharing its line with the words that follow it there. The number of lines
    and every other line stay as they are. Text of the scripts written without spaces (Thai,
    Lao, Khmer, Myanmar), where a unit is a phrase rather than a word, keeps its cuts where
    the line is full.
    """
    starts = [i for i, _ in units]
    known = set(starts)
    out = list(lines)
    first = 0
    while first < len(out) - 1:
        last = first
        while last + 1 < len(out) and out[last + 1][0] not in known:
            last += 1  # the next line starts inside a unit: a cut
        if last > first and not unspaced(setter.parts[out[first][0]]):
            # The cut word ends where the next unit after its last piece begins.
            after = bisect_right(starts, out[last][0])
            word_end = min(starts[after], out[last][1]) if after < len(starts) else out[last][1]
            even = _even(
                setter, out[first][0], word_end, out[last][1], last - first + 1, width, size
            )
            if even is not None:
                out[first : last + 1] = even
        first = last + 1
    return out


def _even(
    setter: Setter, i: int, word_end: int, line_end: int, count: int, width: float, size: int
) -> list[tuple[int, int]] | None:
    """The word ``i:word_end`` in ``count`` pieces as even as they can be, the last piece
    on a line that runs on to ``line_end``; None if no line would fit ``width``.
    """
    word = setter.width(i, word_end, size)
    # What follows the word on its last line leaves that much room for its last piece.
    last = _greedy_last(setter, i, word_end, count, width, size)
    room = width - (setter.width(last, line_end, size) - setter.width(last, word_end, size))
    share = (word - min(word / count, room)) / (count - 1)
    bounds = [i]
    for k in range(1, count):
        goal = share * k
        # The last boundary at or before the goal (one cluster at least after the previous
        # cut, and one left for each piece still to come), then the nearer of it and the next.
        lo, hi = bounds[-1] + 1, word_end - (count - k)
        if lo > hi:
            return None
        lo = setter.longest_within(i, lo, hi, goal, size)
        if lo < word_end - (count - k) and (
            setter.width(i, lo + 1, size) - goal < goal - setter.width(i, lo, size)
        ):
            lo += 1
        bounds.append(lo)
    bounds.append(word_end)

    def cost(b: list[int]) -> tuple[float, float]:
        """How far lines run over the width, then the spread of the pieces' widths."""
        pieces = [setter.width(x, y, size) for x, y in zip(b, b[1:], strict=False)]
        lines = [*pieces[:-1], setter.width(b[-2], line_end, size)]
        over = sum(max(0.0, w - width) for w in lines)
        return over, max(pieces) - min(pieces)

    # Rounding each cut to its nearest boundary can leave neighbours a letter apart, or a
    # line a little over: move single cuts by one cluster while that does better.
    best = cost(bounds)
    for _ in range(4 * count + 8):
        moves = [
            bounds[:k] + [bounds[k] + step] + bounds[k + 1 :]
            for k in range(1, count)
            for step in (-1, 1)
            if bounds[k - 1] < bounds[k] + step < bounds[k + 1]
        ]
        scored = min(((cost(b), b) for b in moves), default=None)
        if scored is None or scored[0] >= best:
            break
        best, bounds = scored
    if best[0] > 0:
        return None
    bounds[-1] = line_end
    return list(zip(bounds, bounds[1:], strict=False))


def _greedy_last(setter: Setter, i: int, j: int, count: int, width: float, size: int) -> int:
    """Where the last of ``count`` pieces begins when every piece before it is full."""
    pieces = setter.split(i, j, width, size, count - 1)
    return pieces[-1][0]
