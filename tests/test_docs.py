"""Docs as tests: the README documents every setting and opens with the two commands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from ogshot.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def settings_table(text: str) -> dict[str, str]:
    """The README's settings table: variable name → its default cell."""
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        m = re.match(r"\|\s*`(OGSHOT_[A-Z0-9_]+)`\s*\|([^|]*)\|", line)
        if m:
            assert m.group(1) not in rows, f"{m.group(1)} has two rows in README's settings table"
            rows[m.group(1)] = m.group(2).strip()
    return rows


def documented_default(cell: str) -> str | None:
    """What a default cell says: "" for "empty…", None for "unset…", the `code` it starts with,
    or "computed" when it starts with other words (a default worked out at run time, like
    "auto-detect" or "request's base")."""
    if cell.startswith("empty"):
        return ""
    if cell.startswith("unset"):
        return None
    code = re.match(r"`([^`]*)`", cell)
    if code:
        return code.group(1)
    return "computed"


def spelled(value: Any) -> str | None:
    """A field's default as the README spells it."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_settings_table_lists_exactly_the_settings_fields() -> None:
    rows = settings_table(README)
    fields = {f"OGSHOT_{name.upper()}" for name in Settings.model_fields}
    missing = sorted(fields - set(rows))
    assert not missing, (
        "README's settings table (section '## Settings') has no row for "
        + ", ".join(missing)
        + ": add '| `NAME` | default | meaning |' for each"
    )
    extra = sorted(set(rows) - fields)
    assert not extra, f"README's settings table documents settings that do not exist: {extra}"


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_settings_table_default_agrees(name: str) -> None:
    cell = settings_table(README).get(f"OGSHOT_{name.upper()}")
    if cell is None:
        pytest.fail(f"README's settings table has no row for OGSHOT_{name.upper()}")
    said = documented_default(cell)
    actual = spelled(Settings.model_fields[name].default)
    if said == "computed":
        # Words in the cell: the field's own default must be the "not set" one it stands for.
        assert actual in ("", None), f"OGSHOT_{name.upper()}: README says {cell!r}, code {actual!r}"
    else:
        assert said == actual, (
            f"OGSHOT_{name.upper()}: README's default is {cell!r}, Settings' is {actual!r}"
        )


def test_settings_table_check_catches_a_wrong_default() -> None:
    """The check above can fail: a table with a wrong default or a missing row is told apart."""
    broken = "\n## Settings\n| `OGSHOT_CACHE_TTL` | `3600` | x |\n\n## Next\n"
    rows = settings_table(broken)
    assert documented_default(rows["OGSHOT_CACHE_TTL"]) != spelled(
        Settings.model_fields["cache_ttl"].default
    )
    assert "OGSHOT_CAPTURE" not in rows


def test_readme_opens_with_run_and_test_commands() -> None:
    head = README[:1500]
    assert "ogshot serve" in head
    assert "scripts/test" in head
