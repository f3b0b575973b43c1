"""``ogshot batch SOURCE --out DIR``: a site's cards from the command line.

Reads the source (:mod:`ogshot.sources`), makes the cards through the service
(:func:`ogshot.build.build`), shows a progress bar, prints one line per failure and a summary, and
exits 1 when any card failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .build import MANIFEST_NAME, Outcome, Summary, build, meta_entry, write_if_changed
from .errors import OgshotError
from .service import CardService, build_threads
from .settings import Settings
from .sources import load


async def run_batch(args: argparse.Namespace, settings: Settings) -> int:
    if args.jobs < 0:
        raise OgshotError("--jobs must be 0 (one per core, at most 4) or more")
    if args.meta and not args.base_url:
        raise OgshotError("--meta needs --base-url: the URL where the --out folder is served")
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise OgshotError(f"--out {out_dir} is not a folder")
    jobs = load(Path(args.source), skip=out_dir)
    defaults = {
        name: value
        for name in ("site", "template", "theme", "accent", "format")
        if (value := getattr(args, name)) is not None
    }
    # A build makes every card of its own site: no per-client budget applies to it. And
    # nobody is kept waiting by a build: it waits for every capture rather than write a card
    # without it (the card deadline is for crawlers).
    update: dict[str, object] = {"rate_limit": "off", "card_deadline": 0.0}
    concurrency = args.jobs or settings.render_threads or build_threads()
    update["render_threads"] = concurrency
    settings = settings.model_copy(update=update)
    service = CardService.from_settings(settings)
    try:
        summary = await _run(service, jobs, out_dir, args, defaults, concurrency)
    finally:
        await service.aclose()
    for outcome in summary.outcomes:
        if outcome.status == "failed":
            print(f"ogshot: {outcome.source}: {outcome.detail}", file=sys.stderr)
    if args.meta:
        _write_meta(Path(args.meta), summary, args.base_url)
    print(f"ogshot: {summary.line()}", file=sys.stderr)
    return 1 if summary.failed else 0


async def _run(
    service: CardService,
    jobs: list[Any],
    out_dir: Path,
    args: argparse.Namespace,
    defaults: dict[str, str],
    concurrency: int,
) -> Summary:
    manifest = Path(args.manifest) if args.manifest else out_dir / MANIFEST_NAME
    options: dict[str, Any] = {
        "manifest_path": manifest,
        "concurrency": concurrency,
        "defaults": defaults,
        "prune": not args.no_prune,
    }
    if args.quiet or not sys.stderr.isatty():
        return await build(service, jobs, out_dir, **options)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("cards", total=len(jobs))

        def advance(outcome: Outcome) -> None:
            progress.advance(task)

        return await build(service, jobs, out_dir, on_done=advance, **options)


def _write_meta(path: Path, summary: Summary, base_url: str) -> None:
    """Each source's meta tags, as JSON, for the site's templates to include."""
    entries = {}
    for outcome in summary.outcomes:
        entry = meta_entry(outcome, base_url)
        if entry is not None:
            entries[outcome.source] = entry
    text = json.dumps(dict(sorted(entries.items())), ensure_ascii=False, indent=1) + "\n"
    write_if_changed(path, text.encode("utf-8"))
