"""Where ``ogshot batch`` finds its cards: JSON lines, a JSON array, CSV, or a folder of pages.

Every source becomes a list of :class:`~ogshot.build.Job`; a record or page that cannot be read
becomes a job that carries its reason, so it fails alone and the others are still made.

Output names: a page ``blog/post.md`` in the folder gets ``blog/post.png`` in the output folder
(the page's path, its suffix replaced). A record of a JSON or CSV source names its file with
``name`` (``blog/post`` → ``blog/post.png``); without one, the name is its title in lower case with
every run of other characters turned into ``-``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .build import Job
from .card import CARD_FIELDS
from .errors import InvalidParameter, OgshotError
from .frontmatter import PAGE_SUFFIXES, card_params, is_excluded, read_page

#: Largest JSON or CSV source read at once.
MAX_SOURCE_BYTES = 64 * 1024 * 1024
#: Folders never walked into: version control, dependencies, build output.
SKIP_DIRS = {"node_modules", "vendor", "site", "public", "_site", "dist", "__pycache__"}
_SLUG = re.compile(r"[^\w]+")


def slug(text: str) -> str:
    """A file name from a title: lower case, runs of other characters as ``-``, any script."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _SLUG.sub("-", text).strip("-_")[:80] or "card"


def load(source: Path, *, skip: Path | None = None) -> list[Job]:
    """The jobs of a source file or folder. ``skip`` is a folder not to read (the output)."""
    if source.is_dir():
        return list(_folder(source, skip))
    if not source.is_file():
        raise OgshotError(f"{source}: no such file or folder")
    if source.stat().st_size > MAX_SOURCE_BYTES:
        raise OgshotError(f"{source}: larger than {MAX_SOURCE_BYTES // 2**20} MiB")
    try:
        text = source.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise OgshotError(f"{source}: cannot be read as UTF-8 ({exc})") from None
    suffix = source.suffix.lower()
    if suffix == ".csv":
        return _records(source.name, _csv(text))
    if suffix in (".jsonl", ".ndjson"):
        return _records(source.name, _json_lines(text))
    if suffix == ".json" or text.lstrip().startswith(("[", "{")):
        stripped = text.lstrip()
        if stripped.startswith("[") or suffix == ".json":
            return _records(source.name, _json_array(source.name, text))
        return _records(source.name, _json_lines(text))
    raise OgshotError(f"{source}: not a folder, .json, .jsonl or .csv file")


def _folder(root: Path, skip: Path | None) -> Iterator[Job]:
    skip_resolved = skip.resolve() if skip is not None else None
    pages = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") or part in SKIP_DIRS for part in rel.parts[:-1]):
            continue
        if rel.name.startswith(".") or path.suffix.lower() not in PAGE_SUFFIXES:
            continue
        if skip_resolved is not None and skip_resolved in path.resolve().parents:
            continue
        if path.is_file():
            pages.append(rel)
    for rel in pages:
        label = rel.as_posix()
        name = rel.with_suffix("").as_posix()
        try:
            page = read_page(root / rel)
            if is_excluded(page.meta):
                continue
            params = card_params(
                page.meta, heading=page.heading, body_description=page.body_description
            )
        except OgshotError as exc:
            yield Job(label, name, error=exc.detail)
            continue
        if not params.get("title"):
            yield Job(label, name, error="no title: none in its front matter and no heading")
            continue
        yield Job(label, name, params)


def _records(label: str, items: Iterator[tuple[int, Any]]) -> list[Job]:
    jobs = []
    for line, item in items:
        where = f"{label}:{line}"
        if isinstance(item, InvalidParameter):
            jobs.append(Job(where, "", error=item.detail))
            continue
        if not isinstance(item, dict):
            jobs.append(Job(where, "", error="each card must be an object of card parameters"))
            continue
        unknown = sorted(str(k) for k in item if k not in CARD_FIELDS and k != "name")
        if unknown:
            allowed = ", ".join(("name", *CARD_FIELDS))
            error = f"unknown field '{unknown[0]}' (fields: {allowed})"
            jobs.append(Job(where, "", error=error))
            continue
        params: dict[str, str] = {}
        bad = ""
        for key, value in item.items():
            if value is None:
                continue
            if isinstance(value, str):
                params[str(key)] = value
            elif isinstance(value, int | float) and not isinstance(value, bool):
                params[str(key)] = str(value)
            else:
                bad = bad or f"'{key}' must be a string"
        if bad:
            jobs.append(Job(where, "", error=bad))
            continue
        name = params.pop("name", "") or slug(params.get("title", "") or params.get("url", ""))
        jobs.append(Job(where, name, params))
    return jobs


def _json_lines(text: str) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except ValueError as exc:
            yield number, InvalidParameter(f"not JSON: {exc}")


def _json_array(label: str, text: str) -> Iterator[tuple[int, Any]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise OgshotError(f"{label}: not JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("cards"), list):
        data = data["cards"]  # the body of POST /batch
    if not isinstance(data, list):
        raise OgshotError(f"{label}: must be a JSON array of cards (or {{\"cards\": [...]}})")
    # Items are numbered from 1, as lines are.
    yield from enumerate(data, 1)


def _csv(text: str) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        item = {k.strip(): v for k, v in row.items() if k is not None and v not in (None, "")}
        extra = row.get(None)
        if extra:
            yield reader.line_num, InvalidParameter("more values than header columns")
            continue
        yield reader.line_num, item
