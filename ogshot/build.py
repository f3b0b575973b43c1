"""Cards for a whole site, made once: what ``ogshot batch`` and the MkDocs plugin run.

Each :class:`Job` names a source (a page, a line of a JSON lines file) and the file its card goes
to. :func:`build` makes the cards through :class:`~ogshot.service.CardService` (the same road as
``/og.png``), a bounded number at a time, and keeps a manifest next to them::

    {"ogshot_manifest": 1,
     "cards": {"blog/post.png": {"v": "<fingerprint>", "sha256": "<of the file>",
                                 "source": "blog/post.md"}}}

``v`` is the card's fingerprint (:func:`ogshot.meta.fingerprint`: the card and every version that
shapes its bytes). A card whose fingerprint and file are both as recorded is skipped without being
rendered; a card whose bytes come out the same as the file on disk is not written again, so
nothing is rewritten (mtimes stay) unless it changed. The builder deletes only files it recorded
as its own, whose bytes are still what it wrote, and only when their source is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from .card import Card, parse_card
from .errors import OgshotError
from .meta import fingerprint, image_tags, to_json
from .service import CardService

log = logging.getLogger("ogshot")

MANIFEST_NAME = ".ogshot-manifest.json"
MANIFEST_VERSION = 1
SUFFIXES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}


@dataclass(frozen=True)
class Job:
    """One card to make: where it comes from, where it goes, and its parameters (or why the
    source could not be read)."""

    source: str
    #: Output path relative to the output folder, ``/``-separated, without a suffix.
    name: str
    params: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Outcome:
    source: str
    #: Output path relative to the output folder, with its suffix ("" when it never got one).
    out: str
    status: str  # made | skipped | failed
    detail: str = ""
    card: Card | None = None
    #: The card's fingerprint (see :mod:`ogshot.meta`).
    v: str = ""


@dataclass
class Summary:
    outcomes: list[Outcome] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def made(self) -> int:
        return self.count("made")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def failed(self) -> int:
        return self.count("failed")

    def line(self) -> str:
        text = f"{self.made} made, {self.skipped} skipped, {self.failed} failed"
        return text + (f", {len(self.removed)} removed" if self.removed else "")


def safe_name(name: str) -> str:
    """A relative, ``/``-separated output name that cannot leave the output folder."""
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".")]
    if not parts or name.startswith("/") or any(p == ".." or ":" in p for p in parts):
        raise OgshotError(f"output name '{name}' must be a relative path inside the output folder")
    return "/".join(parts)


def sha256_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file and a rename: a reader never sees half a card."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write unless the file already holds exactly these bytes; True when written."""
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    write_atomic(path, data)
    return True


class Manifest:
    """What the builder made: output path → fingerprint, content hash, source."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cards: dict[str, dict[str, str]] = {}
        self._loaded = ""
        try:
            text = path.read_text("utf-8")
            data = json.loads(text)
            if data.get("ogshot_manifest") == MANIFEST_VERSION and isinstance(
                data.get("cards"), dict
            ):
                self.cards = {
                    str(k): {str(a): str(b) for a, b in v.items()}
                    for k, v in data["cards"].items()
                    if isinstance(v, dict)
                }
                self._loaded = self._dump()
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError):
            log.warning("%s is not a manifest this version reads; starting afresh", path)

    def _dump(self) -> str:
        body = {"ogshot_manifest": MANIFEST_VERSION, "cards": dict(sorted(self.cards.items()))}
        return json.dumps(body, ensure_ascii=False, indent=1) + "\n"

    def save(self) -> None:
        """Write the manifest when it changed (an unchanged build rewrites nothing)."""
        text = self._dump()
        if text != self._loaded:
            write_atomic(self.path, text.encode("utf-8"))
            self._loaded = text


def _out_name(job: Job, card: Card) -> str:
    name = safe_name(job.name)
    suffix = SUFFIXES[card.format]
    if PurePosixPath(name).suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"):
        name = str(PurePosixPath(name).with_suffix(""))
    return name + suffix


async def build(
    service: CardService,
    jobs: Iterable[Job],
    out_dir: Path,
    *,
    manifest_path: Path | None = None,
    concurrency: int = 4,
    defaults: Mapping[str, str] | None = None,
    prune: bool = True,
    on_done: Callable[[Outcome], None] | None = None,
) -> Summary:
    """Make every job's card into ``out_dir``; see the module docstring for what is skipped."""
    jobs = list(jobs)
    manifest = Manifest(manifest_path or out_dir / MANIFEST_NAME)
    slots = asyncio.Semaphore(max(1, concurrency))
    claimed: dict[str, str] = {}
    keep: set[str] = set()

    def finish(outcome: Outcome) -> Outcome:
        if on_done is not None:
            on_done(outcome)
        return outcome

    async def one(job: Job) -> Outcome:
        if job.error is not None:
            return finish(Outcome(job.source, "", "failed", job.error))
        try:
            card = parse_card({**(defaults or {}), **job.params})
            out = _out_name(job, card)
            v = fingerprint(service, card)
        except OgshotError as exc:
            return finish(Outcome(job.source, "", "failed", exc.detail))
        if out in claimed:
            detail = f"its card {out} is already made from {claimed[out]}"
            return finish(Outcome(job.source, out, "failed", detail))
        claimed[out] = job.source
        keep.add(out)
        path = out_dir / out
        async with slots:
            recorded = manifest.cards.get(out)
            if recorded is not None and recorded.get("v") == v:
                on_disk = await asyncio.to_thread(sha256_file, path)
                if on_disk is not None and on_disk == recorded.get("sha256"):
                    return finish(Outcome(job.source, out, "skipped", card=card, v=v))
            try:
                result = await service.card(card)
            except OgshotError as exc:
                return finish(Outcome(job.source, out, "failed", exc.detail))
            body = result.entry.body
            try:
                await asyncio.to_thread(write_if_changed, path, body)
            except OSError as exc:
                detail = f"cannot write {out}: {exc.strerror or exc}"
                return finish(Outcome(job.source, out, "failed", detail))
        if result.fallback is not None:
            # Written, so the page has an image, but not recorded: the next run tries again.
            manifest.cards.pop(out, None)
            detail = f"made without its capture ({result.fallback}); the next run tries again"
            return finish(Outcome(job.source, out, "failed", detail, card, v))
        manifest.cards[out] = {
            "v": v,
            "sha256": hashlib.sha256(body).hexdigest(),
            "source": job.source,
        }
        return finish(Outcome(job.source, out, "made", card=card, v=v))

    summary = Summary()
    try:
        summary.outcomes = list(await asyncio.gather(*(one(job) for job in jobs)))
    finally:
        failed_sources = {o.source for o in summary.outcomes if o.status == "failed"}
        if prune and summary.outcomes:
            summary.removed = _prune(manifest, out_dir, keep, failed_sources)
        manifest.save()
    return summary


def _prune(manifest: Manifest, out_dir: Path, keep: set[str], failed: set[str]) -> list[str]:
    """Delete cards this builder made whose source is gone, if their bytes are still its own."""
    removed = []
    for out, entry in list(manifest.cards.items()):
        if out in keep or entry.get("source") in failed:
            continue
        path = out_dir / out
        if sha256_file(path) == entry.get("sha256"):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(out)
        del manifest.cards[out]
    return removed


def meta_entry(outcome: Outcome, base_url: str) -> dict[str, Any] | None:
    """The meta tags of one built card served from ``base_url`` (where the output folder is),
    or None when it has no card."""
    if outcome.card is None or not outcome.out:
        return None
    url = f"{base_url.rstrip('/')}/{quote(outcome.out)}?v={outcome.v}"
    card = outcome.card.model_copy(update={"v": outcome.v})
    return to_json(url, card, image_tags(url, card), [])
