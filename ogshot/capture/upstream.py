"""Captures from an upstream screenshot API, over one shared ``httpx.AsyncClient``.

Every call goes through the same gates, in this order::

    breaker (open? refuse at once) → slot (a bounded semaphore; waiting too long = overloaded)
      → attempts under one overall deadline: send, stream at most N bytes, check the type and
        the header's pixel count; retry timeouts, connection errors, 5xx and 429 with capped,
        jittered exponential backoff (or the upstream's Retry-After, capped); never other 4xx
    → the outcome feeds the breaker

Clocks, sleeping and randomness are parameters so that tests drive them.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from ..headers import OWS, digits
from ..settings import Settings
from . import Capture, CaptureError, CaptureRequest
from .images import MEDIA_TYPES, check
from .presets import PRESETS, Preset

log = logging.getLogger("ogshot")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: Content types an upstream may label an image with; the bytes are sniffed either way.
_IMAGE_TYPES = {"image/png", "image/jpeg", "image/jpg", "image/webp", "application/octet-stream"}


class CircuitBreaker:
    """Closed → (``failures`` counted in a row) → open → (``reset`` seconds) → half-open: one
    probe. The probe's success closes the circuit; a counted failure opens it again.

    It trips on the upstream's health, never on what one page or one client does:

    - a failure of the upstream itself (it cannot be reached, refuses our key, rate-limits us)
      counts every time: ``failure()``;
    - a failure one page can cause as well as a sick upstream (a timeout, a 5xx, a broken
      answer) counts once per distinct site (host) in the current run of failures:
      ``failure(site)``. A thousand slow pages on one site count one; the same failures
      spread over many sites are the upstream's;
    - a refusal about the page itself (a 404, an image over the caps) counts nothing:
      ``neutral()``.

    Any success ends the run of failures.
    """

    #: Sites remembered in one run of failures, at most (it ends at the next success).
    MAX_SITES = 1024

    def __init__(self, failures: int, reset: float, clock: Clock = time.monotonic) -> None:
        self.threshold = failures
        self.reset = reset
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._probing = False
        self._sites: set[str] = set()

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.reset:
            return "half_open"
        return "open"

    def retry_in(self) -> int:
        if self.opened_at is None:
            return 0
        return max(1, int(self.reset - (self.clock() - self.opened_at) + 0.999))

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open, only one at a time does."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._probing = False
        self._sites.clear()

    def failure(self, site: str | None = None) -> None:
        """A failed call: the upstream's own (no ``site``), or one a page on ``site`` may
        have caused, which counts only if no other page of that site failed in this run."""
        if site is not None:
            if site in self._sites or len(self._sites) >= self.MAX_SITES:
                self.neutral()  # that site's trouble is counted already
                return
            self._sites.add(site)
        self.failures += 1
        if self._probing or self.failures >= self.threshold:
            self.opened_at = self.clock()
        self._probing = False

    def neutral(self) -> None:
        """A call that says nothing about the upstream's health (our own 4xx)."""
        self._probing = False


class _Retryable(Exception):
    def __init__(self, error: CaptureError, wait: float | None = None) -> None:
        self.error = error
        self.wait = wait


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip(OWS)
    seconds = digits(value)
    if seconds is not None:
        return float(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, when - now)


def _timeout() -> CaptureError:
    return CaptureError("upstream_timeout", "the upstream screenshot API timed out", status=504)


# What the breaker makes of each failure (see CircuitBreaker). About the page asked for, or our
# own load: nothing. The upstream's own trouble: every time. Anything else (timeouts, 5xx,
# broken answers), which one page can cause too: once per site.
_NEUTRAL = {"upstream_4xx", "image_too_large", "wrong_size", "too_large", "overloaded"}
_UPSTREAM_WIDE = {"upstream_connect", "upstream_auth", "upstream_429"}


def _site(url: str) -> str:
    """The host a page is on: what one client's pages share."""
    try:
        return (urlsplit(url).hostname or url).lower()
    except ValueError:
        return url


class UpstreamCapture:
    """A :class:`~ogshot.capture.CaptureProvider` over an upstream API preset."""

    def __init__(
        self,
        settings: Settings,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        wall: Clock = time.time,
    ) -> None:
        self.settings = settings
        self.preset: Preset = PRESETS[settings.upstream_preset]
        self.name = f"http:{self.preset.name}"
        self.endpoint = settings.upstream_url or self.preset.default_url
        self._key = settings.upstream_key.get_secret_value()
        self._own_client = client is None
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(
                connect=settings.upstream_connect_timeout,
                read=settings.upstream_read_timeout,
                write=settings.upstream_read_timeout,
                pool=settings.upstream_queue_timeout or None,
            ),
            limits=httpx.Limits(max_connections=settings.upstream_concurrency),
            follow_redirects=True,
            headers={"User-Agent": "ogshot"},
        )
        self.breaker = CircuitBreaker(
            settings.upstream_breaker_failures, settings.upstream_breaker_reset, clock
        )
        self._slots = asyncio.Semaphore(settings.upstream_concurrency)
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._wall = wall
        #: Upstream requests sent, retries included: tests and metrics read it.
        self.calls = 0

    @property
    def enabled(self) -> bool:
        return True

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()

    async def capture(self, request: CaptureRequest) -> Capture:
        if not self.breaker.allow():
            raise CaptureError(
                "circuit_open",
                "the upstream screenshot API is failing; calls are paused",
                status=503,
                retry_after=self.breaker.retry_in(),
            )
        try:
            result = await self._gated(request)
        except CaptureError as exc:
            if exc.reason in _NEUTRAL:
                self.breaker.neutral()
            elif exc.reason in _UPSTREAM_WIDE:
                self.breaker.failure()
            else:
                self.breaker.failure(_site(request.url))
            raise
        except BaseException:
            self.breaker.neutral()  # cancelled: says nothing about the upstream
            raise
        self.breaker.success()
        return result

    async def _gated(self, request: CaptureRequest) -> Capture:
        s = self.settings
        try:
            # asyncio.timeout rather than wait_for: on 3.11, wait_for can drop a slot it acquired.
            async with asyncio.timeout(s.upstream_queue_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise CaptureError(
                "overloaded", "too many captures in progress", status=503, retry_after=1
            ) from None
        try:
            return await self._with_retries(request)
        finally:
            self._slots.release()

    async def _with_retries(self, request: CaptureRequest) -> Capture:
        s = self.settings
        deadline = self._clock() + s.upstream_timeout
        attempt = 0
        while True:
            remaining = deadline - self._clock()
            try:
                async with asyncio.timeout(max(remaining, 0.001)):
                    return await self._attempt(request)
            except TimeoutError:
                error, wait = _timeout(), None
            except _Retryable as r:
                error, wait = r.error, r.wait
            attempt += 1
            if attempt > s.upstream_retries:
                raise error
            backoff = min(s.upstream_backoff_max, s.upstream_backoff * 2 ** (attempt - 1))
            backoff *= 0.5 + self._rand() / 2  # jitter: spread the herd of retries
            if wait is not None:
                backoff = min(max(wait, backoff), s.upstream_backoff_max)
                if wait > s.upstream_backoff_max:
                    raise error  # the upstream asks for longer than we will hold a client
            if self._clock() + backoff >= deadline:
                raise error
            await self._sleep(backoff)

    async def _attempt(self, request: CaptureRequest) -> Capture:
        call = self.preset.build(request, self.endpoint, self._key)
        self.calls += 1
        try:
            async with self.client.stream(
                call.method, call.url, params=call.params, headers=call.headers, json=call.json
            ) as resp:
                self._check_status(resp)
                self._check_type(resp)
                body = await self._read_capped(resp)
        except httpx.TimeoutException:
            raise _Retryable(_timeout()) from None
        except httpx.TransportError as exc:
            detail = f"cannot reach the upstream screenshot API ({type(exc).__name__})"
            raise _Retryable(CaptureError("upstream_connect", detail)) from None
        except httpx.RequestError as exc:  # too many redirects, an undecodable encoding
            detail = f"the upstream screenshot API answered badly ({type(exc).__name__})"
            raise CaptureError("bad_response", detail) from None
        want = None if request.full_page else (request.width, request.height)
        fmt, _, _ = check(body, self.settings.capture_max_pixels, want, request.full_page)
        # The bytes are the authority on the type; the upstream's label only had to be an image.
        return Capture(body, MEDIA_TYPES[fmt])

    def _check_status(self, resp: httpx.Response) -> None:
        status = resp.status_code
        if status < 300:
            return
        wait = parse_retry_after(resp.headers.get("retry-after"), self._wall())
        if status >= 500:
            raise _Retryable(
                CaptureError(
                    "upstream_5xx",
                    f"the upstream screenshot API failed ({status})",
                    retry_after=int(wait + 0.999) if wait else None,
                ),
                wait,
            )
        if status == 429:
            raise _Retryable(
                CaptureError(
                    "upstream_429",
                    "the upstream screenshot API is rate limiting us",
                    status=429,
                    retry_after=int(wait + 0.999) if wait is not None else 1,
                ),
                wait,
            )
        if status in (401, 403, 407):
            # Our key, not the client's request: a client cannot fix it, so not a 4xx for them.
            raise CaptureError(
                "upstream_auth", f"the upstream screenshot API refused our key ({status})"
            )
        if status < 400:
            raise CaptureError("bad_response", f"the upstream answered {status}, not an image")
        raise CaptureError(
            "upstream_4xx",
            f"the upstream screenshot API refused this capture ({status})",
            status=status,
        )

    def _check_type(self, resp: httpx.Response) -> None:
        media_type = resp.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in _IMAGE_TYPES:
            raise CaptureError(
                "bad_content_type",
                f"the upstream sent '{media_type or 'no content type'}', not an image",
            )

    async def _read_capped(self, resp: httpx.Response) -> bytes:
        cap = self.settings.capture_max_bytes
        declared = digits(resp.headers.get("content-length", "").strip(OWS))
        if declared is not None and declared > cap:
            raise CaptureError("too_large", f"the upstream image is over {cap} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise CaptureError("too_large", f"the upstream image is over {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
