"""Line breaking and fitting: pure functions that return ``(size, lines)``.

Fitting finds the largest font size between a box's minimum and maximum at which the text wraps
into at most ``max_lines`` lines that fit the box; at the minimum size, what does not fit is cut and
ends in an ellipsis. Nothing here draws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

ELLIPSIS = "…"

#: Measures the advance width of a string at the current size.
Measure = Callable[[str], float]


@dataclass(frozen=True)
class Fitted:
    size: int
    lines: tuple[str, ...]
    line_height: int
    truncated: bool


def _split_long(word: str, width: float, measure: Measure) -> list[str]:
    """Cut a token wider than the line (a URL, a long compound) into pieces that fit."""
    pieces: list[str] = []
    current = ""
    for ch in word:
        if current and measure(current + ch) > width:
            pieces.append(current)
            current = ch
        else:
            current += ch
    if current:
        pieces.append(current)
    return pieces


def wrap(text: str, width: float, measure: Measure) -> list[str]:
    """Greedy wrap at spaces; a word wider than the line is cut between characters."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        if not word:
            continue
        candidate = f"{current} {word}" if current else word
        if measure(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
            current = ""
        if measure(word) <= width:
            current = word
        else:
            *full, current = _split_long(word, width, measure)
            lines.extend(full)
    if current:
        lines.append(current)
    return lines


def ellipsize(line: str, width: float, measure: Measure) -> str:
    """Shorten ``line`` until it and a trailing ellipsis fit ``width``."""
    line = line.rstrip()
    while line and measure(line + ELLIPSIS) > width:
        line = line[:-1].rstrip()
    return line + ELLIPSIS


def fit(
    text: str,
    *,
    width: int,
    height: int,
    max_size: int,
    min_size: int,
    max_lines: int,
    line_height: float,
    measure_at: Callable[[int], Measure],
) -> Fitted:
    """The largest size in ``[min_size, max_size]`` at which ``text`` fits; else cut at min_size."""

    def attempt(size: int) -> tuple[list[str], int, bool]:
        measure = measure_at(size)
        lines = wrap(text, width, measure)
        step = max(1, round(size * line_height))
        room = max(1, min(max_lines, (height + step - size) // step))
        return lines, step, len(lines) <= room

    lo, hi = min_size, max_size
    best: int | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        if attempt(mid)[2]:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    if best is not None:
        lines, step, _ = attempt(best)
        return Fitted(best, tuple(lines), step, False)

    size = min_size
    measure = measure_at(size)
    lines, step, _ = attempt(size)
    room = max(1, min(max_lines, (height + step - size) // step))
    kept = lines[:room]
    kept[-1] = ellipsize(kept[-1], width, measure)
    return Fitted(size, tuple(kept), step, True)
