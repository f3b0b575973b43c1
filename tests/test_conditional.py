from __future__ import annotations

import pytest

from ogshot.conditional import byte_range, none_match

TAG = '"abc123"'


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (None, False),
        ("", False),
        ('"abc123"', True),
        ('W/"abc123"', True),
        ('"other", "abc123"', True),
        ('"other",W/"abc123"  ', True),
        ("*", True),
        (" * ", True),
        ('"other"', False),
        ("abc123", False),  # unquoted: malformed, never matches
        ('"abc', False),
        ('"other", garbage', False),
    ],
)
def test_if_none_match_uses_weak_comparison(header: str | None, match: bool) -> None:
    assert none_match(header, TAG) is match


@pytest.mark.parametrize(
    ("header", "if_range", "expected"),
    [
        (None, None, None),
        ("bytes=0-99", None, (0, 99)),
        ("bytes=100-", None, (100, 999)),
        ("bytes=-100", None, (900, 999)),
        ("bytes=990-5000", None, (990, 999)),
        ("bytes=0-524288", None, None),  # Facebook's range covers the whole card: plain 200
        ("bytes=0-", None, None),
        ("bytes=1000-", None, None),  # unsatisfiable: ignored, full 200
        ("bytes=5-2", None, None),
        ("bytes=0-1,5-9", None, None),  # multiple ranges: ignored
        ("items=0-5", None, None),
        ("bytes=a-b", None, None),
        ("bytes=-0", None, None),
        ("bytes=0-99", TAG, (0, 99)),
        ("bytes=0-99", '"stale"', None),
        ("bytes=0-99", 'W/"abc123"', None),  # If-Range needs a strong match
    ],
)
def test_byte_range(
    header: str | None, if_range: str | None, expected: tuple[int, int] | None
) -> None:
    assert byte_range(header, if_range, TAG, 1000) == expected
