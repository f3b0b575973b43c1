"""The one settings object.

Every setting comes from an ``OGSHOT_*`` environment variable (or an optional ``.env`` file) and is
read once, at start-up, into a frozen :class:`Settings`. Nothing else in the package reads the
environment: the object is passed down to whatever needs it.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError

ENV_PREFIX = "OGSHOT_"
#: ``OGSHOT_*`` variables that are not settings: read by the project's own scripts.
NOT_SETTINGS = frozenset({"OGSHOT_VENV", "OGSHOT_UPDATE_GOLDEN"})

CaptureMode = Literal["auto", "none", "http", "chromium"]
UpstreamPreset = Literal["hermes", "screenshotone", "urlbox", "apiflash"]


class Settings(BaseSettings):
    """Service configuration; see the README's settings table for each field."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # Capture
    capture: CaptureMode = "auto"
    upstream_preset: UpstreamPreset = "hermes"
    upstream_url: str = ""
    upstream_key: SecretStr = SecretStr("")
    chromium_path: str = ""
    #: The local browser (``OGSHOT_CAPTURE=chromium``): pages at once, how long a capture may
    #: take, waiting for a slot, what "loaded" means, the capped settle after it, and how many
    #: captures one browser makes before it is replaced.
    chromium_concurrency: int = Field(default=2, ge=1, le=64)
    chromium_timeout: float = Field(default=15.0, gt=0, le=300)
    chromium_queue_timeout: float = Field(default=10.0, ge=0, le=300)
    chromium_wait: Literal["load", "domcontentloaded"] = "domcontentloaded"
    chromium_settle: float = Field(default=1.0, ge=0, le=30)
    chromium_recycle: int = Field(default=200, ge=1)
    #: Hide ads and cookie banners in local captures (a filter engine over vendored lists).
    chromium_block: bool = False
    #: Reading a page's title when a card has none: bytes and seconds, at most.
    page_meta_max_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    page_meta_timeout: float = Field(default=5.0, gt=0, le=60)
    allow_private_networks: bool = False
    private_allowlist: str = ""
    allowed_hosts: str = ""
    #: Resilience of the upstream screenshot API: timeouts in seconds, retries, a breaker.
    upstream_connect_timeout: float = Field(default=3.0, gt=0)
    upstream_read_timeout: float = Field(default=20.0, gt=0)
    upstream_timeout: float = Field(default=30.0, gt=0)
    upstream_retries: int = Field(default=2, ge=0, le=10)
    upstream_backoff: float = Field(default=0.25, ge=0)
    upstream_backoff_max: float = Field(default=5.0, ge=0)
    upstream_concurrency: int = Field(default=8, ge=1, le=1024)
    upstream_queue_timeout: float = Field(default=2.0, ge=0)
    upstream_breaker_failures: int = Field(default=5, ge=1)
    upstream_breaker_reset: float = Field(default=30.0, gt=0)
    #: Seconds a card request waits for its capture before answering the fallback card
    #: (``capture_pending``) while the capture goes on; 0 waits for the capture's own timeout.
    card_deadline: float = Field(default=3.0, ge=0, le=300)
    #: Hostile responses: bytes read from the upstream and pixels decoded, at most.
    capture_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    # Kept below Pillow's own 89 MP warning threshold, so that its global never comes into play.
    capture_max_pixels: int = Field(default=40_000_000, ge=1, le=80_000_000)

    # Signing and absolute URLs
    signing_keys: SecretStr = SecretStr("")
    #: With signing on, still make cards that have no ``url`` (so no capture) without a signature.
    allow_unsigned_text_cards: bool = False
    public_url: str = ""

    # Caching
    cache_memory_mb: float = Field(default=256, ge=0)
    cache_dir: str = ""
    cache_dir_mb: float = Field(default=1024, gt=0)
    redis_url: SecretStr = SecretStr("")
    cache_ttl: int = Field(default=86400, ge=0)
    fallback_ttl: int = Field(default=60, ge=0)
    #: ``s-maxage`` for shared caches (CDNs); unset means "same as max-age" and is left out.
    cache_s_maxage: int | None = Field(default=None, ge=0)
    #: RFC 5861 knobs sent with every successful card.
    cache_stale_while_revalidate: int = Field(default=86400, ge=0)
    cache_stale_if_error: int = Field(default=604800, ge=0)
    #: A complete ``Cache-Control`` value for cards; overrides the four settings above.
    cache_control: str = ""
    #: Seconds a worker waits for another worker's result (Redis lock) before making it itself.
    cache_lock_wait: float = Field(default=10.0, ge=0, le=300)

    # Slow and huge clients (see ogshot/protocol.py and ogshot/connection.py)
    #: Seconds a client has to send a request's line and headers, from its first byte.
    header_timeout: float = Field(default=10.0, gt=0)
    #: Seconds a client has to send a request's body, once its headers are in.
    body_timeout: float = Field(default=30.0, gt=0)
    #: Largest request body accepted on any route, in bytes (some routes cap lower).
    body_max_bytes: int = Field(default=1024 * 1024, ge=1024)

    # Webhooks: the secret of Ghost's webhook (``POST /hooks/ghost``); empty = the route is off.
    ghost_secret: SecretStr = SecretStr("")

    # Layouts and batches
    templates_dir: str = ""
    batch_max: int = Field(default=100, ge=1, le=10000)

    # Budgets and backpressure
    #: Cards a client may have made (cache misses) per window, e.g. ``600/minute``; ``off``: none.
    rate_limit: str = "600/minute"
    #: Proxies whose X-Forwarded-For / Forwarded are believed: addresses or CIDR blocks.
    trusted_proxies: str = ""
    #: Cards made at once (0: twice the render threads or processes), and how many may wait.
    render_concurrency: int = Field(default=0, ge=0, le=1024)
    render_queue: int = Field(default=64, ge=0, le=100_000)
    #: Longest wait, in seconds, before reading the next request of a client that was refused
    #: (429/503) and asks again before its Retry-After (0: read at once).
    refusal_pause: float = Field(default=1.0, ge=0, le=5)

    # Fonts
    #: Extra font folders searched before the bundled and system fonts (os.pathsep-separated).
    font_dirs: str = ""
    #: Whether the system's font folders join the search path (off: bundled fonts only).
    system_fonts: bool = True

    # Rendering
    render_threads: int = Field(default=0, ge=0, le=64)
    #: Worker processes that render cards; 0 renders in the threads (see ogshot/workers.py).
    render_processes: int = Field(default=0, ge=0, le=64)

    # Operations
    log_format: Literal["text", "json"] = "text"
    #: Serve /metrics on this port (all interfaces' ``--host``) instead of the main one.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    #: Folder where worker processes share their metrics; ``ogshot serve`` makes a temporary
    #: one when it runs several workers and this is empty.
    metrics_dir: str = ""
    #: Seconds a stopping server gives requests and cards in progress before it cuts them off.
    shutdown_timeout: int = Field(default=25, ge=1, le=3600)

    @field_validator("templates_dir", "cache_dir", "metrics_dir")
    @classmethod
    def _expand_path(cls, value: str) -> str:
        return str(Path(value).expanduser()) if value else ""

    @property
    def font_dir_list(self) -> list[str]:
        """The folders of ``font_dirs``, in order."""
        return [part for part in self.font_dirs.split(os.pathsep) if part.strip()]

    @property
    def cache_memory_bytes(self) -> int:
        return int(self.cache_memory_mb * 1024 * 1024)

    @property
    def capture_mode(self) -> Literal["none", "http", "chromium"]:
        """The capture backend in effect once ``auto`` is resolved."""
        if self.capture != "auto":
            return self.capture
        has_upstream = bool(self.upstream_url or self.upstream_key.get_secret_value())
        return "http" if has_upstream else "none"

    def capture_budget(self) -> float:
        """The longest one capture may take, waiting for a slot included: leases held while a
        capture runs, and waits for another worker's capture, are sized on it."""
        if self.capture_mode == "chromium":
            return self.chromium_queue_timeout + self.chromium_timeout
        return self.upstream_queue_timeout + self.upstream_timeout

    def card_capture_wait(self) -> float:
        """How long a card request waits for its capture: the card deadline, or the capture's
        whole budget when there is no deadline."""
        budget = self.capture_budget()
        return min(self.card_deadline, budget) if self.card_deadline > 0 else budget

    def card_cache_control(self) -> str:
        """``Cache-Control`` for a successfully made card."""
        if self.cache_control:
            return self.cache_control
        parts = ["public", f"max-age={self.cache_ttl}"]
        if self.cache_s_maxage is not None:
            parts.append(f"s-maxage={self.cache_s_maxage}")
        if self.cache_stale_while_revalidate:
            parts.append(f"stale-while-revalidate={self.cache_stale_while_revalidate}")
        if self.cache_stale_if_error:
            parts.append(f"stale-if-error={self.cache_stale_if_error}")
        return ", ".join(parts)

    def fallback_cache_control(self) -> str:
        """``Cache-Control`` for a fallback card: short, so crawlers come back for the real one."""
        return f"public, max-age={self.fallback_ttl}"


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return ENV_PREFIX + field.upper()


def load_settings() -> Settings:
    """Read the settings, turning a bad value into one :class:`ConfigError` sentence that names
    the variable and says what is wrong (secrets are not echoed)."""
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = str(err["loc"][0]) if err.get("loc") else ""
        message = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        message = message.replace("input should be", "must be", 1)
        name = env_name(field) if field else "a setting"
        secret = field in Settings.model_fields and Settings.model_fields[field].annotation in (
            SecretStr,
            SecretStr | None,
        )
        given = "" if secret or "input" not in err else f" (got {str(err['input'])[:60]!r})"
        raise ConfigError(f"{name}: {message}{given}") from None


def unknown_variables(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> list[str]:
    """One warning per ``OGSHOT_*`` variable (in the environment or the ``.env`` file) that is no
    setting, with the closest setting's name: a mistyped name is otherwise silently ignored and
    its default used."""
    environ = os.environ if environ is None else environ
    sources = [(name, "") for name in environ]
    if env_file is not None and env_file.is_file():
        from dotenv import dotenv_values

        sources += [(name, f" (in {env_file})") for name in dotenv_values(env_file)]
    known = {env_name(field) for field in Settings.model_fields}
    warnings = []
    for name, where in sorted(sources):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known or upper in NOT_SETTINGS:
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        warnings.append(f"{name}{where} is not an ogshot setting and is ignored{hint}")
    return warnings
