"""Captures from a local, warm, headless Chromium, sealed off from the private network.

One browser stays up for many captures; every capture gets a fresh browser context (no cookie,
cache or storage survives it), made ahead of time while the browser is idle so that a capture
only pays for the page. The gates, in order::

    scheme (http/https only, before the browser sees anything)
      → slot (``OGSHOT_CHROMIUM_CONCURRENCY`` pages at once; waiting longer than
        ``OGSHOT_CHROMIUM_QUEUE_TIMEOUT`` = overloaded)
      → one deadline (``OGSHOT_CHROMIUM_TIMEOUT``) over: context → goto (wait for
        ``OGSHOT_CHROMIUM_WAIT``) → capped settle → delay → metadata → screenshot
      → a browser that died under the capture is replaced and the capture tried once more

The browser is replaced after ``OGSHOT_CHROMIUM_RECYCLE`` captures, when it crashes, and when it
hangs (a context that cannot be closed in time). Every connection it makes goes through the
:class:`~ogshot.egress.EgressProxy`; it resolves no name itself (see :func:`browser_args`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout
from playwright.async_api import async_playwright

from ..egress import AddressPolicy, EgressProxy
from ..netguard import UrlPolicy
from ..pagemeta import META_SCRIPT, PageMeta
from ..settings import Settings
from . import Capture, CaptureError, CaptureRequest, CaptureUnavailable
from .blocking import COLLECT_SCRIPT, Blocked, Blocker, hide_script, hiding_css

log = logging.getLogger("ogshot")

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Seconds allowed to close a context; a browser that cannot is hung and is replaced.
_CLOSE_TIMEOUT = 3.0
#: The tallest full-page capture, in CSS pixels.
MAX_FULL_PAGE_HEIGHT = 16384


def find_chromium(configured: str = "") -> str:
    """The browser binary: ``OGSHOT_CHROMIUM_PATH`` when set, else the first one on PATH."""
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            raise CaptureUnavailable(f"OGSHOT_CHROMIUM_PATH={configured} is not an executable")
        return configured
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise CaptureUnavailable(
        "OGSHOT_CAPTURE=chromium needs a Chromium binary: install the 'chromium' package "
        "or set OGSHOT_CHROMIUM_PATH"
    )


def browser_args(proxy_url: str, marker: str) -> list[str]:
    """Command-line switches for a browser that can only reach the network through the proxy.

    ``<-loopback>`` removes Chromium's implicit proxy bypass for localhost, 127/8 and 169.254/16;
    the resolver rule makes every name but the proxy's own address unresolvable, so nothing can go
    direct; UDP (WebRTC) cannot use an HTTP proxy, so non-proxied UDP is off; QUIC likewise.
    """
    proxy_host = urlsplit(proxy_url).hostname or "127.0.0.1"
    return [
        f"--proxy-server={proxy_url}",
        "--proxy-bypass-list=<-loopback>",
        f"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE {proxy_host}",
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
        "--webrtc-ip-handling-policy=disable_non_proxied_udp",
        "--disable-quic",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-domain-reliability",
        "--no-first-run",
        "--no-default-browser-check",
        "--dns-prefetch-disable",
        "--mute-audio",
        # Names this browser's processes, so that it can be found (and killed) by its marker.
        f"--ogshot-instance={marker}",
    ]


def command_lines() -> Iterator[tuple[int, bytes]]:
    """Every process's id and raw command line, as far as ``/proc`` lets us read them."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            yield int(entry.name), (entry / "cmdline").read_bytes()
        except OSError:
            continue


def _processes_with(marker: str) -> list[int]:
    """Process ids whose command line carries ``marker`` (the browser's main process)."""
    mark = marker.encode()
    return [pid for pid, line in command_lines() if mark in line and b"--type=" not in line]


def tree_rss(pid: int) -> int:
    """Memory of a process and all its descendants (Linux ``/proc``), 0 if gone: proportional set
    size where the kernel gives it (shared pages split between the processes sharing them, so
    that a browser's many processes are not counted several times over), else resident size."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            statm = (entry / "statm").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
        rss[int(entry.name)] = int(statm.split()[1]) * page
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += _pss(p) or rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class _Tab:
    """A fresh context with its one page and a DevTools session on it, ready before it is needed."""

    context: Any
    page: Any
    cdp: Any
    viewport: tuple[int, int]
    #: The page being captured (the source of its requests, for the filter rules).
    url: str = ""
    blocked: Blocked = field(default_factory=Blocked)


@dataclass
class _Browser:
    """One launched browser and what it has done."""

    browser: Any
    marker: str
    captures: int = 0
    inflight: int = 0
    dead: bool = False
    retiring: bool = False
    spares: list[_Tab] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        pids = _processes_with(self.marker)
        return pids[0] if pids else None


class _BrowserGone(Exception):
    """The browser died under a capture: the capture may be tried again on a new one."""


class ChromiumCapture:
    """A :class:`~ogshot.capture.CaptureProvider` (and metadata source) over a local Chromium."""

    name = "chromium"

    def __init__(self, settings: Settings, *, policy: UrlPolicy | None = None) -> None:
        self.settings = settings
        self.executable = find_chromium(settings.chromium_path)
        self.proxy = EgressProxy(
            AddressPolicy.from_url_policy(policy or UrlPolicy.from_settings(settings))
        )
        self._slots = asyncio.Semaphore(settings.chromium_concurrency)
        self._busy = 0
        self._start_lock = asyncio.Lock()
        self._playwright: Any = None
        self._current: _Browser | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False
        #: Ads and cookie banners left out of captures, when asked for; and how many so far.
        self.blocker = Blocker() if settings.chromium_block else None
        if self.blocker is not None:
            self.name = "chromium+block"  # cleaned captures are other images: other cache keys
        self.blocked = Blocked()
        #: Browsers launched so far, and captures made: tests, logs and metrics read them.
        self.launches = 0
        self.captures = 0

    @property
    def enabled(self) -> bool:
        return True

    @property
    def in_flight(self) -> int:
        """Captures holding a slot now."""
        return self._busy

    @property
    def browser_pid(self) -> int | None:
        return self._current.pid if self._current is not None else None

    # -- the browser's life ------------------------------------------------------------------

    async def start(self) -> None:
        """Start the proxy, the driver and a browser now rather than on the first capture."""
        await self._browser()

    async def ready(self) -> None:
        """Raise unless captures can run (``/readyz``): not shut down, and a browser that died is
        launched again now rather than on the next capture. Before the first capture no browser
        runs yet, and that is ready: it starts on demand."""
        if self._closed:
            raise CaptureError("capture_off", "captures are shutting down", status=503)
        current = self._current
        if current is not None and (current.dead or not current.browser.is_connected()):
            await self._browser()

    async def _browser(self) -> _Browser:
        current = self._current
        if current is not None and not current.dead and not current.retiring:
            return current
        async with self._start_lock:
            current = self._current
            if current is not None and not current.dead and not current.retiring:
                return current
            if self._closed:
                raise CaptureError("capture_off", "captures are shutting down", status=503)
            if self.proxy.port == 0:
                await self.proxy.start()
            if self._playwright is None:
                self._playwright = await async_playwright().start()
            marker = uuid.uuid4().hex
            try:
                browser = await self._playwright.chromium.launch(
                    executable_path=self.executable,
                    args=browser_args(self.proxy.url, marker),
                    # Playwright's own proxy switch would add a second proxy flag; the args say it.
                    timeout=30_000,
                )
            except Exception as exc:
                # The driver itself may be what failed: the next capture starts it afresh.
                driver, self._playwright = self._playwright, None
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(driver.stop(), _CLOSE_TIMEOUT)
                raise CaptureError(
                    "browser_failed", f"the local browser did not start ({type(exc).__name__})"
                ) from None
            fresh = _Browser(browser, marker)
            browser.on("disconnected", lambda _b: self._mark_dead(fresh))
            self.launches += 1
            old, self._current = current, fresh
            if old is not None:
                self._retire(old)
            return fresh

    def _mark_dead(self, b: _Browser) -> None:
        if not b.dead:
            b.dead = True
            if not self._closed:
                log.warning("the local browser went away; the next capture starts a new one")

    def _retire(self, b: _Browser) -> None:
        b.retiring = True
        if b.inflight == 0:
            self._spawn(self._close_browser(b))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._settle)

    def _settle(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Background upkeep (closing, pre-making contexts) only ever fails quietly.
            log.debug("local browser upkeep failed: %r", task.exception())

    async def _close_browser(self, b: _Browser) -> None:
        for tab in b.spares:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(tab.context.close(), _CLOSE_TIMEOUT)
        b.spares.clear()
        try:
            await asyncio.wait_for(b.browser.close(), _CLOSE_TIMEOUT)
        except Exception:
            self._kill(b)

    def _kill(self, b: _Browser) -> None:
        pid = b.pid
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        b.dead = True

    async def _new_tab(self, b: _Browser, viewport: tuple[int, int]) -> _Tab:
        ctx = await b.browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]},
            # Service workers would make requests that request interception never sees, and
            # outlive the capture: none are registered.
            service_workers="block",
            accept_downloads=False,
            # With blocking, the hiding style sheet must apply whatever the page's CSP says.
            bypass_csp=self.blocker is not None,
        )
        try:
            page = await ctx.new_page()
            cdp = await ctx.new_cdp_session(page)
            tab = _Tab(ctx, page, cdp, viewport)
            if self.blocker is not None:
                await ctx.route("**/*", lambda route: self._filter(tab, route))
        except BaseException:
            self._spawn(ctx.close())
            raise
        return tab

    async def _filter(self, tab: _Tab, route: Any) -> None:
        """Leave out the requests the filter rules name (looks only: the proxy guards)."""
        assert self.blocker is not None
        request = route.request
        kind = request.resource_type
        if kind == "document" and request.frame.parent_frame is not None:
            kind = "subdocument"
        if self.blocker.blocks(request.url, tab.url or request.url, kind):
            tab.blocked.requests += 1
            self.blocked.requests += 1
            await route.abort("blockedbyclient")
        else:
            await route.fallback()

    async def _fill_spare(self, b: _Browser, viewport: tuple[int, int]) -> None:
        if b.dead or b.retiring or b.spares or self._closed:
            return
        try:
            tab = await self._new_tab(b, viewport)
        except Exception:
            return
        if b.dead or b.retiring or self._closed or b.spares:
            self._spawn(self._close_context(b, tab.context))
            return
        b.spares.append(tab)

    async def _take_tab(self, b: _Browser, viewport: tuple[int, int]) -> _Tab:
        """A fresh context: the one made ahead of time if there is one, else a new one."""
        tab = b.spares.pop() if b.spares else await self._new_tab(b, viewport)
        self._spawn(self._fill_spare(b, viewport))
        return tab

    # -- captures -----------------------------------------------------------------------------

    async def capture(self, request: CaptureRequest) -> Capture:
        shot, _meta = await self._visit(request, screenshot=True)
        assert shot is not None
        return shot

    async def page_meta(self, url: str) -> PageMeta:
        """Visit the page only for its metadata (a layout with no capture box)."""
        try:
            _shot, meta = await self._visit(CaptureRequest(url=url), screenshot=False)
        except CaptureError as exc:
            log.info("page metadata of %s not read: %s", url, exc.detail)
            return PageMeta()
        return meta

    async def _visit(
        self, request: CaptureRequest, *, screenshot: bool
    ) -> tuple[Capture | None, PageMeta]:
        scheme = urlsplit(request.url).scheme.lower()
        if scheme not in ("http", "https"):
            raise CaptureError("bad_url", "only http and https pages are captured", status=400)
        s = self.settings
        try:
            async with asyncio.timeout(s.chromium_queue_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise CaptureError(
                "overloaded", "too many captures in progress", status=503, retry_after=1
            ) from None
        self._busy += 1
        try:
            deadline = time.monotonic() + s.chromium_timeout
            for attempt in (1, 2):
                try:
                    async with asyncio.timeout_at(_loop_time(deadline)):
                        return await self._attempt(request, deadline, screenshot)
                except _BrowserGone:
                    if attempt == 2 or time.monotonic() >= deadline:
                        raise CaptureError(
                            "browser_failed", "the local browser failed during the capture"
                        ) from None
                    log.warning("retrying a capture of %s on a new browser", request.url)
                except TimeoutError:
                    raise CaptureError(
                        "capture_timeout",
                        f"the page did not load within {s.chromium_timeout:g} seconds",
                        status=504,
                    ) from None
            raise AssertionError("unreachable")
        finally:
            self._busy -= 1
            self._slots.release()

    async def _attempt(
        self, request: CaptureRequest, deadline: float, screenshot: bool
    ) -> tuple[Capture | None, PageMeta]:
        b = await self._browser()
        b.inflight += 1
        tab: _Tab | None = None
        try:
            try:
                tab = await self._take_tab(b, (request.width, request.height))
                return await self._on_page(tab, request, deadline, screenshot)
            except PlaywrightTimeout:
                raise TimeoutError from None
            except PlaywrightError as exc:
                if b.dead or not b.browser.is_connected():
                    b.dead = True
                    raise _BrowserGone() from None
                raise CaptureError("page_failed", _page_error(str(exc))) from None
        finally:
            b.inflight -= 1
            b.captures += 1
            self.captures += 1
            if tab is not None:
                # In the background: a capture past its deadline answers at once.
                self._spawn(self._close_context(b, tab.context))
            if b.captures >= self.settings.chromium_recycle and not b.retiring:
                self._retire(b)
                if b is self._current:
                    self._current = None
            elif (b.retiring or b.dead) and b.inflight == 0:
                self._spawn(self._close_browser(b))

    async def _close_context(self, b: _Browser, ctx: Any) -> None:
        try:
            await asyncio.wait_for(ctx.close(), _CLOSE_TIMEOUT)
        except Exception:
            if not b.dead:
                log.warning("the local browser hangs; replacing it")
                self._kill(b)

    async def _on_page(
        self, tab: _Tab, request: CaptureRequest, deadline: float, screenshot: bool
    ) -> tuple[Capture | None, PageMeta]:
        s = self.settings
        page, cdp = tab.page, tab.cdp
        remaining_ms = max(1.0, (deadline - time.monotonic()) * 1000)
        page.set_default_timeout(remaining_ms)
        if tab.viewport != (request.width, request.height):
            await page.set_viewport_size({"width": request.width, "height": request.height})
        tab.url = request.url
        response = await page.goto(request.url, wait_until=s.chromium_wait)
        if response is not None and response.headers.get("x-ogshot-refused"):
            raise CaptureError(
                "page_refused", "the page's address is not allowed on this server", status=403
            )
        if s.chromium_wait == "domcontentloaded" and s.chromium_settle > 0:
            # A capped wait for the rest of the page: late images and fonts, if they come soon.
            settle = min(s.chromium_settle, max(0.0, deadline - time.monotonic() - 0.5))
            with contextlib.suppress(PlaywrightTimeout):
                await page.wait_for_load_state("load", timeout=settle * 1000)
        if request.delay:
            await asyncio.sleep(min(request.delay / 1000, max(0.0, deadline - time.monotonic())))
        if self.blocker is not None:
            await self._hide(tab)
        meta = await _read_meta(cdp)
        if not screenshot:
            return None, meta
        fmt = request.format if request.format in ("png", "jpeg", "webp") else "png"
        params: dict[str, Any] = {"format": fmt, "optimizeForSpeed": True, "fromSurface": True}
        if fmt != "png":
            params["quality"] = 90
        if request.full_page:
            metrics = await cdp.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            cap = min(MAX_FULL_PAGE_HEIGHT, s.capture_max_pixels // max(1, request.width))
            height = max(request.height, min(int(size["height"]), cap))
            params["clip"] = {"x": 0, "y": 0, "width": request.width, "height": height, "scale": 1}
            params["captureBeyondViewport"] = True
        shot = await cdp.send("Page.captureScreenshot", params)
        body = base64.b64decode(shot["data"])
        return Capture(body, f"image/{fmt}", meta), meta

    async def _hide(self, tab: _Tab) -> None:
        """Hide what the cosmetic rules name, before the screenshot."""
        assert self.blocker is not None
        try:
            found = await _isolated(tab.cdp, COLLECT_SCRIPT)
            classes = [str(c) for c in found.get("classes", [])] if isinstance(found, dict) else []
            ids = [str(i) for i in found.get("ids", [])] if isinstance(found, dict) else []
            selectors = self.blocker.selectors(tab.url, classes, ids)
            if selectors:
                await _isolated(tab.cdp, hide_script(json.dumps(hiding_css(selectors))))
            tab.blocked.selectors = len(selectors)
            self.blocked.selectors += len(selectors)
        except Exception as exc:  # a page that will not be cleaned is still captured
            log.info("cosmetic filtering of %s failed: %r", tab.url, exc)

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        current, self._current = self._current, None
        if current is not None:
            await self._close_browser(current)
        if self._playwright is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._playwright.stop(), 10)
            self._playwright = None
        await self.proxy.aclose()


async def _isolated(cdp: Any, expression: str) -> Any:
    """Evaluate in an isolated world of the main frame: the page's scripts share its DOM but
    cannot shadow or replace anything the expression calls."""
    tree = await cdp.send("Page.getFrameTree")
    world = await cdp.send(
        "Page.createIsolatedWorld",
        {"frameId": tree["frameTree"]["frame"]["id"], "worldName": "ogshot"},
    )
    result = await cdp.send(
        "Runtime.evaluate",
        {"expression": expression, "contextId": world["executionContextId"], "returnByValue": True},
    )
    return result.get("result", {}).get("value")


async def _read_meta(cdp: Any) -> PageMeta:
    """The page's title, description and site name, as the page states them."""
    try:
        value = await _isolated(cdp, META_SCRIPT)
    except Exception as exc:
        log.info("page metadata not read: %r", exc)
        return PageMeta()
    return PageMeta.from_fields(value) if isinstance(value, dict) else PageMeta()


def _page_error(message: str) -> str:
    """A short sentence from a Playwright error (its first line, without the call log)."""
    first = message.strip().splitlines()[0] if message.strip() else "the page failed"
    return first[:200]


def _loop_time(deadline: float) -> float:
    """A ``time.monotonic`` deadline on the running loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + (deadline - time.monotonic())
