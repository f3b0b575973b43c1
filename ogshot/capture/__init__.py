"""Page captures: a small provider protocol and the backends behind it.

A provider turns a page URL into image bytes. The service picks one provider at start-up from
``OGSHOT_CAPTURE``; ``none`` is the :class:`NullCapture`, which captures nothing, so that the
rest of the service never branches on whether capture is on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..settings import Settings


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
    """Raw image bytes from a provider and their media type."""

    body: bytes
    media_type: str


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


def make_provider(settings: Settings) -> CaptureProvider:
    """The provider that ``OGSHOT_CAPTURE`` selects."""
    mode = settings.capture_mode
    if mode == "none":
        return NullCapture()
    # The upstream API and local Chromium providers plug in here.
    return NullCapture()
