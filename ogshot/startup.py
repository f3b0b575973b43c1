"""What ``ogshot serve`` checks and says before it serves.

Everything that can make the service unusable is found here, in the process the user started,
and reported as one line: a bad layout file, a capture mode that this installation cannot run.
Then one line each says how the service will run: capture, cache tiers, fonts.
"""

from __future__ import annotations

import asyncio
import unicodedata
from urllib.parse import urlsplit

from .capture import make_provider
from .fonts import FontSet
from .samples import TITLES
from .service import load_layouts
from .settings import Settings

#: Sample titles that stand for a script (the others mix scripts or test line breaking).
_SCRIPTS = ("latin", "cyrillic", "greek", "arabic", "hebrew", "devanagari", "thai", "chinese",
            "japanese", "korean", "emoji")  # fmt: skip


def capture_line(settings: Settings, provider: object = None) -> str:
    mode = settings.capture_mode
    if mode == "none":
        why = "asked for" if settings.capture == "none" else "no OGSHOT_UPSTREAM_URL or _KEY"
        return f"capture: off ({why}): cards are title cards"
    if mode == "http":
        host = urlsplit(settings.upstream_url).hostname if settings.upstream_url else None
        where = host or f"the {settings.upstream_preset} preset's endpoint"
        return f"capture: http, through {where} ({settings.upstream_preset} preset)"
    executable = getattr(provider, "executable", None)
    if mode == "chromium" and executable:
        return f"capture: chromium ({executable}), every connection through the egress guard"
    return f"capture: {mode}"


def cache_line(settings: Settings) -> str:
    tiers = []
    if settings.cache_memory_bytes > 0:
        tiers.append(f"memory {settings.cache_memory_mb:g} MB")
    if settings.cache_dir:
        tiers.append(f"disk {settings.cache_dir} ({settings.cache_dir_mb:g} MB)")
    redis_url = settings.redis_url.get_secret_value()
    if redis_url:
        parts = urlsplit(redis_url)
        tiers.append(f"redis {parts.hostname or parts.path}:{parts.port or 6379}")
    if not tiers:
        return "cache: none: every request renders its card"
    return f"cache: {', '.join(tiers)}; cards live {settings.cache_ttl} s"


def _covered(fonts: FontSet, text: str) -> bool:
    return all(
        fonts.has_glyph(ch)
        for ch in text
        if unicodedata.category(ch)[0] in "LN" or unicodedata.category(ch) == "So"
    )


def font_line(fonts: FontSet) -> str:
    samples = dict(TITLES)
    covered = [name for name in _SCRIPTS if _covered(fonts, samples[name])]
    missing = [name for name in _SCRIPTS if name not in covered]
    line = f"fonts: {len(fonts.faces)} families; scripts covered: {', '.join(covered) or 'none'}"
    if missing:
        line += f"; MISSING (drawn as boxes): {', '.join(missing)}"
    return line


def preflight(settings: Settings) -> list[str]:
    """Check what would stop the service, raising its one-line error, and describe the rest."""
    load_layouts(settings)  # a bad layout file: LayoutError naming the file and field
    provider = make_provider(settings)  # a capture mode not available here: CaptureUnavailable
    asyncio.run(provider.aclose())
    fonts = FontSet.from_settings(settings)
    return [capture_line(settings, provider), cache_line(settings), font_line(fonts)]
