"""Where cards render: the memory they render in, the render threads (:class:`RenderThreads`)
and optional worker processes.

A card's render and encode allocate a few full-size buffers (3 MB each). glibc serves buffers
that large with fresh ``mmap`` pages and gives them back on ``free``, so every card paid about
2,000 page faults again, up to 8 ms: :func:`tune_allocator` keeps such buffers in the heap for
reuse instead.

Worker processes render cards in parallel, free of the GIL.

Measured on two cores, a thread pool renders fewer cards per second than the cores would allow:
drawing text and the Python around it hold the GIL (deflate and most pixel work do not). Worker
processes do scale on pure rendering (batch pre-rendering, many cores), for the price of one
interpreter each (about 60 MB) and of pickling each card, its layout and its capture across.
Behind HTTP on two cores, where the event loop needs a core too, threads served more cold cards
per second: so processes are opt-in (``OGSHOT_RENDER_PROCESSES``).

Every worker builds the default font set itself; a service whose fonts differ from it (by their
content digest) renders in threads instead, so that a process never draws with other fonts than
the ones its cache key names. One pool is shared by every service of the interpreter and started
on first use ("spawn": safe beside the event loop's threads).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import multiprocessing
import os
import platform
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

from PIL import Image

from .card import Card
from .encode import encode
from .fonts import FontSet, search_path
from .layouts import Layout
from .render import render_card

log = logging.getLogger("ogshot")
T = TypeVar("T")

_worker_fonts: FontSet | None = None

#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Buffers below this come from the heap and are reused: a card's are 2-4 MB.
MMAP_THRESHOLD = 16 * 1024 * 1024
#: Free heap memory kept before it is returned to the system.
TRIM_THRESHOLD = 64 * 1024 * 1024


#: Cards rendered between two returns of freed heap memory to the system.
RELEASE_EVERY = 256


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name is not None else None


def tune_allocator() -> bool:
    """Keep card-sized buffers in the heap, on glibc; True when the allocator was tuned."""
    libc = _glibc()
    if libc is None:
        return False
    mmap_ok: bool = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    trim_ok: bool = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return mmap_ok and trim_ok


def release_memory() -> bool:
    """Return the free pages inside glibc's heaps to the system; True when it could.

    Cached cards stay in memory for hours between the buffers each render frees, so the freed
    space is scattered through the heaps and never reaches their top, where glibc would trim
    it: measured after 3,000 cards, 100 MB more than the cache held. ``malloc_trim(0)`` gives
    those pages back (11 ms for 100 MB); the service calls it every :data:`RELEASE_EVERY`
    renders, which costs under 1 % of the time and a few page faults to the cards after it.
    """
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


#: How much lower than the service's own the workers' CPU priority is: when the cores are full,
#: the process answering cache hits runs first and renders take what is left (bench_overload).
RENDER_NICE = 10


def lower_thread_priority() -> None:
    """Run the calling thread :data:`RENDER_NICE` lower than the rest of its process.

    A render thread's initializer: on Linux each thread has its own nice value, so when the cores
    are full the event loop's thread (cache hits, refusals) runs first and the renders take what
    is left, as worker processes do. Elsewhere this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        nice = os.getpriority(os.PRIO_PROCESS, tid) + RENDER_NICE
        os.setpriority(os.PRIO_PROCESS, tid, min(19, nice))


class RenderThreads(Executor):
    """The render threads: calls taken from one plain queue, in order, by a fixed number of
    threads (started as calls come, up to that number) running at :func:`lower_thread_priority`.

    ``ThreadPoolExecutor`` wraps every call in a future guarded by a Python-level condition and
    finds an idle thread through a Python-level semaphore. A cold card's render can only start
    once the event loop lets go of the GIL, and the loop only hears of its end once the thread
    has let go too: both sides of that bookkeeping stood between the crawler and its card
    (0.03-0.06 ms of a cold card, with the caches cold after its render). :meth:`call`
    queues a bare callable; :meth:`submit` (what ``run_in_executor`` calls) still gives a future.
    """

    def __init__(self, threads: int, name: str = "ogshot-render") -> None:
        if threads < 1:
            raise ValueError("at least one render thread")
        self.threads = threads
        self._name = name
        self._queue: SimpleQueue[_Call | None] = SimpleQueue()
        self._started: list[threading.Thread] = []
        self._closed = False
        # The threads hold the queue, never the pool: a pool dropped unclosed still ends them.
        self._finalizer = weakref.finalize(self, _end_threads, self._queue, self._started)

    def call(self, run: Callable[[], object], cancel: Callable[[], object]) -> None:
        """Run ``run()`` on a render thread, or ``cancel()`` instead should the pool shut down
        first with ``cancel_futures``. ``run`` handles its own failures: an exception it lets
        through is logged and dropped."""
        if self._closed:
            raise RuntimeError("the render threads are shut down")
        if len(self._started) < self.threads:
            self._start()
        self._queue.put((run, cancel))

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

        self.call(run, future.cancel)
        return future

    def queued(self) -> int:
        """Calls waiting for a thread."""
        return self._queue.qsize()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
        try:
            while cancel_futures:
                try:
                    pending = self._queue.get_nowait()
                except Empty:
                    break
                if pending is not None:
                    try:
                        pending[1]()
                    except Exception:  # one failed cancel does not stop the others
                        log.exception("cancelling a queued render failed")
        finally:
            self._finalizer()  # each thread ends once the call it is running returns
        if wait:
            for thread in self._started:
                thread.join()

    def _start(self) -> None:
        thread = threading.Thread(
            target=_take_calls,
            args=(self._queue,),
            name=f"{self._name}_{len(self._started)}",
            daemon=True,
        )
        thread.start()
        self._started.append(thread)


#: A queued call: what runs it, and what cancels it when the pool shuts down first.
_Call = tuple[Callable[[], object], Callable[[], object]]


def _take_calls(queue: SimpleQueue[_Call | None]) -> None:
    lower_thread_priority()
    while True:
        call = queue.get()
        if call is None:
            return
        try:
            call[0]()
        except BaseException:
            log.exception("a call on a render thread failed")
        del call


def _end_threads(queue: SimpleQueue[_Call | None], started: list[threading.Thread]) -> None:
    for _ in started:
        queue.put(None)


def _start_worker(dirs: tuple[Path, ...]) -> None:
    global _worker_fonts
    tune_allocator()
    with contextlib.suppress(OSError):
        os.nice(RENDER_NICE)
    _worker_fonts = FontSet.default(dirs)


def _render_here(card: Card, layout: Layout, capture: Image.Image | None) -> bytes:
    """Runs inside a worker process."""
    assert _worker_fonts is not None
    image = render_card(card, layout, _worker_fonts, capture)
    return encode(image, card.format, captured=capture is not None)


class ProcessRenderer:
    """Renders and encodes cards in ``processes`` worker processes shared by the interpreter."""

    _lock = threading.Lock()
    _pools: dict[tuple[int, tuple[Path, ...]], ProcessPoolExecutor] = {}

    def __init__(self, processes: int, dirs: tuple[Path, ...] | None = None) -> None:
        self.processes = processes
        #: The font search path the workers read their fonts from.
        self.dirs = search_path() if dirs is None else dirs
        self._key = (processes, self.dirs)

    @staticmethod
    def usable(fonts: FontSet) -> bool:
        """Whether workers, which load the fonts of ``fonts.dirs``, would draw exactly with it."""
        return bool(fonts.dirs) and fonts.version == FontSet.default(fonts.dirs).version

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            pool = self._pools.get(self._key)
            if pool is None:
                pool = ProcessPoolExecutor(
                    self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker,
                    initargs=(self.dirs,),
                )
                self._pools[self._key] = pool
            return pool

    def _forget(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pools.get(self._key) is pool:
                del self._pools[self._key]
        pool.shutdown(wait=False, cancel_futures=True)

    def render(
        self, card: Card, layout: Layout, capture: Image.Image | None, fonts: FontSet
    ) -> bytes:
        """The card's bytes, made in a worker; blocks the calling thread (not the event loop).

        A worker that died (killed, out of memory) breaks its pool: the pool is replaced for
        the next card and this one is made here, in the calling thread, with ``fonts``.
        """
        pool = self._pool()
        try:
            return pool.submit(_render_here, card, layout, capture).result()
        except BrokenProcessPool:
            log.warning("render worker died; starting new workers")
            self._forget(pool)
            image = render_card(card, layout, fonts, capture)
            return encode(image, card.format, captured=capture is not None)

    def close(self) -> None:
        """Stop this renderer's workers and wait for them (the service's orderly close).

        An ``ogshot serve`` stopped by SIGTERM ends by that signal once the app has shut down,
        so the interpreter's own exit hooks, which would stop the pool, never run: without this
        the workers outlive the server. The next card through any renderer of the same shape
        starts a new pool."""
        with self._lock:
            pool = self._pools.pop(self._key, None)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    @classmethod
    def shutdown_all(cls) -> None:
        """Stop every worker (tests and orderly exits; the interpreter also does it at exit)."""
        with cls._lock:
            pools = list(cls._pools.values())
            cls._pools.clear()
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)
