"""Cards for a 50-page site, at build time: ogshot against mkdocs-material's social plugin.

    python -m bench.bench_build [--venv DIR] [--pages 50] [--reps 2] [--json out.json]

On one generated site (Markdown pages with YAML front matter, titles and descriptions), in one
run, each timed as a whole command (process start included, best of ``--reps``):

- ``ogshot batch`` cold (an empty output folder) and warm (the same folder: the manifest skips
  every card);
- ``mkdocs build`` with the Material theme and no plugin (the baseline), with the ``ogshot``
  plugin, and with Material's ``social`` plugin, each cold (no cache) and warm (its cache kept).

Per-card figures for the plugins are the build time minus the baseline build, over the pages.
Material's plugin downloads its font from Google Fonts on a clean build; here its font cache is
seeded with the same Inter files ogshot draws with, and every request to the network is sent to
a dead proxy, so both build offline (a build that tried to download would fail, not slow down).

``--venv`` is a virtualenv holding ``mkdocs-material[imaging]`` and this project (made, with
pip, when missing: ``python -m venv DIR && DIR/bin/pip install 'mkdocs-material[imaging]' -e .``).
Numbers move with the machine's load: read the ratios, measured side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INTER = ROOT / "ogshot" / "fonts" / "inter"

TOPICS = [
    "Getting started", "Installation on Linux", "Configuration reference", "Deploying to a CDN",
    "Caching and invalidation", "Signed URLs", "Writing a layout", "Fonts and scripts",
    "Troubleshooting crawlers", "Release notes", "Migrating from v1", "Command line",
]  # fmt: skip


def make_site(root: Path, pages: int) -> None:
    docs = root / "docs"
    for i in range(pages):
        topic = TOPICS[i % len(TOPICS)]
        rel = Path("guide" if i % 2 else "blog") / f"page-{i:03d}.md"
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_text(
            f"---\ntitle: \"{topic}, part {i}: what changes and why it matters\"\n"
            f"description: \"Page {i} of the handbook: {topic.lower()}, explained with examples "
            f"and the mistakes to avoid.\"\n---\n\n# {topic}, part {i}\n\nSome text.\n",
            "utf-8",
        )
    (docs / "index.md").write_text("---\ntitle: Handbook\ndescription: Home\n---\n# Handbook\n")


def mkdocs_config(root: Path, plugin: str | None) -> None:
    plugins = ""
    if plugin == "ogshot":
        plugins = "plugins:\n  - ogshot:\n      template: default\n"
    elif plugin == "social":
        plugins = "plugins:\n  - social\n"
    (root / "mkdocs.yml").write_text(
        "site_name: Handbook\nsite_url: https://docs.example.org/\n"
        "theme:\n  name: material\n  font:\n    text: Inter\n" + plugins,
        "utf-8",
    )


def seed_material_fonts(root: Path) -> None:
    """Material's social plugin looks for ``<cache>/fonts/<family>/<style>.<ext>`` before it
    downloads anything: give it Inter, the font ogshot draws titles with."""
    target = root / ".cache" / "plugin" / "social" / "fonts" / "Inter"
    target.mkdir(parents=True, exist_ok=True)
    for style, name in (("Regular", "Inter-Regular.otf"), ("Bold", "Inter-Bold.otf")):
        shutil.copyfile(INTER / name, target / f"{style}.otf")


def offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OGSHOT_")}
    # Any download goes to a port where nothing listens: it fails at once, visibly.
    env.update(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="")
    return env


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=offline_env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return elapsed


def ensure_venv(venv: Path) -> None:
    if (venv / "bin" / "mkdocs").exists():
        return
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q"]
    subprocess.run([*pip, "mkdocs-material[imaging]", "-e", str(ROOT)], check=True)


def count_cards(site: Path, folder: str) -> int:
    return sum(1 for _ in (site / folder).rglob("*.png")) if (site / folder).exists() else 0


def measure(venv: Path, pages: int, reps: int) -> dict[str, Any]:
    ogshot = str(venv / "bin" / "ogshot")
    mkdocs = str(venv / "bin" / "mkdocs")
    cards = pages + 1  # the index page too
    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(seconds, best.get(name, float("inf")))

    produced: dict[str, int] = {}
    for _ in range(reps):
        with tempfile.TemporaryDirectory(prefix="ogshot-bench-build-") as tmp:
            root = Path(tmp)
            make_site(root, pages)
            batch = [ogshot, "batch", "docs", "--out", str(root / "cards"), "-q"]
            keep("ogshot batch, cold", timed(batch, root))
            produced["ogshot batch"] = count_cards(root, "cards")
            keep("ogshot batch, warm", timed(batch, root))

            mkdocs_config(root, None)
            timed([mkdocs, "build", "-q"], root)  # first build: imports and caches warmed
            for _ in range(2):
                keep("mkdocs build (material, no plugin)", timed([mkdocs, "build", "-q"], root))

            mkdocs_config(root, "ogshot")
            keep("ogshot plugin, cold", timed([mkdocs, "build", "-q"], root))
            produced["ogshot plugin"] = count_cards(root / "site", "assets/ogshot")
            keep("ogshot plugin, warm", timed([mkdocs, "build", "-q"], root))

            mkdocs_config(root, "social")
            seed_material_fonts(root)
            keep("material social, cold", timed([mkdocs, "build", "-q"], root))
            produced["material social"] = count_cards(root / "site", "assets/images/social")
            keep("material social, warm", timed([mkdocs, "build", "-q"], root))
    for name, count in produced.items():
        if count != cards:
            raise RuntimeError(f"{name} made {count} cards, not {cards}")

    base = best["mkdocs build (material, no plugin)"]
    rows = {}
    for name, seconds in best.items():
        if name.startswith("mkdocs build"):
            rows[name] = {"seconds": seconds}
            continue
        own = seconds - base if "plugin" in name or "social" in name else seconds
        # A warm plugin costs less than the noise between two builds: never below zero.
        rows[name] = {"seconds": seconds, "ms_per_card": max(0.0, 1000 * own / cards)}
    ratios = {
        "material social cold / ogshot plugin cold": (
            rows["material social, cold"]["ms_per_card"]
            / rows["ogshot plugin, cold"]["ms_per_card"]
        ),
        "material social warm / ogshot plugin warm (whole builds)": (
            rows["material social, warm"]["seconds"] / rows["ogshot plugin, warm"]["seconds"]
        ),
        "ogshot batch cold / warm": (
            rows["ogshot batch, cold"]["seconds"] / rows["ogshot batch, warm"]["seconds"]
        ),
    }
    return {"pages": cards, "reps": reps, "rows": rows, "ratios": ratios}


def report(result: dict[str, Any]) -> str:
    lines = [
        f"Cards for a {result['pages']}-page site (best of {result['reps']}; whole commands, "
        "process start included)",
        "",
        "| what | seconds | ms per card |",
        "|---|---:|---:|",
    ]
    for name, row in result["rows"].items():
        per = f"{row['ms_per_card']:.1f}" if "ms_per_card" in row else "(baseline)"
        lines.append(f"| {name} | {row['seconds']:.2f} | {per} |")
    lines.append("")
    for name, ratio in result["ratios"].items():
        lines.append(f"- {name}: {ratio:.1f}×")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=str(Path(tempfile.gettempdir()) / "ogshot-bench-mkdocs"))
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    venv = Path(args.venv)
    ensure_venv(venv)
    result = measure(venv, args.pages, args.reps)
    print(report(result))
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
