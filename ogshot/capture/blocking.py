"""Cleaner captures: ads and cookie banners left out (``OGSHOT_CHROMIUM_BLOCK``).

The matching is adblock-rust's (the ``adblock`` package): network rules decide which requests a
page may make, cosmetic rules which elements are hidden before the screenshot. The rules are
Adblock Plus syntax, from the list shipped in ``ogshot/filters/`` (with its licence).

This is about looks, not safety: the egress guard is what keeps pages off private networks,
whatever these rules say.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILTERS_DIR = Path(__file__).resolve().parent.parent / "filters"

#: Collected from the page in an isolated world, capped: classes and ids for generic rules.
COLLECT_SCRIPT = """(() => {
  const classes = new Set(), ids = new Set();
  for (const el of document.querySelectorAll("[class],[id]")) {
    if (classes.size >= 4000 || ids.size >= 4000) break;
    if (el.id) ids.add(String(el.id).slice(0, 200));
    for (const c of el.classList) classes.add(String(c).slice(0, 200));
  }
  return {classes: [...classes], ids: [...ids]};
})()"""


def hide_script(css: str) -> str:
    """A script that adds one style sheet hiding what the rules name (``css`` is JSON-quoted)."""
    return (
        "(() => { const s = document.createElement('style'); s.textContent = "
        + css
        + "; (document.head || document.documentElement).appendChild(s); return true; })()"
    )


@dataclass
class Blocked:
    """What blocking did in one capture."""

    requests: int = 0
    selectors: int = 0


class Blocker:
    """A filter engine over the vendored lists (or lists given)."""

    def __init__(self, lists: list[Path] | None = None) -> None:
        import adblock

        filters = adblock.FilterSet()
        for path in lists or sorted(FILTERS_DIR.glob("*.txt")):
            filters.add_filter_list(path.read_text(encoding="utf-8"))
        self._engine: Any = adblock.Engine(filters, optimize=True)

    def blocks(self, url: str, source_url: str, resource_type: str) -> bool:
        """Whether a request for ``url`` made by the page at ``source_url`` is left out."""
        if resource_type == "document" and url == source_url:
            return False  # never the page itself
        kind = _REQUEST_TYPES.get(resource_type, "other")
        try:
            result = self._engine.check_network_urls(url, source_url, kind)
        except Exception:  # a URL the engine cannot parse is not an ad
            return False
        return bool(result.matched) and not result.exception

    def selectors(self, url: str, classes: list[str], ids: list[str]) -> list[str]:
        """Selectors of the elements to hide on the page at ``url``."""
        resources = self._engine.url_cosmetic_resources(url)
        found = set(resources.hide_selectors)
        if not resources.generichide:
            exceptions = set(resources.exceptions)
            found.update(self._engine.hidden_class_id_selectors(classes, ids, exceptions))
        return sorted(found)


def hiding_css(selectors: list[str]) -> str:
    """One rule per selector (a selector the browser cannot parse then spoils only itself)."""
    return "\n".join(f"{sel} {{ display: none !important; }}" for sel in selectors)


# Playwright's resource types → the request types adblock-rust knows.
_REQUEST_TYPES = {
    "document": "document",
    "stylesheet": "stylesheet",
    "image": "image",
    "media": "media",
    "font": "font",
    "script": "script",
    "texttrack": "other",
    "xhr": "xmlhttprequest",
    "fetch": "xmlhttprequest",
    "eventsource": "other",
    "websocket": "websocket",
    "manifest": "other",
    "other": "other",
}
