"""A small, misbehaving screenshot API on a loopback port, speaking the ``hermes`` dialect.

The page URL's path picks the behaviour (``https://example.com/slow`` sleeps, ``/endless`` never
stops sending...), so a whole request can be driven end to end through ogshot.
"""

from __future__ import annotations

import io
import struct
import sys
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from PIL import Image, ImageDraw

KEY = "test-key"


def synthetic_page(width: int, height: int, fmt: str = "png") -> bytes:
    """A picture that looks like a web page: nav bar, hero, text lines, cards."""
    im = Image.new("RGB", (width, height), (246, 247, 251))
    d = ImageDraw.Draw(im)
    s = width / 1200
    d.rectangle((0, 0, width, int(64 * s)), fill=(32, 41, 64))
    d.ellipse((int(24 * s), int(16 * s), int(56 * s), int(48 * s)), fill=(255, 153, 51))
    for i in range(4):
        x = int((760 + i * 100) * s)
        d.rounded_rectangle((x, int(26 * s), x + int(70 * s), int(38 * s)), 4, fill=(160, 170, 200))
    d.rectangle((0, int(64 * s), width, int(300 * s)), fill=(70, 110, 220))
    d.rounded_rectangle((int(80 * s), int(120 * s), int(700 * s), int(160 * s)), 8, fill="white")
    d.rounded_rectangle((int(80 * s), int(180 * s), int(520 * s), int(200 * s)), 6,
                        fill=(200, 215, 250))
    d.rounded_rectangle((int(80 * s), int(230 * s), int(240 * s), int(270 * s)), 20,
                        fill=(255, 153, 51))
    for col in range(3):
        x0 = int((80 + col * 360) * s)
        d.rounded_rectangle((x0, int(340 * s), x0 + int(320 * s), int(600 * s)), 12, fill="white",
                            outline=(220, 224, 235))
        for row in range(5):
            y = int((380 + row * 36) * s)
            d.rectangle((x0 + int(24 * s), y, x0 + int((280 - row * 30) * s), y + int(12 * s)),
                        fill=(190, 196, 210))
    out = io.BytesIO()
    im.save(out, {"jpeg": "JPEG", "webp": "WEBP"}.get(fmt, "PNG"))
    return out.getvalue()


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A valid PNG of ``width``×``height`` 1-bit pixels that compresses to a few tens of KB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF
        )

    row = b"\x00" * (1 + (width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that hang up mid-answer are the point of several faults served here.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class FakeUpstream:
    """Start with :meth:`start`; ``calls`` counts requests per page path."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.requests: list[dict[str, str]] = []
        self.fail_first = 0  # for /flaky: how many requests fail before it recovers
        self.hold = 0.0  # seconds each good page takes
        self.active = 0
        self.peak = 0  # most good-page requests in progress at once
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self.bomb = png_bomb()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return None

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                try:
                    outer.handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/screenshot"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        q = {k: v[0] for k, v in parse_qs(urlsplit(h.path).query).items()}
        self.requests.append(q)
        page = urlsplit(q.get("url", "")).path.strip("/") or "ok"
        self.calls[page] += 1
        if h.headers.get("X-API-Key") != KEY:
            return self.send(h, 401, b'{"error":"bad key"}', "application/json")
        width, height = int(q.get("width", 1280)), int(q.get("height", 800))
        fmt = q.get("format", "png")
        if page == "ok" or page.startswith("page"):
            with self._lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
            try:
                if self.hold:
                    self.stopping.wait(self.hold)
                return self.send(h, 200, synthetic_page(width, height, fmt), f"image/{fmt}")
            finally:
                with self._lock:
                    self.active -= 1
        if page == "flaky":
            if self.calls[page] <= self.fail_first:
                return self.send(h, 500, b"boom", "text/plain")
            return self.send(h, 200, synthetic_page(width, height, fmt), f"image/{fmt}")
        if page == "slow":  # answers nothing for a long time
            self.stopping.wait(3)
            return None
        if page == "drip":  # headers at once, then a byte every 0.2 s: defeats read timeouts
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.send_header("Content-Length", "100000")
            h.end_headers()
            for _ in range(30):
                if self.stopping.wait(0.2):
                    return None
                h.wfile.write(b"\x00")
                h.wfile.flush()
            return None
        if page == "endless":  # an image that never ends
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            block = b"\x89PNG" + b"\x00" * 65532
            for _ in range(4096):
                if self.stopping.is_set():
                    return None
                h.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
            return None
        if page == "bomb":
            return self.send(h, 200, self.bomb, "image/png")
        if page == "garbage":
            return self.send(h, 200, b"this is not an image at all" * 10, "image/png")
        if page == "html":
            return self.send(h, 200, b"<html>nope</html>", "text/html")
        if page == "empty":
            return self.send(h, 200, b"", "image/png")
        if page == "wrongsize":
            return self.send(h, 200, synthetic_page(300, 200, fmt), f"image/{fmt}")
        if page == "e500":
            return self.send(h, 500, b"boom", "text/plain")
        if page == "e503":
            return self.send(h, 503, b"busy", "text/plain", {"Retry-After": "0"})
        if page == "e503-superscript":  # a Retry-After that str.isdigit() accepts, int() refuses
            return self.send(h, 503, b"busy", "text/plain", {"Retry-After": "\u00b2"})
        if page == "e503-long":  # delta-seconds thousands of digits long
            return self.send(h, 503, b"busy", "text/plain", {"Retry-After": "9" * 5000})
        if page == "e429":
            return self.send(h, 429, b"slow down", "text/plain", {"Retry-After": "0"})
        if page == "e404":
            return self.send(h, 404, b"no such page", "text/plain")
        return self.send(h, 404, b"unknown fake page", "text/plain")

    @staticmethod
    def send(
        h: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        media_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", media_type)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)
