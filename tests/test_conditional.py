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
        # Empty list elements are ignored (RFC 9110 §5.6.1).
        (', "abc123"', True),
        ('"other",, ,"abc123",', True),
        (",", False),
        # Two lines, as ogshot.headers combines them.
        ('"other", "abc123"', True),
        # A comma inside an entity tag is part of it.
        ('"abc,123"', False),
        ('"x,"abc123"', False),
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
        # Positions are ASCII digits: str.isdigit() also accepts these, int() does not.
        ("bytes=\u00b2-5", None, None),
        ("bytes=0-\u00b3", None, None),
        ("bytes=-\u00b9", None, None),
        ("bytes=\u0661-5", None, None),
        ("bytes=+1-5", None, None),
        # Any length: thousands of digits read as "very large", never converted.
        ("bytes=" + "9" * 5000 + "-", None, None),
        ("bytes=5-" + "9" * 5000, None, (5, 999)),
        ("bytes=-" + "9" * 5000, None, None),
        ("bytes=" + "0" * 5000 + "5-9", None, (5, 9)),
        # Empty list elements are ignored; two specs (two Range lines combined) give the 200.
        ("bytes=, 0-99 ,", None, (0, 99)),
        ("bytes=0-99, bytes=0-99", None, None),
        ("bytes=0-9, 20-29", None, None),
        ("BYTES = 0-99", None, (0, 99)),
        ("bytes=0 - 99", None, None),
        ("bytes=\u00a00-99", None, None),
        ("bytes", None, None),
        ("bytes=", None, None),
        ("bytes=-", None, None),
    ],
)
def test_byte_range(
    header: str | None, if_range: str | None, expected: tuple[int, int] | None
) -> None:
    assert byte_range(header, if_range, TAG, 1000) == expected
