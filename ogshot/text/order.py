"""Display order: resolved bidi levels of a line's clusters and the reordering of runs (UAX #9).

The levels come from GNU FriBidi, the complete implementation of the Unicode Bidirectional
Algorithm that Pillow's RAQM layout itself loads to shape right-to-left text: bracket pairs
(rule N0, so ``book (שלום) עולם`` keeps its parentheses round the Hebrew word), isolates (LRI,
RLI, FSI, PDI), embeddings and overrides. Where FriBiDi cannot be loaded Pillow cannot shape
right-to-left text either; the older algorithm in ``python-bidi`` (no bracket pairs or
isolates) then still orders the runs.

Levels are resolved per line with the paragraph's direction; rule L1 puts trailing whitespace
and isolate controls back at the paragraph level, and rule L2 (:func:`reorder`) reverses runs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import unicodedata

from bidi import algorithm as uba

#: Bidi classes the older algorithm drops (explicit embeddings, zero-width joiners…): such a
#: character stands in as a neutral so that levels stay aligned with clusters.
_DROPPED = frozenset(uba.X9_REMOVED)
#: Classes that can make any part of a line right to left.
_RTL_SOURCES = frozenset({"R", "AL", "AN", "RLE", "RLO", "RLI", "FSI", "LRE", "LRO", "LRI"})
_ISOLATES = frozenset("\u2066\u2067\u2068\u2069")

# FriBiDi's paragraph types (fribidi-bidi-types.h): strong letter, plus the RTL bit.
_PAR_LTR = 0x110
_PAR_RTL = 0x111


@functools.cache
def _fribidi() -> ctypes.CDLL | None:
    names = [ctypes.util.find_library("fribidi"), "libfribidi.so.0", "libfribidi.0.dylib"]
    for name in filter(None, names):
        try:
            lib = ctypes.CDLL(name)
            lib.fribidi_get_par_embedding_levels_ex.restype = ctypes.c_int8
        except (OSError, AttributeError):
            continue
        return lib
    return None


def complete() -> bool:
    """Whether the complete algorithm (FriBiDi) orders text here."""
    return _fribidi() is not None


def _fribidi_levels(lib: ctypes.CDLL, text: str, rtl: bool) -> list[int] | None:
    n = len(text)
    chars = (ctypes.c_uint32 * n)(*map(ord, text))
    types = (ctypes.c_uint32 * n)()
    brackets = (ctypes.c_uint32 * n)()
    levels = (ctypes.c_int8 * n)()
    base = ctypes.c_uint32(_PAR_RTL if rtl else _PAR_LTR)
    lib.fribidi_get_bidi_types(chars, n, types)
    lib.fribidi_get_bracket_types(chars, n, types, brackets)
    if lib.fribidi_get_par_embedding_levels_ex(types, brackets, n, ctypes.byref(base), levels) == 0:
        return None  # out of memory in the library: fall back
    return list(levels)


def _older_levels(parts: tuple[str, ...], rtl: bool) -> list[int]:
    reps = "".join(_representative(p) for p in parts)
    storage = uba.get_empty_storage()
    storage["base_level"] = int(rtl)
    storage["base_dir"] = ("L", "R")[int(rtl)]
    uba.get_embedding_levels(reps, storage, False, False)
    uba.explicit_embed_and_overrides(storage, False)
    uba.resolve_weak_types(storage, False)
    uba.resolve_neutral_types(storage, False)
    uba.resolve_implicit_levels(storage, False)
    return [int(ch["level"]) for ch in storage["chars"]]


def levels(parts: tuple[str, ...], rtl: bool) -> list[int]:
    """Resolved bidi embedding level of each cluster of a line (rules up to I2, and L1)."""
    if not rtl and not any(
        unicodedata.bidirectional(ch) in _RTL_SOURCES for p in parts for ch in p
    ):
        return [0] * len(parts)
    lib = _fribidi()
    text = "".join(parts)
    by_char = _fribidi_levels(lib, text, rtl) if lib is not None and text else None
    if by_char is None:
        found = _older_levels(parts, rtl)
    else:
        # A cluster takes the level of its first character (its base).
        found, offset = [], 0
        for part in parts:
            found.append(by_char[offset])
            offset += len(part)
    # L1: whitespace and isolate controls at the end of the line take the paragraph level.
    i = len(found) - 1
    while i >= 0 and (parts[i].isspace() or parts[i] in _ISOLATES):
        found[i] = int(rtl)
        i -= 1
    return found


def _representative(cluster: str) -> str:
    """A character standing for the cluster in the older algorithm, of a class it handles."""
    ch = cluster[0]
    if ch.isspace():
        return " "
    kind = unicodedata.bidirectional(ch)
    if not kind:
        return "a"  # unassigned: left to right, the default
    if kind in _DROPPED or kind in ("LRI", "RLI", "FSI", "PDI"):
        return '"'  # isolates and dropped controls act as neutrals
    return ch


def reorder(levels: list[int]) -> list[int]:
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
