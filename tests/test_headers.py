"""Header fields read by the RFC 9110 grammar: repeated lines, lists, numbers, any bytes."""

from __future__ import annotations

import pytest

from ogshot.headers import HUGE, Conditions, digits, entity_tags, field_value, list_elements


def test_repeated_lines_are_one_field_joined_in_order() -> None:
    raw = [(b"if-none-match", b'"a"'), (b"accept", b"*/*"), (b"if-none-match", b'"b"')]
    assert field_value(raw, b"if-none-match") == '"a", "b"'
    assert field_value(raw, b"accept") == "*/*"
    assert field_value(raw, b"range") is None


def test_any_byte_decodes() -> None:
    raw = [(b"range", b"bytes=\xb2-5\xff\x00")]
    assert field_value(raw, b"range") == "bytes=\u00b2-5\u00ff\x00"


def test_conditions_combine_each_field() -> None:
    raw = [
        (b"range", b"bytes=0-1"),
        (b"if-none-match", b""),
        (b"range", b"bytes=2-3"),
        (b"if-range", b'"x"'),
    ]
    assert Conditions.read(raw) == Conditions(
        if_none_match="", range="bytes=0-1, bytes=2-3", if_range='"x"'
    )
    assert Conditions.read([]) == Conditions(None, None, None)


@pytest.mark.parametrize(
    ("value", "elements"),
    [
        ("", []),
        (" , ,\t", []),
        ("a, b", ["a", "b"]),
        (",a,,b,", ["a", "b"]),
        ('"x,y", z', ['"x,y"', "z"]),
        ('"x\\",y", z', ['"x\\",y"', "z"]),
        ("a\u00a0, b", ["a\u00a0", "b"]),  # only space and tab are white space
    ],
)
def test_list_elements(value: str, elements: list[str]) -> None:
    assert list_elements(value) == elements


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("0", 0),
        ("42", 42),
        ("007", 7),
        ("9" * 18, int("9" * 18)),
        ("9" * 19, HUGE),
        ("9" * 10000, HUGE),
        ("0" * 10000 + "1", 1),
        ("", None),
        (" 1", None),
        ("1 ", None),
        ("+1", None),
        ("-1", None),
        ("1.0", None),
        ("\u00b2", None),
        ("1\u00b3", None),
        ("\u0661", None),  # ARABIC-INDIC DIGIT ONE
        ("\uff11", None),  # FULLWIDTH DIGIT ONE
    ],
)
def test_digits_are_ascii_only_and_any_length(text: str, number: int | None) -> None:
    assert digits(text) == number


@pytest.mark.parametrize(
    ("value", "tags"),
    [
        ('"a"', ['"a"']),
        ('W/"a", "b"', ['"a"', '"b"']),
        (', "a"', ['"a"']),
        ('"a",,', ['"a"']),
        ("", []),
        ('"a" "b"', None),
        ("a", None),
        ('"a', None),
        ('"\x7f"', None),
        ('"\u00e9"', ['"\u00e9"']),  # obs-text is allowed inside a tag
    ],
)
def test_entity_tags(value: str, tags: list[str] | None) -> None:
    assert entity_tags(value) == tags
