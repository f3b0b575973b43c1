from __future__ import annotations

from pathlib import Path

import pytest

from ogshot.cli import main

from .conftest import decode


def test_render_writes_a_card(tmp_path: Path) -> None:
    out = tmp_path / "card.jpg"
    assert main(["render", "--title", "From the CLI", "-o", str(out)]) == 0
    image = decode(out.read_bytes())
    assert (image.format, image.size) == ("JPEG", (1200, 630))


def test_render_error_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", "--title", "t", "--accent", "red", "-o", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ogshot: 'accent'") and err.count("\n") == 1


def test_templates_lists_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates"]) == 0
    assert "default" in capsys.readouterr().out
