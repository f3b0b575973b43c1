"""Docs as tests: the README documents every setting and opens with the two commands."""

from __future__ import annotations

from pathlib import Path

from ogshot.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    for name in Settings.model_fields:
        assert f"OGSHOT_{name.upper()}" in README, name


def test_readme_opens_with_run_and_test_commands() -> None:
    head = README[:1500]
    assert "ogshot serve" in head
    assert "scripts/test" in head
