"""Grapheme clusters (UAX #29) and the small character tests the setter needs."""

from __future__ import annotations

import re
import unicodedata

from uniseg.graphemecluster import grapheme_clusters

_SPACES = re.compile(r"\s+")


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
#: Letters that UAX #29 treats as spacing marks, prepended characters or extenders: Thai and Lao
#: SARA AM, Malayalam's dot reph, and the halfwidth katakana voiced marks (ｶﾞ is one cluster).
_SPECIAL = frozenset("\u0e33\u0eb3\u0d4e\uff9e\uff9f")


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


def is_neutral(cluster: str) -> bool:
    """Spaces and punctuation, which may stay in the font of the run around them."""
    category = unicodedata.category(cluster[0])
    return category[0] in "ZP"

