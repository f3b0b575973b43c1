"""The MkDocs plugin, through a real ``mkdocs build`` of a small site in several scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .conftest import decode

SITE_URL = "https://docs.example.org/manual/"
PAGES = {
    "index.md": '---\ndescription: "Welcome & <hello> \\"friends\\""\n---\n# Home of the docs\n',
    "blog/arabic.md": (
        '---\ntitle: مرحبا بالعالم\nogshot:\n  template: split\n  accent: "#ff8800"\n---\n# x\n'
    ),
    "blog/japanese.md": "# 日本語のページ 🎉\n\ntext\n",
    "hindi.md": "# नमस्ते दुनिया\n",
    "guide/русский.md": "---\ntitle: Привет, мир\ndescription: По-русски\n---\ntext\n",
    "no-card.md": "---\nogshot: false\n---\n# Left without a card\n",
}
CONFIG = f"""site_name: Polyglot Docs
site_url: {SITE_URL}
site_description: A small site in many scripts
theme: {{theme}}
plugins:
  - ogshot
"""


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}
        self.in_head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "head":
            self.in_head = True
        if tag == "meta" and self.in_head:
            key = a.get("property") or a.get("name")
            if key:
                self.meta[key] = a.get("content") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self.in_head = False


def mkdocs_build(root: Path, theme: str) -> str:
    (root / "mkdocs.yml").write_text(CONFIG.format(theme=theme), "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OGSHOT_")}
    # No network: any download would go to a port where nothing listens, and fail the build.
    env.update(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="")
    exe = Path(sys.executable).with_name("mkdocs")
    proc = subprocess.run(
        [str(exe), "build", "--strict"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def page_tags(site: Path) -> dict[str, dict[str, str]]:
    found = {}
    for html in site.rglob("index.html"):
        rel = html.relative_to(site).as_posix()
        if rel.startswith(("assets/", "search/", "css/", "js/")):
            continue
        parser = Tags()
        parser.feed(html.read_text("utf-8"))
        found[rel] = parser.meta
    return found


def test_mkdocs_build_tags_every_page_and_rebuilds_nothing(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    for rel, text in PAGES.items():
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_text(text, "utf-8")
    err = mkdocs_build(tmp_path, "mkdocs")
    assert "ogshot: cards: 5 made, 0 skipped, 0 failed" in err
    site = tmp_path / "site"
    tags = page_tags(site)
    assert set(tags) == {
        "index.html", "blog/arabic/index.html", "blog/japanese/index.html",
        "hindi/index.html", "guide/русский/index.html", "no-card/index.html",
    }  # fmt: skip
    assert "og:image" not in tags.pop("no-card/index.html")
    for rel, meta in tags.items():
        image = meta["og:image"]
        assert image.startswith(SITE_URL + "assets/ogshot/"), rel
        assert meta["twitter:image"] == image
        assert meta["twitter:card"] == "summary_large_image"
        assert (meta["og:image:width"], meta["og:image:height"]) == ("1200", "630")
        assert meta["og:image:type"] == "image/png"
        # The URL points at a file the build wrote, and it is a 1200×630 PNG.
        path = unquote(urlsplit(image).path).removeprefix(urlsplit(SITE_URL).path)
        card = decode((site / path).read_bytes())
        assert (card.format, card.size) == ("PNG", (1200, 630)), rel
        assert "v=" in urlsplit(image).query
        assert image.isascii()  # paths in any script are percent-encoded
    assert tags["index.html"]["og:image:alt"] == "Home of the docs · Polyglot Docs"
    assert tags["blog/arabic/index.html"]["og:image:alt"] == "مرحبا بالعالم · Polyglot Docs"
    assert tags["guide/русский/index.html"]["og:image:alt"] == "Привет, мир · Polyglot Docs"

    # A second build, with another theme: the same tags, and no card rendered again.
    cache = tmp_path / ".cache/ogshot"
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    err = mkdocs_build(tmp_path, "readthedocs")
    assert "ogshot: cards: 0 made, 5 skipped, 0 failed" in err
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()} == before
    again = page_tags(site)
    for rel, meta in tags.items():
        assert again[rel]["og:image"] == meta["og:image"], rel
        # The site folder was cleaned: the cards are copied back from the cache.
        path = unquote(urlsplit(meta["og:image"]).path).removeprefix(urlsplit(SITE_URL).path)
        assert decode((site / path).read_bytes()).size == (1200, 630), rel
