from __future__ import annotations

import asyncio
import os
import platform
import resource
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ogshot.card import Card
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.service import CardService, make_card_bytes
from ogshot.settings import Settings
from ogshot.workers import (
    RENDER_NICE,
    ProcessRenderer,
    RenderThreads,
    release_memory,
    tune_allocator,
)

from .conftest import ogshot_serve_process


@pytest.fixture
def processes() -> Iterator[ProcessRenderer]:
    renderer = ProcessRenderer(2)
    yield renderer
    ProcessRenderer.shutdown_all()


def _settings(**kwargs: object) -> Settings:
    return Settings(_env_file=None, capture="none", **kwargs)  # type: ignore[call-arg, arg-type]


def test_worker_bytes_equal_in_thread_bytes(
    processes: ProcessRenderer, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    for fmt in ("png", "jpeg", "webp"):
        card = Card(title="Made in a worker", subtitle="or not", format=fmt)
        here = make_card_bytes(card, layouts, fonts)
        there = processes.render(card, layouts.get(card.template), None, fonts)
        assert there == here


def test_worker_renders_a_capture(
    processes: ProcessRenderer, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    from PIL import Image

    capture = Image.linear_gradient("L").convert("RGB").resize((1280, 800))
    card = Card(title="Over a capture")
    there = processes.render(card, layouts.get("default"), capture, fonts)
    assert there == make_card_bytes(card, layouts, fonts, capture)


def test_service_uses_processes_when_asked(layouts: LayoutRegistry, fonts: FontSet) -> None:
    service = CardService(_settings(render_processes=2), layouts=layouts, fonts=fonts)
    assert service._processes is not None and service._processes.processes == 2
    try:
        result = asyncio.run(service.card(Card(title="Through the pool")))
        expected = make_card_bytes(Card(title="Through the pool"), layouts, fonts)
        assert result.entry.body == expected
        assert service.renders == 1
    finally:
        asyncio.run(service.aclose())
        ProcessRenderer.shutdown_all()


def test_zero_processes_renders_in_threads(layouts: LayoutRegistry, fonts: FontSet) -> None:
    service = CardService(_settings(render_processes=0), layouts=layouts, fonts=fonts)
    assert service._processes is None


def test_workers_read_the_fonts_of_the_services_search_path(
    tmp_path: Path, layouts: LayoutRegistry
) -> None:
    other = FontSet.from_dirs([tmp_path])  # Inter alone, no fallback families
    assert ProcessRenderer.usable(other)
    service = CardService(_settings(render_processes=2), layouts=layouts, fonts=other)
    assert service._processes is not None and service._processes.dirs == (tmp_path,)


def test_a_font_set_not_read_from_folders_keeps_rendering_in_threads(
    layouts: LayoutRegistry, fonts: FontSet
) -> None:
    # Workers can only load fonts from folders: a set put together by hand stays here.
    custom = FontSet(fonts.faces[1:], primary=fonts.primary)
    assert not ProcessRenderer.usable(custom)
    service = CardService(_settings(render_processes=2), layouts=layouts, fonts=custom)
    assert service._processes is None


def test_a_dead_worker_costs_no_card(
    processes: ProcessRenderer, layouts: LayoutRegistry, fonts: FontSet
) -> None:
    card = Card(title="Still made")
    layout = layouts.get("default")
    processes.render(card, layout, None, fonts)  # workers are up
    pool = processes._pool()
    for pid in list(pool._processes):  # the only way to reach the workers
        os.kill(pid, signal.SIGKILL)
    body = processes.render(card, layout, None, fonts)
    assert body == make_card_bytes(card, layouts, fonts)
    # And the next card gets fresh workers.
    assert processes._pool() is not pool
    assert processes.render(card, layout, None, fonts) == body


def _faults_of_second_allocation(size: int) -> int:
    bytearray(size)  # the first one may fault: the heap grows
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    buf = bytearray(size)  # zero-filled: every page is touched
    after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    del buf
    return after - before


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tuning is for glibc")
def test_tuned_allocator_reuses_card_sized_buffers() -> None:
    assert tune_allocator()
    # A 3 MB buffer (a card's size) allocated again must not fault its ~740 pages in again.
    assert _faults_of_second_allocation(3 * 1024 * 1024) < 100


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim")
def test_release_memory_returns_freed_heap_pages() -> None:
    # Free many scattered small blocks among live ones: glibc keeps such holes mapped.
    blocks = [bytearray(64 * 1024) for _ in range(800)]
    for block in blocks:
        block[::4096] = b"\x01" * len(block[::4096])  # touch every page
    del blocks[::2]
    before = _rss_kib()
    assert release_memory()
    assert _rss_kib() < before - 10 * 1024  # at least 10 MB of the 25 MB freed went back


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_the_service_releases_memory_every_so_many_renders(
    layouts: LayoutRegistry, fonts: FontSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ogshot.service as service_module

    calls: list[int] = []
    monkeypatch.setattr(service_module, "RELEASE_EVERY", 3)
    monkeypatch.setattr(service_module, "release_memory", lambda: calls.append(1) or True)
    service = CardService(_settings(), layouts=layouts, fonts=fonts)
    try:
        for i in range(7):
            asyncio.run(service.card(Card(title=f"Card {i}")))
        assert service.renders == 7
        assert len(calls) == 2
    finally:
        asyncio.run(service.aclose())


@pytest.mark.skipif(platform.system() != "Linux", reason="a nice value per thread is Linux's")
def test_render_threads_run_at_a_lower_cpu_priority_than_the_event_loop(
    layouts: LayoutRegistry, fonts: FontSet
) -> None:
    """When the cores are full, the thread answering cache hits runs before the renders."""
    service = CardService(_settings(), layouts=layouts, fonts=fonts)

    def nice_here() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    try:
        mine = nice_here()
        theirs = service._executor.submit(nice_here).result(timeout=30)
        assert theirs == min(19, mine + RENDER_NICE)
        assert nice_here() == mine  # the caller's own priority is untouched
    finally:
        asyncio.run(service.aclose())



@pytest.mark.parametrize(
    ("cores", "serving", "build"), [(1, 1, 1), (2, 1, 2), (4, 3, 4), (16, 4, 4)]
)
def test_serving_leaves_a_core_to_the_event_loop_and_builds_take_them_all(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    layouts: LayoutRegistry,
    fonts: FontSet,
    cores: int,
    serving: int,
    build: int,
) -> None:
    from ogshot import batchcli
    from ogshot.cli import main

    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    service = CardService(_settings(), layouts=layouts, fonts=fonts)
    try:
        assert service._executor.threads == serving
    finally:
        asyncio.run(service.aclose())

    # A build has no event loop answering crawlers beside it: `ogshot batch` takes every core.
    seen: list[int] = []

    class Recording(CardService):
        @classmethod
        def from_settings(cls, settings: Settings) -> CardService:
            made = CardService(settings, layouts=layouts, fonts=fonts)
            seen.append(made._executor.threads)
            return made

    monkeypatch.setattr(batchcli, "CardService", Recording)
    source = tmp_path / "cards.jsonl"
    source.write_text('{"name": "one", "title": "One card"}\n')
    assert main(["batch", str(source), "--out", str(tmp_path / "out"), "-q"]) == 0
    assert seen == [build]


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(p) for p in (task / "children").read_text().split())
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(platform.system() != "Linux", reason="reads /proc")
def test_stopping_the_server_stops_its_render_workers(tmp_path: Path) -> None:
    env = {"OGSHOT_RENDER_PROCESSES": "2", "OGSHOT_CAPTURE": "none"}
    with ogshot_serve_process(tmp_path, env=env) as (base, proc):
        assert httpx.get(f"{base}/og.png", params={"title": "Made by a worker"}).status_code == 200
        workers = _children(proc.pid)
        assert workers, "the card was made without worker processes"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {pid for pid in workers if _alive(pid)}
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "render workers outlived the server"


def test_render_threads_run_calls_in_order_and_give_futures_to_run_in_executor() -> None:
    pool = RenderThreads(1)
    try:
        ran: list[int] = []
        for i in range(5):
            pool.call(lambda i=i: ran.append(i), lambda: None)
        assert pool.submit(lambda a, b=0: a + b, 2, b=3).result(timeout=10) == 5
        assert ran == [0, 1, 2, 3, 4]  # one thread, one queue: in the order given
        failing = pool.submit(int, "not a number")
        with pytest.raises(ValueError):
            failing.result(timeout=10)

        async def through_the_loop() -> str:
            return await asyncio.get_running_loop().run_in_executor(pool, str.upper, "card")

        assert asyncio.run(through_the_loop()) == "CARD"
        # A call that lets an exception through is logged; the thread lives on.
        pool.call(lambda: 1 / 0, lambda: None)
        assert pool.submit(lambda: "still here").result(timeout=10) == "still here"
    finally:
        pool.shutdown(wait=False)


def test_render_threads_start_as_calls_come_and_no_more_than_asked() -> None:
    pool = RenderThreads(2, name="bounded")
    try:
        assert _threads_named("bounded") == 0  # none before the first call
        gate = threading.Event()
        held = [pool.submit(gate.wait, 10) for _ in range(4)]
        assert pool.queued() >= 1  # two run, the rest wait for one of them
        assert _threads_named("bounded") == 2
        gate.set()
        assert all(f.result(timeout=10) for f in held)
        assert pool.queued() == 0
    finally:
        pool.shutdown(wait=False)
    for thread in threading.enumerate():
        if thread.name.startswith("bounded_"):
            thread.join(timeout=10)
    assert _threads_named("bounded") == 0


def test_render_threads_shut_down_cancelling_what_waits_and_refuse_new_calls() -> None:
    pool = RenderThreads(1)
    started, gate = threading.Event(), threading.Event()

    def busy() -> str:
        started.set()
        gate.wait(10)
        return "done"

    running = pool.submit(busy)
    assert started.wait(10)
    waiting = pool.submit(str, "never")
    cancelled: list[str] = []
    pool.call(lambda: cancelled.append("ran"), lambda: cancelled.append("cancelled"))
    pool.shutdown(wait=False, cancel_futures=True)
    assert waiting.cancelled() and cancelled == ["cancelled"]
    with pytest.raises(RuntimeError):
        pool.submit(str, "late")
    gate.set()
    assert running.result(timeout=10) == "done"  # what had begun ends as it would


def test_render_threads_left_unclosed_end_with_their_pool() -> None:
    import gc

    pool = RenderThreads(2, name="dropped")
    assert pool.submit(lambda: 1).result(timeout=10) == 1
    assert pool.submit(lambda: 2).result(timeout=10) == 2
    threads = [t for t in threading.enumerate() if t.name.startswith("dropped_")]
    assert threads
    del pool
    gc.collect()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()


def _threads_named(prefix: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith(prefix + "_") and t.is_alive())


def test_render_threads_shut_down_whole_when_a_cancel_fails() -> None:
    """A queued render's cancel fails once its event loop has closed: the others queued behind
    it are still cancelled, and the threads still end."""
    pool = RenderThreads(1, name="closing")
    taken, gate = threading.Event(), threading.Event()

    def hold() -> None:
        taken.set()
        gate.wait(10)

    pool.call(hold, lambda: None)
    assert taken.wait(10)  # the one thread is busy: what follows stays queued
    log: list[str] = []

    def loop_closed() -> None:
        raise RuntimeError("Event loop is closed")

    pool.call(lambda: log.append("ran 1"), loop_closed)
    pool.call(lambda: log.append("ran 2"), lambda: log.append("cancelled 2"))
    pool.shutdown(wait=False, cancel_futures=True)
    gate.set()
    for thread in threading.enumerate():
        if thread.name.startswith("closing_"):
            thread.join(timeout=10)
    assert log == ["cancelled 2"]
    assert _threads_named("closing") == 0
