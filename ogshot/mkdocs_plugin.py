"""The MkDocs plugin ``ogshot``: a card for every page, and its ``<meta>`` tags in the page.

``plugins: [ogshot]`` in ``mkdocs.yml`` is all it takes. For each page it takes the title and
the description (``description`` in the front matter, else the site's), with the front matter's
``ogshot:`` table overriding any card field (``template``, ``theme``, ``accent``...) and
``ogshot: false`` leaving the page without a card. It writes the tags into the page's ``<head>``
as the page is written (so it works with any theme), then makes the cards at the end of the build,
several at once, through the same :class:`~ogshot.service.CardService` and manifest as
``ogshot batch``: into a cache folder kept between builds (only cards whose fingerprint changed are
rendered), then copied into the site. Nothing is fetched from the network.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from mkdocs.config import config_options as opt
from mkdocs.config.base import Config
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import BasePlugin
from mkdocs.structure.pages import Page

from .build import SUFFIXES, Job, Summary, build
from .card import parse_card
from .errors import OgshotError
from .frontmatter import card_params, is_excluded
from .meta import fingerprint, image_tags, to_html
from .service import CardService, build_threads
from .settings import Settings

log = logging.getLogger("mkdocs.plugins.ogshot")

_HEAD_END = re.compile(r"</head\s*>", re.IGNORECASE)


class OgshotConfig(Config):  # type: ignore[no-untyped-call]
    enabled = opt.Type(bool, default=True)
    #: Folder of the cards inside the site.
    cards_dir = opt.Type(str, default="assets/ogshot")
    #: Folder the cards and the manifest are kept in between builds (relative to mkdocs.yml).
    cache_dir = opt.Type(str, default=".cache/ogshot")
    #: Cards made at once; 0 = one per core, at most 4.
    jobs = opt.Type(int, default=0)
    site = opt.Optional(opt.Type(str))
    template = opt.Type(str, default="default")
    theme = opt.Choice(("auto", "light", "dark"), default="auto")
    accent = opt.Optional(opt.Type(str))
    format = opt.Choice(("png", "jpeg"), default="png")


class OgshotPlugin(BasePlugin[OgshotConfig]):  # type: ignore[no-untyped-call]
    """See the module docstring; options in the README ("MkDocs")."""

    def __init__(self) -> None:
        self._service: CardService | None = None
        self._jobs: list[Job] = []
        self._base = ""
        self._defaults: dict[str, str] = {}
        self._failed: list[tuple[str, str]] = []

    def on_config(self, config: MkDocsConfig) -> MkDocsConfig | None:
        if not self.config.enabled:
            return None
        # A build makes every card of its own site: no per-client budget applies to it. And
        # nobody is kept waiting by a build: it waits for every capture rather than write a card
        # without it (the card deadline is for crawlers).
        update: dict[str, object] = {"rate_limit": "off", "card_deadline": 0.0}
        settings = Settings()
        update["render_threads"] = self.config.jobs or settings.render_threads or build_threads()
        settings = settings.model_copy(update=update)
        self._service = CardService(settings)
        self._jobs, self._failed = [], []
        site_url = config.site_url or ""
        if not site_url:
            log.warning(
                "ogshot: 'site_url' is not set: og:image needs an absolute URL, so the tags "
                "carry root-relative ones until it is"
            )
        self._base = site_url.rstrip("/") + "/" + quote(self.config.cards_dir.strip("/"))
        defaults = {
            "site": self.config.site if self.config.site is not None else config.site_name,
            "template": self.config.template,
            "theme": self.config.theme,
            "format": self.config.format,
        }
        if self.config.accent:
            defaults["accent"] = self.config.accent
        self._defaults = {k: v for k, v in defaults.items() if v}
        return None

    def on_post_page(self, output: str, /, *, page: Page, config: MkDocsConfig) -> str | None:
        if self._service is None or is_excluded(page.meta):
            return None
        src = page.file.src_uri
        try:
            params = card_params(page.meta, heading=page.title or "")
            if not params.get("subtitle") and config.site_description:
                params["subtitle"] = config.site_description
            if not params.get("title"):
                raise OgshotError("the page has no title")
            card = parse_card({**self._defaults, **params})
            v = fingerprint(self._service, card)
        except OgshotError as exc:
            self._failed.append((src, exc.detail))
            return None
        name = str(PurePosixPath(src).with_suffix(""))
        self._jobs.append(Job(src, name, params))
        url = f"{self._base}/{quote(name + SUFFIXES[card.format])}?v={v}"
        tags = to_html(image_tags(url, card.model_copy(update={"v": v})))
        m = _HEAD_END.search(output)
        if m is None:
            return tags + output
        return output[: m.start()] + tags + output[m.start() :]

    def on_post_build(self, *, config: MkDocsConfig) -> None:
        service = self._service
        if service is None:
            return
        self._service = None
        for src, detail in self._failed:
            log.warning("ogshot: %s: %s", src, detail)
        cache = Path(config.config_file_path or ".").parent / self.config.cache_dir
        jobs = self._jobs
        concurrency = service.settings.render_threads

        async def run() -> Summary:
            try:
                # Pages that were not rebuilt (mkdocs serve --dirty) are not in this build:
                # their cards stay in the cache folder.
                return await build(
                    service,
                    jobs,
                    cache,
                    concurrency=concurrency,
                    defaults=self._defaults,
                    prune=False,
                )
            finally:
                await service.aclose()

        summary = asyncio.run(run())
        site_cards = Path(config.site_dir) / self.config.cards_dir
        for outcome in summary.outcomes:
            if outcome.status == "failed":
                log.warning("ogshot: %s: %s", outcome.source, outcome.detail)
            if outcome.out and (cache / outcome.out).is_file():
                _copy_if_changed(cache / outcome.out, site_cards / outcome.out)
        log.info("ogshot: cards: %s", summary.line())


    def on_build_error(self, *, error: Exception) -> None:
        """A build that fails after on_config never reaches on_post_build: let go of the
        service's threads here (mkdocs serve builds again and again in one process)."""
        service, self._service = self._service, None
        if service is not None:
            asyncio.run(service.aclose())


def _copy_if_changed(src: Path, dst: Path) -> None:
    try:
        if dst.stat().st_size == src.stat().st_size and dst.read_bytes() == src.read_bytes():
            return
    except OSError:
        pass
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
