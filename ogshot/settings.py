"""The one settings object.

Every setting comes from an ``OGSHOT_*`` environment variable (or an optional ``.env`` file) and is
read once, at start-up, into a frozen :class:`Settings`. Nothing else in the package reads the
environment: the object is passed down to whatever needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CaptureMode = Literal["auto", "none", "http", "chromium"]
UpstreamPreset = Literal["hermes", "screenshotone", "urlbox", "apiflash"]


class Settings(BaseSettings):
    """Service configuration; see the README's settings table for each field."""

    model_config = SettingsConfigDict(
        env_prefix="OGSHOT_",
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
    allow_private_networks: bool = False
    private_allowlist: str = ""
    allowed_hosts: str = ""

    # Signing and absolute URLs
    signing_keys: SecretStr = SecretStr("")
    public_url: str = ""

    # Caching
    cache_memory_mb: float = Field(default=256, ge=0)
    cache_dir: str = ""
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

    # Layouts and batches
    templates_dir: str = ""
    batch_max: int = Field(default=100, ge=1, le=10000)

    # Rendering
    render_threads: int = Field(default=0, ge=0, le=64)
    #: Worker processes that render cards; 0 renders in the threads (see ogshot/workers.py).
    render_processes: int = Field(default=0, ge=0, le=64)

    @field_validator("templates_dir", "cache_dir")
    @classmethod
    def _expand_path(cls, value: str) -> str:
        return str(Path(value).expanduser()) if value else ""

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
