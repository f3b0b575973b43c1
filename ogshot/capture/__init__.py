"""Page captures: a small provider protocol and the backends behind it.

A provider turns a page URL into image bytes. The service picks one provider at start-up from
``OGSHOT_CAPTURE``; ``none`` is the :class:`NullCapture`, which captures nothing, so that the
rest of the service never branches on whether capture is on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import httpx

from ..errors import OgshotError, UpstreamError
from ..pagemeta import PageMeta
from ..settings import Settings

log = logging.getLogger("ogshot")

_CODES = {504: "upstream_timeout", 503: "overloaded", 429: "rate_limited"}


class CaptureError(UpstreamError):
    """A capture that did not happen. ``reason`` is short and machine-readable: it becomes the
    ``X-Ogshot-Fallback`` header of a card, and the HTTP status is what ``/screenshot`` answers.

    Reasons: ``upstream_timeout``, ``upstream_connect``, ``upstream_5xx``, ``upstream_4xx``,
    ``upstream_429``, ``upstream_auth``, ``circuit_open``, ``overloaded``, ``too_large``,
    ``bad_content_type``, ``bad_response``, ``empty_body``, ``bad_image``, ``image_too_large``,
    ``wrong_size``, ``capture_off``, ``capture_pending`` (not ready within the card deadline; it
    goes on in the background).
    """

    def __init__(
        self, reason: str, detail: str, *, status: int = 502, retry_after: int | None = None
    ) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.reason = reason
        self.status = status
        self.code = _CODES.get(status, "upstream_rejected" if status < 500 else "upstream_error")
        if reason == "capture_off":
            self.code = "capture_off"


class CaptureUnavailable(OgshotError):
    """A capture backend that was asked for but cannot run here; raised at start-up."""

    code = "capture_unavailable"


@dataclass(frozen=True)
class CaptureRequest:
    url: str
    width: int = 1280
    height: int = 800
    format: str = "png"
    full_page: bool = False
    delay: int = 0


@dataclass(frozen=True)
class Capture:
    """Raw image bytes from a provider and their media type, and what the page said about itself
    when the provider read it (the local browser does; an upstream API does not)."""

    body: bytes
    media_type: str
    meta: PageMeta | None = None


class CaptureProvider(Protocol):
    #: Names the provider and its dialect in cache keys (``none``, ``http:hermes``, ...).
    name: str

    @property
    def enabled(self) -> bool: ...

    async def capture(self, request: CaptureRequest) -> Capture: ...

    async def aclose(self) -> None: ...


class NullCapture:
    """Capture switched off: every card is a title card."""

    name = "none"

    @property
    def enabled(self) -> bool:
        return False

    async def capture(self, request: CaptureRequest) -> Capture:
        raise RuntimeError("capture is off")  # never called: the service checks ``enabled``

    async def aclose(self) -> None:
        return None


def make_provider(
    settings: Settings, *, client: httpx.AsyncClient | None = None
) -> CaptureProvider:
    """The provider that ``OGSHOT_CAPTURE`` selects.

    ``chromium`` without a browser binary or without Playwright is refused at start-up rather than
    quietly serving title cards: whoever asks for a local browser expects captures.
    """
    mode = settings.capture_mode
    if mode == "none":
        return NullCapture()
    if mode == "http":
        from .upstream import UpstreamCapture

        return UpstreamCapture(settings, client=client)
    try:
        from .chromium import ChromiumCapture
    except ImportError:
        raise CaptureUnavailable(
            "OGSHOT_CAPTURE=chromium needs the 'playwright' package: pip install 'ogshot[chromium]'"
        ) from None
    return ChromiumCapture(settings)
