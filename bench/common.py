"""Shared pieces of the benchmarks: a realistic synthetic page capture and timing helpers."""

from __future__ import annotations

import io
import random
import socket
import statistics
import subprocess
import time
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageFilter

TITLE = "Ship social cards that load before the crawler gives up"
#: Distinct titles of ordinary length, rendered in turn by ogshot and by @vercel/og alike.
TITLES = (
    TITLE,
    "How we cut our build times in half with remote caching",
    "Release notes: faster search, dark mode and a new API",
    "A practical guide to PostgreSQL indexes",
    "Why your og:image is blank on LinkedIn, and how to fix it",
    "Designing for every script: Arabic, Hindi and Japanese titles",
    "Ten lessons from running Kubernetes in production",
    "The state of WebAssembly in 2026",
)
SUBTITLE = "A fast, careful og:image service"
SITE = "ogshot.dev"


def synthetic_capture(
    seed: int = 0, size: tuple[int, int] = (1200, 630), photo_quality: int | None = 85
) -> Image.Image:
    """A page capture as a browser would return it: a header, text, and a large photograph.

    1200×630 by default: the viewport a card asks its provider for (``CARD_CAPTURE``).

    The photograph is smooth shapes under sensor-like grain, served as a JPEG of
    ``photo_quality`` as web pages serve photographs (``None`` keeps the raw grain: the worst
    case for a lossless encoder). It covers half the page, so it dominates the PNG's size.
    """
    rng = random.Random(seed)
    w, h = size
    page = Image.new("RGB", size, (250, 250, 252))
    draw = ImageDraw.Draw(page)
    draw.rectangle((0, 0, w, 64), fill=(24, 32, 56))
    for i in range(5):
        draw.rounded_rectangle((40 + i * 140, 22, 150 + i * 140, 42), 6, fill=(200, 210, 230))
    # The hero photograph: blurred blobs of colour, then grain.
    photo_box = (40, 96, w - 40, 96 + int(h * 0.55))
    pw, ph = photo_box[2] - photo_box[0], photo_box[3] - photo_box[1]
    photo = Image.new("RGB", (pw, ph), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    pdraw = ImageDraw.Draw(photo)
    for _ in range(40):
        cx, cy, r = rng.randrange(pw), rng.randrange(ph), rng.randrange(20, 240)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        pdraw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    photo = photo.filter(ImageFilter.GaussianBlur(18))
    grain = Image.effect_noise((pw, ph), 24).convert("RGB")
    photo = Image.blend(photo, grain, 0.18)
    if photo_quality is not None:
        served = io.BytesIO()
        photo.save(served, "JPEG", quality=photo_quality)
        photo = Image.open(served).convert("RGB")
    page.paste(photo, photo_box[:2])
    # Lines of "text" under it.
    y = photo_box[3] + 32
    while y < h - 24:
        line_w = rng.randrange(w // 3, w - 80)
        draw.rectangle((40, y, 40 + line_w, y + 10), fill=(60, 64, 72))
        y += 26
    return page


def timings(fn: Callable[[], object], n: int, warmup: int = 2) -> list[float]:
    """Wall-clock seconds of ``n`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def paired(
    first: Callable[[], object], second: Callable[[], object], n: int, warmup: int = 2
) -> tuple[list[float], list[float]]:
    """Timings of ``first`` and ``second`` taken in turn, so that any drift of the machine's
    speed during the run weighs on both alike."""
    for _ in range(warmup):
        first()
        second()
    a: list[float] = []
    b: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        first()
        t1 = time.perf_counter()
        second()
        t2 = time.perf_counter()
        a.append(t1 - t0)
        b.append(t2 - t1)
    return a, b


def interleaved(fns: list[Callable[[], object]], n: int, warmup: int = 2) -> list[list[float]]:
    """Timings of every function of ``fns``, called in turn ``n`` times: like :func:`paired`,
    for any number of contenders."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    out: list[list[float]] = [[] for _ in fns]
    for _ in range(n):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            out[i].append(time.perf_counter() - t0)
    return out


def summary(samples: list[float]) -> dict[str, float]:
    """Median and 95th percentile, in milliseconds."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"median_ms": statistics.median(ordered) * 1000, "p95_ms": p95 * 1000, "n": len(ordered)}


class KeepAlive:
    """One HTTP/1.1 connection to a loopback server, reused request after request, as a
    crawler's would be: the timings hold the server's work and the wire, no connection set-up.
    A server that closed the idle connection meanwhile gets a new one (not timed apart)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None

    def get(self, target: str) -> tuple[int, dict[str, str], bytes]:
        """``GET target``: the status, the headers (names in lower case) and the body."""
        for attempt in (1, 2):
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                return self._exchange(target)
            except ConnectionError:
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _exchange(self, target: str) -> tuple[int, dict[str, str], bytes]:
        assert self.sock is not None
        self.sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = self.sock.recv(max(65536, length - len(body)))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            body += chunk
        return status, headers, body

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Ends a server the bench started: asked politely, then killed after ten seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
