"""Who may call what: the API token on the capture endpoints, and the start-up warning.

Card URLs are guarded by their signature (:mod:`ogshot.signing`, checked in the route); the
capture endpoints, called server to server, by an API token derived from the same keys.
"""

from __future__ import annotations

import logging

from fastapi import Request

from .settings import Settings
from .signing import Signer, check_api_token

log = logging.getLogger("ogshot")


def bearer_token(request: Request) -> str | None:
    """The token from ``Authorization: Bearer …`` (scheme case-insensitive) or ``X-API-Key``."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key else None


async def require_api_token(request: Request) -> None:
    """FastAPI dependency of the capture endpoints: a valid API token when signing is on."""
    signer: Signer = request.app.state.signer
    check_api_token(signer, bearer_token(request))


def warn_if_open(settings: Settings, signer: Signer) -> bool:
    """Say loudly, once at start-up, when anyone may spend the capture budget. True if it did."""
    if settings.capture_mode == "none" or signer.enabled:
        return False
    log.warning(
        "SECURITY: capture is on (%s) and OGSHOT_SIGNING_KEYS is not set: anyone who can reach "
        "this server can make it capture any public page and spend the capture budget. Set "
        "OGSHOT_SIGNING_KEYS and hand out URLs from 'ogshot sign'.",
        settings.capture_mode,
    )
    return True
