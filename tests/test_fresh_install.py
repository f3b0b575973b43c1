"""The built package, installed fresh, on a machine whose system fonts are hidden.

The wheel is built from this tree (``pip wheel``, offline: the build backend is one of the test
dependencies), installed into a new virtual environment that sees the test environment's
dependencies but not its editable ogshot, and run there with ``OGSHOT_SYSTEM_FONTS=false`` and
an empty home folder: the package's own fonts are all it has. Every sample script must be drawn
with real glyphs, from files inside that environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ogshot.samples import TITLES

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, **kwargs
    )  # type: ignore[call-overload]
    assert done.returncode == 0, (args, done.stderr[-2000:])
    return done


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """(the fresh environment's folder, the environment variables to run it with)."""
    base = tmp_path_factory.mktemp("fresh")
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--quiet", "--wheel-dir", base / "dist", ROOT]
    )
    (wheel,) = (base / "dist").glob("ogshot-*.whl")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    purelib = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout
    )
    site = Path(str(purelib).strip())
    # The dependencies come from the test environment, read as a plain folder: its .pth files
    # (the editable ogshot among them) are not processed, so ogshot can only come from the wheel.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index"]
        + ["--quiet", "--no-compile", wheel]
    )
    home = base / "home"
    home.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin",
        "HOME": str(home),
        "OGSHOT_SYSTEM_FONTS": "false",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    yield venv, env


def test_the_wheel_carries_the_fonts_and_their_licences(
    fresh: tuple[Path, dict[str, str]],
) -> None:
    venv, _ = fresh
    (wheel,) = (venv.parent / "dist").glob("ogshot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"ogshot/fonts/inter/OFL.txt", "ogshot/fonts/noto/OFL.txt"} <= names
    assert "ogshot/fonts/noto/NotoColorEmoji.ttf" in names
    assert "ogshot/fonts/noto/NotoSansCJK-Regular.ttc" in names


def test_a_fresh_install_without_system_fonts_renders_every_sample_script(
    fresh: tuple[Path, dict[str, str]],
) -> None:
    venv, env = fresh
    script = Path(__file__).with_name("sample_glyphs.py")
    out = _run([venv / "bin" / "python", script], env=env, cwd=venv.parent).stdout
    found = json.loads(out)
    # The package under test is the installed wheel, and its fonts are all that is read.
    assert Path(found["package"]).is_relative_to(venv), found["package"]
    assert len(found["dirs"]) == 1 and Path(found["dirs"][0]).is_relative_to(venv)
    assert found["files"] and all(Path(f).is_relative_to(venv) for f in found["files"])
    assert set(found["titles"]) == {label for label, _ in TITLES}
    for label, title in found["titles"].items():
        assert title["missing"] == {}, label
        drawn = title["drawn"]
        # Every drawn cluster is covered by the font it was set in: no box anywhere.
        assert [(c, f) for c, f, covered in drawn if not covered] == [], label
        assert len(drawn) >= 10, label
        assert title["size"] == [1200, 630]
        low, high = title["extrema"]
        assert high - low > 100, label  # text on a background, not a blank card


def test_the_installed_command_reports_coverage_from_the_package_fonts(
    fresh: tuple[Path, dict[str, str]],
) -> None:
    venv, env = fresh
    out = _run([venv / "bin" / "ogshot", "fonts"], env=env).stdout
    paths = out.split("families:")[1].split("coverage by script")[0].split()
    files = [Path(p) for p in paths if p.startswith("/")]
    assert files and all(f.is_relative_to(venv) for f in files)
    rows = {line.split()[0] for line in out.splitlines() if line.startswith("  ")}
    for script in ("Arabic", "Hebrew", "Devanagari", "Thai", "Han", "Hiragana", "Hangul"):
        assert script in rows, script
