"""The command line: ``ogshot serve``, ``ogshot render``, ``ogshot templates``.

The CLI walks the same road as the HTTP API (``service.make_card_bytes``) without HTTP. Errors
become one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .card import CARD_FIELDS, parse_card
from .errors import OgshotError
from .settings import Settings


def _card_options(parser: argparse.ArgumentParser) -> None:
    for name in CARD_FIELDS:
        parser.add_argument(f"--{name}", default=None, help=f"card parameter '{name}'")


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    uvicorn.run(
        "ogshot.api:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        proxy_headers=True,
    )
    return 0


def _render(args: argparse.Namespace, settings: Settings) -> int:
    from .fonts import FontSet
    from .service import load_layouts, make_card_bytes

    params = {name: getattr(args, name) for name in CARD_FIELDS}
    if args.out and not args.format:
        suffix = Path(args.out).suffix.lower().lstrip(".")
        params["format"] = {"jpg": "jpeg"}.get(suffix, suffix) if suffix else None
    card = parse_card(params)
    body = make_card_bytes(card, load_layouts(settings), FontSet.default())
    if args.out == "-":
        sys.stdout.buffer.write(body)
    else:
        Path(args.out).write_bytes(body)
        print(f"{args.out}: {len(body)} bytes", file=sys.stderr)
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

    sheet = contact_sheet(load_layouts(settings), FontSet.default(), thumb_width=args.width)
    out = Path(args.out)
    if out.suffix.lower() in (".jpg", ".jpeg"):
        sheet.save(out, quality=82, optimize=True, progressive=True)
    else:
        sheet.save(out, optimize=True)
    print(f"{out}: {sheet.width}x{sheet.height}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ogshot", description="Social preview images.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=_serve)

    render = sub.add_parser("render", help="render one card to a file")
    _card_options(render)
    render.add_argument("-o", "--out", default="card.png", help="output file, or - for stdout")
    render.set_defaults(func=_render)

    templates = sub.add_parser("templates", help="list the layouts")
    templates.set_defaults(func=_templates)

    sheet = sub.add_parser(
        "contact-sheet", help="render every layout with sample titles in many scripts"
    )
    sheet.add_argument("-o", "--out", default="contact-sheet.png", help="PNG or JPEG file")
    sheet.add_argument("--width", type=int, default=400, help="width of each card, in pixels")
    sheet.set_defaults(func=_contact_sheet)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        return int(args.func(args, settings))
    except OgshotError as exc:
        print(f"ogshot: {exc.detail}", file=sys.stderr)
        return 1
