"""Display order: resolved bidi levels of a line's clusters and the reordering of runs (UAX #9)."""

from __future__ import annotations

import unicodedata

from bidi import algorithm as uba

#: Bidi classes the algorithm drops (explicit embeddings, zero-width joiners…): such a character
#: stands in as a neutral so that levels stay aligned with clusters.
_DROPPED = frozenset(uba.X9_REMOVED)


def levels(parts: tuple[str, ...], rtl: bool) -> list[int]:
    """Resolved bidi embedding level of each cluster (rules up to I2; L1 for trailing spaces)."""
    if not rtl and not any(strong_rtl(p) for p in parts):
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


def strong_rtl(cluster: str) -> bool:
    return unicodedata.bidirectional(cluster[0]) in ("R", "AL")


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
