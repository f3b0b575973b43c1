"""The command line: ``ogshot serve``, ``render``, ``sign``, ``api-token``, ``templates``.

The CLI walks the same road as the HTTP API (``service.CardService``: cache, capture with the URL
policy, render) without HTTP. Every error, whichever command raises it (usage, settings, files,
ogshot's own errors), becomes one line on stderr and exit status 1; never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import logging.config
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .card import CARD_FIELDS, MAX_QUERY_BYTES, Card, parse_card
from .errors import InvalidParameter, OgshotError
from .settings import Settings, load_settings, unknown_variables


class UsageError(Exception):
    """A command line that argparse refuses; reported like every other error."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors as one line and exit status 1 (``main`` prints them)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}")
        return int(text)

    return parse


def _card_options(parser: argparse.ArgumentParser) -> None:
    for name in CARD_FIELDS:
        parser.add_argument(f"--{name}", default=None, help=f"card parameter '{name}'")


#: Room for the request line's other parts and the headers, beside the query string.
HEADERS_ROOM = 16 * 1024


def serve_protocol(settings: Settings) -> Any:
    """The connection protocol ``ogshot serve`` hands uvicorn (``connection.py``), with the
    settings' deadlines and the request head bound. A partial of a module-level class: it
    pickles, so every worker process gets them."""
    from functools import partial

    from .connection import DeadlineProtocol

    return partial(
        DeadlineProtocol,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        # A request head must hold the longest valid card's query (414 beyond it, from the app)
        # plus ordinary headers.
        max_head=MAX_QUERY_BYTES + HEADERS_ROOM,
    )


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from .logs import log_config, secret_values
    from .startup import preflight

    # The same logging as the workers' (uvicorn applies it again in each), from the first line.
    logging_config = log_config(settings.log_format, args.log_level, secret_values(settings))
    logging.config.dictConfig(logging_config)
    log = logging.getLogger("ogshot.startup")
    for line in preflight(settings):
        log.info("%s", line)
    protocol = serve_protocol(settings)
    own_dir = None
    metrics_dir = settings.metrics_dir
    if args.workers > 1 and not metrics_dir:
        own_dir = metrics_dir = tempfile.mkdtemp(prefix="ogshot-metrics-")
    if metrics_dir:
        # prometheus_client picks its storage when it is first imported, from this variable: set
        # it (and the folder, for the settings of each worker) before anything imports it.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ["OGSHOT_METRICS_DIR"] = metrics_dir
    from . import metrics

    if metrics_dir:
        metrics.prepare_dir(Path(metrics_dir))
    if settings.metrics_port is not None:
        from prometheus_client import start_http_server

        # In this process, which (with several workers) only supervises: it reads every
        # worker's figures from the shared folder.
        start_http_server(
            settings.metrics_port, addr=args.host, registry=metrics.registry(metrics_dir)
        )
    try:
        uvicorn.run(
            "ogshot.api:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            log_config=logging_config,
            access_log=False,  # ogshot.access logs each request, without its query string
            # The client's address and scheme come from proxy headers by ogshot's own rule
            # (OGSHOT_TRUSTED_PROXIES, ogshot/clients.py) and no other.
            proxy_headers=False,
            timeout_graceful_shutdown=settings.shutdown_timeout,
            http=protocol,
            ws="none",  # no WebSocket routes: an upgrade request is answered as plain HTTP
        )
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
    return 0


#: Formats by file extension, for ``render -o``.
_EXTENSIONS = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "webp": "webp"}


def _render_format(out: str, given: str | None) -> str | None:
    """The card's format: ``--format`` and the file's extension must agree when both are given."""
    suffix = Path(out).suffix.lower().lstrip(".") if out != "-" else ""
    implied = _EXTENSIONS.get(suffix)
    if given is None:
        if suffix and implied is None:
            raise InvalidParameter(
                f"cannot tell the format from '{out}': name it .png, .jpg or .webp, "
                "or give --format"
            )
        return implied
    if implied is not None and implied != given.strip().lower():
        raise InvalidParameter(
            f"--format {given} does not match the file name '{out}' ({implied}): "
            "change one of them"
        )
    return given


def _render(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    params = {name: getattr(args, name) for name in CARD_FIELDS}
    params["format"] = _render_format(args.out, args.format)
    card = parse_card(params)
    out = Path(args.out)
    if args.out != "-" and not out.parent.is_dir():
        raise InvalidParameter(f"cannot write {out}: the folder {out.parent} does not exist")
    body, fallback = asyncio.run(_make_card(settings, card))
    if fallback is not None:
        print(f"ogshot: warning: card made without its capture ({fallback})", file=sys.stderr)
    if args.out == "-":
        sys.stdout.buffer.write(body)
    else:
        out.write_bytes(body)
        print(f"{args.out}: {len(body)} bytes", file=sys.stderr)
    return 0


async def _make_card(settings: Settings, card: Card) -> tuple[bytes, str | None]:
    """One card through the service, as the API makes it: cache, capture (policy included)."""
    from .service import CardService

    # Nobody but the user waits here: wait for the capture (the card deadline is for crawlers).
    service = CardService.from_settings(settings.model_copy(update={"card_deadline": 0.0}))
    try:
        result = await service.card(card)
    finally:
        await service.aclose()
    return result.entry.body, result.fallback


#: Where ``ogshot sign`` points its URLs when ``OGSHOT_PUBLIC_URL`` is not set.
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


def sign_url(
    settings: Settings, params: Mapping[str, str | None], *, exp: int | None = None
) -> str:
    """The absolute, signed /og.png URL of these card parameters: what ``ogshot sign`` prints."""
    from .signing import Signer, card_url

    card = parse_card(params)
    signer = Signer.from_settings(settings)
    return card_url(settings.public_url or DEFAULT_PUBLIC_URL, signer.signed_params(card, exp=exp))


def _expiry(args: argparse.Namespace, now: float) -> int | None:
    seconds: int | None = args.exp
    if seconds is not None:
        if seconds <= 0:
            raise InvalidParameter("--exp must be a positive number of seconds")
        return int(now) + seconds
    if args.expires_at is not None:
        text = args.expires_at.strip()
        if text.isdigit():
            return int(text)
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidParameter(
                "--expires-at must be Unix seconds or an ISO 8601 time (2030-01-31T12:00:00Z)"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return int(when.timestamp())
    return None


def _sign(args: argparse.Namespace, settings: Settings) -> int:
    params = {name: getattr(args, name) for name in CARD_FIELDS}
    exp = _expiry(args, time.time())
    if not settings.signing_keys.get_secret_value():
        print(
            "ogshot: OGSHOT_SIGNING_KEYS is not set: this URL is unsigned, and a server with "
            "keys will refuse it",
            file=sys.stderr,
        )
    print(sign_url(settings, params, exp=exp))
    return 0


def _batch(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from .batchcli import run_batch

    return asyncio.run(run_batch(args, settings))


def _api_token(args: argparse.Namespace, settings: Settings) -> int:
    from .signing import Signer, api_token

    token = api_token(Signer.from_settings(settings))
    if not token:
        raise InvalidParameter("OGSHOT_SIGNING_KEYS is not set: there is no API token to print")
    print(token)
    return 0


def _templates(args: argparse.Namespace, settings: Settings) -> int:
    from .service import load_layouts

    for layout in load_layouts(settings):
        print(f"{layout.name:<16} v{layout.version}  {layout.description}")
    return 0


def _contact_sheet(args: argparse.Namespace, settings: Settings) -> int:
    from .contact import contact_sheet
    from .fonts import FontSet
    from .service import load_layouts

    fonts = FontSet.from_settings(settings)
    sheet = contact_sheet(load_layouts(settings), fonts, thumb_width=args.width)
    out = Path(args.out)
    if out.suffix.lower() in (".jpg", ".jpeg"):
        sheet.save(out, quality=82, optimize=True, progressive=True)
    else:
        sheet.save(out, optimize=True)
    print(f"{out}: {sheet.width}x{sheet.height}")
    return 0


def _fonts(args: argparse.Namespace, settings: Settings) -> int:
    from .fonts import FontSet

    fonts = FontSet.from_settings(settings)
    print("search path:")
    for folder in fonts.dirs:
        print(f"  {folder}{'' if folder.is_dir() else '  (missing)'}")
    print("families:")
    for face in fonts.faces:
        print(f"  {face.name:<20} {face.files['regular']}")
    print("coverage by script (characters with a glyph / characters assigned):")
    unset = []
    for script, covered, total, families in fonts.coverage_by_script():
        if not covered:
            unset.append(script)
            continue
        if covered < total or args.all:
            share = f"{covered}/{total}"
        else:
            share = f"{total}"
        print(f"  {script:<24} {share:>13} {100 * covered / total:5.1f}%  {', '.join(families)}")
    print(f"no font for {len(unset)} scripts: {', '.join(unset)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ogshot", description="Social preview images.")
    parser.add_argument("--version", action="version", version=f"ogshot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_whole_number(1, 65535), default=8000)
    serve.add_argument("--workers", type=_whole_number(1, 256), default=1)
    serve.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug", "trace"),
    )
    serve.set_defaults(func=_serve)

    render = sub.add_parser("render", help="render one card to a file")
    _card_options(render)
    render.add_argument("-o", "--out", default="card.png", help="output file, or - for stdout")
    render.set_defaults(func=_render)

    sign = sub.add_parser(
        "sign", help="print the signed /og.png URL of a card (see OGSHOT_SIGNING_KEYS)"
    )
    _card_options(sign)
    expiry = sign.add_mutually_exclusive_group()
    expiry.add_argument("--exp", type=int, default=None, metavar="SECONDS", help="valid this long")
    expiry.add_argument(
        "--expires-at", default=None, metavar="WHEN", help="valid until: Unix seconds or ISO 8601"
    )
    sign.set_defaults(func=_sign)

    batch = sub.add_parser(
        "batch",
        help="make the cards of a folder of pages, or of a JSON, JSON lines or CSV file",
        description="Make every card of SOURCE into --out, skipping those already made "
        "(a manifest in --out remembers them).",
    )
    batch.add_argument("source", help="a folder of Markdown/HTML pages, or a .json/.jsonl/.csv")
    batch.add_argument("--out", required=True, help="folder the cards go to")
    batch.add_argument("--jobs", "-j", type=int, default=0, help="cards made at once")
    batch.add_argument("--manifest", default=None, help="default: OUT/.ogshot-manifest.json")
    batch.add_argument("--meta", default=None, help="write each page's meta tags to this JSON")
    batch.add_argument("--base-url", default=None, help="URL where OUT is served (for --meta)")
    batch.add_argument("--no-prune", action="store_true", help="keep cards of deleted pages")
    batch.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    for name in ("site", "template", "theme", "accent", "format"):
        batch.add_argument(f"--{name}", default=None, help=f"default '{name}' of every card")
    batch.set_defaults(func=_batch)

    token = sub.add_parser(
        "api-token", help="print the API token for /screenshot and /screenshots/batch"
    )
    token.set_defaults(func=_api_token)

    templates = sub.add_parser("templates", help="list the layouts")
    templates.set_defaults(func=_templates)

    sheet = sub.add_parser(
        "contact-sheet", help="render every layout with sample titles in many scripts"
    )
    sheet.add_argument("-o", "--out", default="contact-sheet.png", help="PNG or JPEG file")
    sheet.add_argument(
        "--width", type=_whole_number(16, 1200), default=400, help="width of each card, in pixels"
    )
    sheet.set_defaults(func=_contact_sheet)

    fonts = sub.add_parser("fonts", help="show the font search path and coverage by script")
    fonts.add_argument("--all", action="store_true", help="show counts for complete scripts too")
    fonts.set_defaults(func=_fonts)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        for warning in unknown_variables():
            print(f"ogshot: warning: {warning}", file=sys.stderr)
        settings = load_settings()
        return int(args.func(args, settings))
    except OgshotError as exc:
        message = f"ogshot: {exc.detail}"
    except UsageError as exc:
        message = str(exc)  # already "ogshot <command>: ..."
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        message = f"ogshot: cannot use{where}: {exc.strerror or exc}"
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: still one line, with what a report needs
        message = f"ogshot: unexpected error: {type(exc).__name__}: {exc}"
    print(" ".join(message.split()), file=sys.stderr)
    return 1
