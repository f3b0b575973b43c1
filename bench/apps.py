"""The two servers the HTTP benchmark compares: ogshot itself and a bare Starlette endpoint."""

from __future__ import annotations

import os

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ogshot.api import create_app
from ogshot.settings import Settings


def ogshot_app() -> FastAPI:
    """ogshot as served, except that only OGSHOT_* variables of the environment count."""
    return create_app(Settings(_env_file=None, capture="none"))  # type: ignore[call-arg]


def bare_app() -> Starlette:
    """Returns fixed bytes of the size of a title card: the ceiling for any image server."""
    body = os.urandom(int(os.environ.get("BENCH_BODY_BYTES", "100000")))

    async def image(request: Request) -> Response:
        return Response(body, media_type="image/png", headers={"ETag": '"bare"'})

    return Starlette(routes=[Route("/og.png", image)])
