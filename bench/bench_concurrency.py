"""Threads or processes? Throughput of distinct cards rendered by a pool of N workers.

Rendering is Pillow (drawing, compositing) and deflate (ISA-L), all C code that releases the GIL
for much of its work; a thread pool shares fonts and layouts and passes no bytes between
processes, a process pool sidesteps the GIL but pickles every card and image across.

    python -m bench.bench_concurrency [--workers 2] [--cards 120]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

from PIL import Image

from ogshot.card import Card
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry, builtin_dir
from ogshot.service import make_card_bytes
from ogshot.workers import tune_allocator

from .common import synthetic_capture

_state: dict[str, object] = {}
Job = tuple[int, bool]


def _init() -> None:
    tune_allocator()  # as the service does
    _state["layouts"] = LayoutRegistry.load(builtin_dir())
    _state["fonts"] = FontSet.default()
    _state["capture"] = synthetic_capture(3)


def _work(job: tuple[int, bool]) -> int:
    """Render and encode one distinct card; returns its size (a process pool ships back ints)."""
    if not _state:
        _init()
    i, with_capture = job
    card = Card(title=f"Card number {i}: a headline of ordinary length", site=f"s{i}.dev")
    capture = _state["capture"] if with_capture else None
    assert capture is None or isinstance(capture, Image.Image)
    body = make_card_bytes(card, _state["layouts"], _state["fonts"], capture)  # type: ignore[arg-type]
    return len(body)


def _throughput(pool: Executor, jobs: list[tuple[int, bool]]) -> float:
    warm = [(-1 - k - jobs[0][0], w) for k, (_, w) in enumerate(jobs[:4])]
    list(pool.map(_work, warm))  # start and warm every worker
    t0 = time.perf_counter()
    list(pool.map(_work, jobs))
    return len(jobs) / (time.perf_counter() - t0)


def figures(workers: int = 2, cards: int = 120) -> dict[str, dict[str, float]]:
    """Cards per second for each pool kind, title cards and screenshot cards."""
    out: dict[str, dict[str, float]] = {}
    _init()
    for kind, with_capture in (("title", False), ("screenshot", True)):
        n = cards if not with_capture else max(8, cards // 3)
        row: dict[str, float] = {}

        def jobs(pool_number: int, n: int = n, with_capture: bool = with_capture) -> list[Job]:
            # Titles no pool has drawn before: each pool starts as cold as the first.
            first = (2 * pool_number + int(with_capture)) * 100_000
            return [(first + i, with_capture) for i in range(n)]

        with ThreadPoolExecutor(1) as pool:
            row["1 thread"] = _throughput(pool, jobs(0))
        with ThreadPoolExecutor(workers) as pool:
            row[f"{workers} threads"] = _throughput(pool, jobs(1))
        with ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init
        ) as pool:
            row[f"{workers} processes"] = _throughput(pool, jobs(2))
        out[kind] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cards", type=int, default=120)
    args = parser.parse_args()
    result = figures(args.workers, args.cards)
    for kind, row in result.items():
        cells = "  ".join(f"{name}: {rate:7.1f}/s" for name, rate in row.items())
        print(f"{kind:<11} {cells}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
