from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ogshot import __version__
from ogshot.cli import main

from .conftest import UPSTREAM_KEY, decode, ogshot_serve
from .fake_upstream import FakeUpstream


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


# The real command line, as users run it: a subprocess with only the OGSHOT_* variables given.

OGSHOT = Path(sys.executable).with_name("ogshot")


def run_cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OGSHOT_")}
    return subprocess.run(
        [str(OGSHOT), *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ogshot"), done.stderr
    for text in expected:
        assert text in lines[0]


def test_version(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"ogshot {__version__}"


BAD_LAYOUT = 'name = "broken"\nversion = 1\nno_such_field = true\n'


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["render", "--title", "t", "-o", "missing/card.png"], {}, ["missing", "does not exist"]),
        (["render", "--title", "t", "-o", "."], {}, ["cannot use"]),
        (["contact-sheet", "--width", "0"], {}, ["--width", "whole number"]),
        (["serve", "--port", "http"], {}, ["--port"]),
        (["render", "--title", "t", "--no-such-option"], {}, ["--no-such-option"]),
        ([], {}, ["required"]),
        (["templates"], {"OGSHOT_CACHE_TTL": "a day"}, ["OGSHOT_CACHE_TTL", "integer", "a day"]),
        (["templates"], {"OGSHOT_CAPTURE": "chrome"}, ["OGSHOT_CAPTURE", "'chromium'"]),
        (["render", "--title", "t"], {"OGSHOT_UPSTREAM_KEY": ""} | {"OGSHOT_CACHE_MEMORY_MB": "-1"},
         ["OGSHOT_CACHE_MEMORY_MB"]),
        (["sign", "--title", "t"], {"OGSHOT_SIGNING_KEYS": "no-colon"}, ["OGSHOT_SIGNING_KEYS"]),
        (["serve"], {"OGSHOT_TEMPLATES_DIR": "layouts"}, ["broken.toml", "field"]),
        (["serve"], {"OGSHOT_CAPTURE": "chromium", "OGSHOT_CHROMIUM_PATH": "/nonexistent/chrome"},
         ["OGSHOT_CHROMIUM_PATH=/nonexistent/chrome"]),
        (["render", "--title", "t", "--format", "webp", "-o", "card.png"], {},
         ["--format webp", "card.png"]),
    ],
)  # fmt: skip
def test_every_cli_error_is_one_line_and_exit_1(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: list[str]
) -> None:
    (tmp_path / "layouts").mkdir()
    (tmp_path / "layouts" / "broken.toml").write_text(BAD_LAYOUT)
    assert_one_line_error(run_cli(tmp_path, *args, env=env), *expected)


def test_a_secret_setting_is_never_echoed(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "templates", env={"OGSHOT_REDIS_URL": "rediss://:hunter2@x:1/0"})
    assert done.returncode == 0
    done = run_cli(tmp_path, "templates", env={"OGSHOT_CAPTURE_MAX_PIXELS": "hunter2"})
    assert_one_line_error(done, "OGSHOT_CAPTURE_MAX_PIXELS")
    assert "hunter2" in done.stderr  # not a secret: shown to help
    done = run_cli(tmp_path, "sign", "--title", "t", env={"OGSHOT_SIGNING_KEYS": "hunter2"})
    assert "hunter2" not in done.stderr


def test_mistyped_variable_is_warned_about_with_the_closest_name(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "templates", env={"OGSHOT_CACHE_TTTL": "60", "OGSHOT_ZZZ": "1"})
    assert done.returncode == 0 and "default" in done.stdout
    assert "OGSHOT_CACHE_TTTL" in done.stderr and "did you mean OGSHOT_CACHE_TTL?" in done.stderr
    assert "OGSHOT_ZZZ is not an ogshot setting" in done.stderr
    clean = run_cli(tmp_path, "templates", env={"OGSHOT_CACHE_TTL": "60"})
    assert clean.stderr == ""
    (tmp_path / ".env").write_text("OGSHOT_FALLBACK_TL=5\nOGSHOT_CACHE_TTL=60\n")
    done = run_cli(tmp_path, "templates")
    assert done.returncode == 0
    assert done.stderr.strip() == (
        "ogshot: warning: OGSHOT_FALLBACK_TL (in .env) is not an ogshot setting and is ignored "
        "(did you mean OGSHOT_FALLBACK_TTL?)"
    )


def test_chromium_capture_without_a_browser_is_refused_in_one_line(tmp_path: Path) -> None:
    env = {"OGSHOT_CAPTURE": "chromium", "OGSHOT_CHROMIUM_PATH": "/nonexistent/chrome"}
    done = run_cli(
        tmp_path, "render", "--title", "t", "--url", "https://example.com/", "-o", "c.png", env=env
    )
    assert_one_line_error(done, "OGSHOT_CHROMIUM_PATH=/nonexistent/chrome")
    assert not (tmp_path / "c.png").exists()


def test_format_follows_the_extension_or_must_agree_with_it(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "render", "--title", "t", "-o", "a.webp").returncode == 0
    assert decode((tmp_path / "a.webp").read_bytes()).format == "WEBP"
    done = run_cli(tmp_path, "render", "--title", "t", "--format", "jpeg", "-o", "b.JPG")
    assert done.returncode == 0
    assert decode((tmp_path / "b.JPG").read_bytes()).format == "JPEG"
    assert_one_line_error(run_cli(tmp_path, "render", "--title", "t", "-o", "c.gif"), "c.gif")
    assert not (tmp_path / "c.gif").exists()


def test_serve_logs_capture_cache_and_fonts_on_start(tmp_path: Path) -> None:
    env = {"OGSHOT_CACHE_DIR": str(tmp_path / "cache")}
    with ogshot_serve(tmp_path, "--log-level", "info", env=env):
        pass
    log = (tmp_path / "serve.log").read_text()
    lines = [line.removeprefix("INFO:").strip() for line in log.splitlines()]
    capture = [line for line in lines if line.startswith("capture: ")]
    cache = [line for line in lines if line.startswith("cache: ")]
    fonts = [line for line in lines if line.startswith("fonts: ")]
    assert len(capture) == len(cache) == len(fonts) == 1, log
    assert "off" in capture[0]
    assert "memory 256 MB" in cache[0] and "disk" in cache[0]
    assert "latin" in fonts[0] and "arabic" in fonts[0]


def test_render_url_is_captured_through_the_service_with_the_canonical_url(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.requests.clear()
    env = {
        "OGSHOT_CAPTURE": "http",
        "OGSHOT_UPSTREAM_URL": fake_upstream.url,
        "OGSHOT_UPSTREAM_KEY": UPSTREAM_KEY,
    }
    url = "HTTPS://ＥＸＡＭＰＬＥ。com/a/../page-cli#top"
    done = run_cli(tmp_path, "render", "--title", "CLI", "--url", url, "-o", "c.png", env=env)
    assert done.returncode == 0, done.stderr
    assert "without its capture" not in done.stderr
    image = decode((tmp_path / "c.png").read_bytes()).convert("RGB")
    assert image.getpixel((40, 32))[0] > 200  # the fake page's orange dot: the capture is in
    assert [r["url"] for r in fake_upstream.requests] == ["https://example.com/page-cli"]


def test_render_url_obeys_the_url_policy(tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    fake_upstream.requests.clear()
    env = {
        "OGSHOT_CAPTURE": "http",
        "OGSHOT_UPSTREAM_URL": fake_upstream.url,
        "OGSHOT_UPSTREAM_KEY": UPSTREAM_KEY,
    }
    done = run_cli(
        tmp_path, "render", "--title", "t", "--url", "http://127。0。0。1/", "-o", "c.png", env=env
    )
    assert_one_line_error(done, "'127.0.0.1' is a loopback address")
    assert fake_upstream.requests == []
    assert not (tmp_path / "c.png").exists()
