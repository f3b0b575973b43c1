"""``ogshot batch``: a folder of pages (YAML and TOML front matter) or a file of cards into a folder
of cards, made once: re-runs rewrite nothing, an edit re-renders one card, a broken page fails
alone."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ogshot import service as service_module
from ogshot.build import Job, build
from ogshot.capture import make_provider
from ogshot.cli import main
from ogshot.fonts import FontSet
from ogshot.frontmatter import FrontMatterError, card_params, parse_block, split_front_matter
from ogshot.layouts import LayoutRegistry
from ogshot.service import CardService
from ogshot.settings import Settings

from .conftest import decode
from .fake_upstream import FakeUpstream

PAGES = {
    "index.md": '---\ntitle: "Home: \\"quotes\\" & <tags>"\ndescription: The home page\n---\n# x\n',
    "blog/hugo-post.md": (
        '+++\ntitle = "مرحبا بالعالم"\nsummary = "From TOML"\n'
        '[ogshot]\ntemplate = "split"\ntheme = "dark"\naccent = "#ff8800"\n+++\nbody\n'
    ),
    "blog/jekyll.markdown": "---\ntitle: 日本語のタイトル 🎉\nexcerpt: YAML, CJK and emoji\n---\n",
    "docs/no-front-matter.md": "# A heading as the title\n\nText.\n",
    "about.html": (
        "<html><head><title>About us</title>"
        '<meta name="description" content="From the HTML"></head></html>\n'
    ),
    "drafts/wip.md": "---\ntitle: Not yet\ndraft: true\n---\n",
}
CARDS = {
    "index.png",
    "blog/hugo-post.png",
    "blog/jekyll.png",
    "docs/no-front-matter.png",
    "about.png",
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("OGSHOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env from elsewhere


def write_site(root: Path, pages: dict[str, str] = PAGES) -> Path:
    for rel, text in pages.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def mtimes(out: Path) -> dict[str, int]:
    return {
        p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()
    }


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["batch", *args, "-q"])
    return code, capsys.readouterr().err


def test_folder_first_run_makes_all_rerun_rewrites_nothing_edit_renders_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, out = write_site(tmp_path / "site"), tmp_path / "out"
    code, err = run(capsys, str(site), "--out", str(out))
    assert code == 0, err
    assert "5 made, 0 skipped, 0 failed" in err
    made = {p.relative_to(out).as_posix() for p in out.rglob("*.png")}
    assert made == CARDS  # names follow the pages' paths; the draft has none
    for rel in CARDS:
        assert decode((out / rel).read_bytes()).size == (1200, 630)
    manifest = json.loads((out / ".ogshot-manifest.json").read_text())
    assert set(manifest["cards"]) == CARDS
    assert manifest["cards"]["blog/hugo-post.png"]["source"] == "blog/hugo-post.md"

    before = mtimes(out)
    code, err = run(capsys, str(site), "--out", str(out))
    assert (code, "0 made, 5 skipped, 0 failed" in err) == (0, True), err
    assert mtimes(out) == before  # cards and manifest untouched

    (site / "blog/jekyll.markdown").write_text("---\ntitle: Edited title\n---\n", "utf-8")
    code, err = run(capsys, str(site), "--out", str(out))
    assert code == 0 and "1 made, 4 skipped, 0 failed" in err, err
    after = mtimes(out)
    changed = {rel for rel in after if after[rel] != before[rel]}
    assert changed == {"blog/jekyll.png", ".ogshot-manifest.json"}


def test_front_matter_overrides_reach_the_card(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The TOML page asks for the dark split layout with an orange accent: its pixels differ from
    the same title with the defaults."""
    site = write_site(tmp_path / "site", {"a.md": PAGES["blog/hugo-post.md"]})
    plain = write_site(tmp_path / "plain", {"a.md": '+++\ntitle = "مرحبا بالعالم"\n+++\n'})
    assert run(capsys, str(site), "--out", str(tmp_path / "o1"))[0] == 0
    assert run(capsys, str(plain), "--out", str(tmp_path / "o2"))[0] == 0
    styled = decode((tmp_path / "o1/a.png").read_bytes()).convert("RGB")
    default = decode((tmp_path / "o2/a.png").read_bytes()).convert("RGB")
    assert styled.tobytes() != default.tobytes()
    # The split layout's accent bar: orange pixels somewhere on the card.
    raw = styled.tobytes()
    pixels = zip(raw[0::3], raw[1::3], raw[2::3], strict=True)
    assert any(r > 200 and 100 < g < 170 and b < 60 for r, g, b in pixels)


def test_broken_page_fails_alone_with_path_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pages = {
        **PAGES,
        "blog/broken.md": "---\ntitle: [never closed\n---\n",
        "blog/bad-toml.md": '+++\ntitle = "unterminated\n+++\n',
        "blog/unclosed.md": "---\ntitle: no closing fence\n",
        "blog/bad-accent.md": "---\ntitle: Fine\nogshot:\n  accent: red\n---\n",
    }
    site, out = write_site(tmp_path / "site", pages), tmp_path / "out"
    code, err = run(capsys, str(site), "--out", str(out))
    assert code == 1
    assert "5 made, 0 skipped, 4 failed" in err
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert any(ln.startswith("ogshot: blog/broken.md: YAML front matter") for ln in lines)
    assert any(ln.startswith("ogshot: blog/bad-toml.md: TOML front matter") for ln in lines)
    assert any(ln.startswith("ogshot: blog/unclosed.md: front matter opened") for ln in lines)
    assert any(ln.startswith("ogshot: blog/bad-accent.md: 'accent'") for ln in lines)
    assert {p.relative_to(out).as_posix() for p in out.rglob("*.png")} == CARDS


def test_deletes_only_what_it_made(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site, out = write_site(tmp_path / "site"), tmp_path / "out"
    out.mkdir()
    (out / "logo.png").write_bytes(b"the user's own file")
    assert run(capsys, str(site), "--out", str(out))[0] == 0
    (site / "about.html").unlink()
    code, err = run(capsys, str(site), "--out", str(out))
    assert code == 0 and "0 made, 4 skipped, 0 failed, 1 removed" in err, err
    assert not (out / "about.png").exists()
    assert (out / "logo.png").read_bytes() == b"the user's own file"
    # A card the user replaced by hand is theirs now: its page going away does not delete it.
    (out / "index.png").write_bytes(b"hand made")
    (site / "index.md").unlink()
    assert run(capsys, str(site), "--out", str(out))[0] == 0
    assert (out / "index.png").read_bytes() == b"hand made"


def test_new_renderer_version_renders_every_card_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest is keyed by the fingerprint, which holds the renderer's version: an upgrade
    that could move pixels re-renders every card, although no page changed."""
    site = write_site(tmp_path / "site", {"a.md": "# A\n", "b.md": "# B\n"})
    out = tmp_path / "out"
    assert run(capsys, str(site), "--out", str(out))[0] == 0
    monkeypatch.setattr(service_module, "RENDERER_VERSION", "next")
    code, err = run(capsys, str(site), "--out", str(out))
    assert code == 0 and "2 made, 0 skipped" in err, err


def test_json_lines_array_and_csv_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jsonl = tmp_path / "cards.jsonl"
    jsonl.write_text(
        '{"title": "First card", "name": "posts/first"}\n'
        "not json\n"
        '{"title": "Second card", "theme": "light"}\n'
        '{"title": "Bad accent", "accent": "red"}\n',
        "utf-8",
    )
    code, err = run(capsys, str(jsonl), "--out", str(tmp_path / "a"))
    assert code == 1 and "2 made, 0 skipped, 2 failed" in err
    assert "ogshot: cards.jsonl:2: not JSON" in err
    assert "ogshot: cards.jsonl:4: 'accent'" in err
    assert (tmp_path / "a/posts/first.png").is_file() and (tmp_path / "a/second-card.png").is_file()

    array = tmp_path / "cards.json"
    array.write_text(json.dumps({"cards": [{"title": "From an array", "format": "jpeg"}]}))
    assert run(capsys, str(array), "--out", str(tmp_path / "b"))[0] == 0
    image = decode((tmp_path / "b/from-an-array.jpg").read_bytes())
    assert (image.format, image.size) == ("JPEG", (1200, 630))

    table = tmp_path / "cards.csv"
    table.write_text("name,title,subtitle\nhello,Hello from CSV,A row\n", "utf-8")
    assert run(capsys, str(table), "--out", str(tmp_path / "c"))[0] == 0
    assert decode((tmp_path / "c/hello.png").read_bytes()).size == (1200, 630)


def test_meta_map_for_templates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = write_site(tmp_path / "site")
    meta = tmp_path / "data/ogshot.json"
    code, err = run(
        capsys, str(site), "--out", str(tmp_path / "out"),
        "--meta", str(meta), "--base-url", "https://example.org/og/",
    )  # fmt: skip
    assert code == 0, err
    entries = json.loads(meta.read_text("utf-8"))
    assert set(entries) == {
        "index.md", "blog/hugo-post.md", "blog/jekyll.markdown",
        "docs/no-front-matter.md", "about.html",
    }  # fmt: skip
    entry = entries["index.md"]
    assert entry["image"].startswith("https://example.org/og/index.png?v=")
    assert entry["tags"]["og:image:alt"] == 'Home: "quotes" & <tags>'
    assert '&quot;quotes&quot; &amp; &lt;tags&gt;' in entry["html"]
    assert entry["tags"]["twitter:card"] == "summary_large_image"


def test_errors_of_the_command_itself_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(capsys, str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert code == 1 and err.count("\n") == 1 and "no such file or folder" in err
    code, err = run(capsys, str(tmp_path), "--out", str(tmp_path / "o"), "--meta", "m.json")
    assert code == 1 and err.count("\n") == 1 and "--base-url" in err


def test_a_build_is_not_held_to_the_servers_per_client_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """OGSHOT_RATE_LIMIT guards a public server from strangers; a site's own build makes all of
    its cards, however many, in one run."""
    monkeypatch.setenv("OGSHOT_RATE_LIMIT", "2/hour")
    site = write_site(tmp_path / "site", {f"p{i}.md": f"# Page {i}\n" for i in range(5)})
    code, err = run(capsys, str(site), "--out", str(tmp_path / "out"))
    assert code == 0 and "5 made, 0 skipped, 0 failed" in err, err


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["---\n", "+++\n", ""]))
def test_any_page_text_reads_or_fails_with_a_reason(body: str, fence: str) -> None:
    """Whatever a page holds, reading it gives card parameters or one FrontMatterError: never
    another exception (which would be a traceback in the middle of a build)."""
    text = fence + body + ("\n" + fence if fence and "x" in body else "")
    try:
        kind, block, rest = split_front_matter(text)
        meta = parse_block(kind, block) if kind else {}
        params = card_params(meta, heading="H")
    except FrontMatterError as exc:
        assert exc.detail and "\n" not in exc.detail.strip()
        return
    assert all(isinstance(v, str) for v in params.values())


def test_captured_cards_and_a_failed_capture(
    tmp_path: Path, capture_settings: Settings, layouts: LayoutRegistry, fonts: FontSet,
    fake_upstream: FakeUpstream,
) -> None:
    """Records with a ``url`` are captured through the service like /og.png. A card whose capture
    fails is still written (the page gets an image) but counts as failed and is not recorded, so
    the next run tries it again; a captured card is not captured twice."""
    jobs = [
        Job("a", "ok", {"title": "Captured", "url": "https://example.com/ok"}),
        Job("b", "bad", {"title": "Not captured", "url": "https://example.com/garbage"}),
    ]

    async def run_once() -> list[str]:
        capture = make_provider(capture_settings)
        service = CardService(capture_settings, layouts=layouts, fonts=fonts, capture=capture)
        try:
            summary = await build(service, jobs, tmp_path)
        finally:
            await service.aclose()
        return [o.status for o in summary.outcomes]

    assert asyncio.run(run_once()) == ["made", "failed"]
    assert decode((tmp_path / "ok.png").read_bytes()).size == (1200, 630)
    assert decode((tmp_path / "bad.png").read_bytes()).size == (1200, 630)
    manifest = json.loads((tmp_path / ".ogshot-manifest.json").read_text())
    assert set(manifest["cards"]) == {"ok.png"}
    calls = dict(fake_upstream.calls)
    assert asyncio.run(run_once()) == ["skipped", "failed"]
    assert fake_upstream.calls["ok"] == calls["ok"]  # not captured again
    assert fake_upstream.calls["garbage"] > calls["garbage"]  # tried again


def test_the_real_command_reports_a_broken_page_on_one_line(tmp_path: Path) -> None:
    """Through the installed ``ogshot`` script, as CI runs it: exit 1, one line per failure and
    the summary, no traceback."""
    site = write_site(tmp_path / "site", {"ok.md": "# Fine\n", "bad.md": "---\ntitle: [\n---\n"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("OGSHOT_")}
    exe = Path(sys.executable).with_name("ogshot")
    proc = subprocess.run(
        [str(exe), "batch", str(site), "--out", str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("ogshot: bad.md: YAML front matter")
    assert lines[-1] == "ogshot: 1 made, 0 skipped, 1 failed"
    assert (tmp_path / "out/ok.png").is_file()
