"""Upstream screenshot API dialects.

Each preset maps one :class:`~ogshot.capture.CaptureRequest` onto one HTTP request of its API:
endpoint, method, parameter names and units, and where the key goes. ``OGSHOT_UPSTREAM_URL``
replaces the endpoint (a self-hosted or proxied instance); the dialect stays.

| preset | default endpoint | key |
|---|---|---|
| ``hermes`` | :data:`HERMES_DEFAULT_URL` | ``X-API-Key`` header |
| ``screenshotone`` | ``https://api.screenshotone.com/take`` | ``X-Access-Key`` header |
| ``urlbox`` | ``https://api.urlbox.com/v1/render/sync`` (POST JSON) | ``Authorization: Bearer`` |
| ``apiflash`` | ``https://api.apiflash.com/v1/urltoimage`` | ``access_key`` query parameter |
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import CaptureRequest

#: Where ``hermes`` is reached when ``OGSHOT_UPSTREAM_URL`` is not set.
HERMES_DEFAULT_URL = "https://api.hermes-screenshots.com/screenshot"


@dataclass(frozen=True)
class UpstreamCall:
    """One HTTP request to an upstream API, as data (so tests can inspect it without sending)."""

    method: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    json: dict[str, Any] | None = None


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _seconds(ms: int) -> str:
    # These APIs count the delay in whole seconds; round up so a page never gets less time.
    return str(math.ceil(ms / 1000))


def hermes(req: CaptureRequest, endpoint: str, key: str) -> UpstreamCall:
    params = {
        "url": req.url,
        "width": str(req.width),
        "height": str(req.height),
        "format": req.format,
        "full_page": _flag(req.full_page),
        "delay": str(req.delay),
    }
    return UpstreamCall("GET", endpoint, params, {"X-API-Key": key} if key else {})


def screenshotone(req: CaptureRequest, endpoint: str, key: str) -> UpstreamCall:
    params = {
        "url": req.url,
        "viewport_width": str(req.width),
        "viewport_height": str(req.height),
        "format": req.format,
        "full_page": _flag(req.full_page),
        "delay": _seconds(req.delay),
    }
    return UpstreamCall("GET", endpoint, params, {"X-Access-Key": key} if key else {})


def urlbox(req: CaptureRequest, endpoint: str, key: str) -> UpstreamCall:
    body: dict[str, Any] = {
        "url": req.url,
        "width": req.width,
        "height": req.height,
        "format": req.format,
        "full_page": req.full_page,
        "delay": req.delay,
        # Without it the sync endpoint answers JSON with a link; we want the image itself.
        "response_type": "binary",
    }
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return UpstreamCall("POST", endpoint, {}, headers, body)


def apiflash(req: CaptureRequest, endpoint: str, key: str) -> UpstreamCall:
    params = {
        "url": req.url,
        "width": str(req.width),
        "height": str(req.height),
        "format": req.format,
        "full_page": _flag(req.full_page),
        "delay": _seconds(req.delay),
        "response_type": "image",
    }
    if key:
        params = {"access_key": key, **params}
    return UpstreamCall("GET", endpoint, params)


@dataclass(frozen=True)
class Preset:
    name: str
    default_url: str
    build: Callable[[CaptureRequest, str, str], UpstreamCall]


PRESETS: dict[str, Preset] = {
    "hermes": Preset("hermes", HERMES_DEFAULT_URL, hermes),
    "screenshotone": Preset("screenshotone", "https://api.screenshotone.com/take", screenshotone),
    "urlbox": Preset("urlbox", "https://api.urlbox.com/v1/render/sync", urlbox),
    "apiflash": Preset("apiflash", "https://api.apiflash.com/v1/urltoimage", apiflash),
}
