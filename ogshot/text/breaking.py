"""Line-break opportunities (UAX #14) as spans of grapheme clusters.

Plain alphabetic text is split directly (exact for it, and far cheaper); anything else goes through
``uniseg``'s full algorithm. Korean breaks at spaces, as it is typeset.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

from fontTools import unicodedata as ucd
from uniseg.linebreak import line_break_units

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


@lru_cache(maxsize=1024)
def break_spans(parts: tuple[str, ...], first: int) -> tuple[tuple[int, int], ...]:
    """:func:`_spans` (UAX #14), less the breaks that would start a line with a dash, "+" or
    an arrow after a word of a script that spaces its words: "word —" stays together."""
    spans = _spans(parts, first)
    out: list[tuple[int, int]] = []
    for begin, end in spans:
        local = begin - first
        if out and parts[local][0] in _KEPT_WITH_PREVIOUS and _after_a_word(parts, local):
            out[-1] = (out[-1][0], end)
        else:
            out.append((begin, end))
    return tuple(out)


#: Characters that never start a line after a space in scripts that space their words: UAX #14
#: allows a break before them there (B2, PR, AL), which leaves a dash or an arrow dangling.
_KEPT_WITH_PREVIOUS = frozenset("—+→")
#: Scripts written without spaces between words, where UAX #14 alone decides.
_UNSPACED = frozenset({"Hani", "Hira", "Kana", "Thai", "Laoo", "Khmr", "Mymr", "Tibt"})


def _after_a_word(parts: tuple[str, ...], index: int) -> bool:
    """Whether a word of a script that spaces its words comes before ``index`` (spaces aside)."""
    i = index - 1
    while i >= 0 and parts[i].isspace():
        i -= 1
    return i >= 0 and not unspaced(parts[i])


def unspaced(cluster: str) -> bool:
    """Whether a cluster belongs to a script written without spaces between its words."""
    return ucd.script(cluster[0]) in _UNSPACED


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

