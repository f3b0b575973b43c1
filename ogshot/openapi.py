"""The OpenAPI description, made to tell the truth, and the ``/docs`` page's own assets.

FastAPI's generated description documents a 422 body that ogshot never sends, leaves out the
statuses the layers under the routes answer (413, 414, 429, 503...), and knows nothing of the
card's limits, which :class:`~ogshot.card.Card` checks after normalising. :func:`install` makes
``app.openapi()`` fix all three, for every operation, including routes added later:

- every error response is the one real body, :class:`ErrorBody`, as ``application/json``;
- every operation lists 414 (the query-length limit applies everywhere), operations with
  parameters 422, operations with a body 400, 408, 413 and 422; routes add their own with
  :func:`error_responses`;
- the card's parameters carry their real enums, patterns and length limits, and ``template``
  lists the layouts this server has.

The Swagger UI and ReDoc pages load their scripts from the app itself (the ``fastapi-offline``
package ships them), so ``/docs`` works with no network.
"""

from __future__ import annotations

import re
from typing import Any, get_args

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from .card import MAX_SITE, MAX_SUBTITLE, MAX_TITLE, MAX_V, ImageFormat, Theme
from .weburl import MAX_URL


class ErrorBody(BaseModel):
    """The one shape of every error ogshot answers (a few add fields, e.g. /readyz's checks)."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="A stable, machine-readable code", examples=["too_large"])
    detail: str = Field(description="One sentence saying what went wrong, for a human")


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 0},
    }
}

#: What each error status means here; the README's errors table says the same at length.
ERROR_DESCRIPTIONS: dict[int | str, str] = {
    400: "The request body could not be read as JSON",
    403: "Signature missing, bad or expired; API token or webhook signature missing or wrong; "
    "or a page that may not be captured",
    404: "No such layout, or no such endpoint",
    "4XX": "The upstream screenshot API refused the page; its status is passed on",
    408: "The request's headers or body did not arrive in time (the connection is closed)",
    413: "The request body is larger than its cap (the connection is closed)",
    414: "The query string is longer than 8 KiB",
    422: "A parameter or the body is invalid; `detail` names it",
    429: "Rate limited; `Retry-After` says when to come back",
    502: "The upstream screenshot API failed or sent something that is not a valid image",
    503: "Overloaded, circuit breaker open, or capture switched off; on /readyz: not ready",
    504: "The upstream screenshot API did not answer in time",
}


def error_responses(*statuses: int | str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: these error statuses, each with the real error body."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[status]}
        if status in (429, 503):
            entry["headers"] = _RETRY_AFTER
        out[status] = entry
    return out


IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg", "image/webp")


def image_content(default: str) -> dict[str, Any]:
    """The ``content`` of an image response: each media type a ``format`` can ask for."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {media: dict(binary) for media in (default, *sorted(set(IMAGE_MEDIA_TYPES) - {default}))}


#: The card's query parameters and what the description says of each. They are declared through
#: :func:`card_query` rather than on the routes' signatures: the routes read the query themselves
#: and ``Card`` validates it all at once, so FastAPI need not check each one on every request
#: (about a millisecond of a cold card's time). Their schemas come from
#: :func:`card_parameter_schemas` when the description is built.
CARD_QUERY: tuple[tuple[str, str], ...] = (
    ("title", "The headline"),
    ("subtitle", "Second line"),
    ("site", "Small label; default: url's host"),
    ("url", "Page to capture (http/https)"),
    ("template", "Layout name"),
    ("theme", "auto, light or dark"),
    ("accent", "Accent colour #rrggbb"),
    ("format", "png, jpeg or webp"),
    ("v", "Opaque cache buster"),
)
SIGNED_QUERY: tuple[tuple[str, str], ...] = (
    ("exp", "Signed URLs: expiry, Unix seconds"),
    ("sig", "Signed URLs: the signature"),
)


def card_query(
    *, signed: bool = True, descriptions: dict[str, str] | None = None
) -> dict[str, Any]:
    """``openapi_extra`` for a route that takes a card's parameters."""
    described = {**dict(CARD_QUERY), **(descriptions or {})}
    names = [name for name, _ in CARD_QUERY] + ([n for n, _ in SIGNED_QUERY] if signed else [])
    described.update({name: text for name, text in SIGNED_QUERY if name not in described})
    return {
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": described[name],
                "schema": {"type": "string"},
            }
            for name in names
        ]
    }


def card_parameter_schemas(
    templates: list[str] | None, signing: bool
) -> dict[str, dict[str, Any]]:
    """The card's query parameters as the server checks them.

    Text lengths hold for the value as sent (and again once normalised). ``template`` and
    ``accent`` may carry surrounding white space and ``template`` any letter case, as the card
    model trims and lowers them; ``exp`` and ``sig`` are ignored unless signing is on.
    """
    names = "|".join(re.escape(name) for name in sorted(templates or []))
    any_name = "[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}"
    template: dict[str, Any] = {
        "type": "string",
        "pattern": rf"^\s*(?i:{names or any_name})?\s*$",
        "description": "A layout name: " + (", ".join(sorted(templates or [])) or "see /templates"),
    }
    signed: dict[str, dict[str, Any]] = {
        "exp": {"type": "string", "description": "Signed URLs: Unix time in seconds"},
        "sig": {"type": "string", "description": "Signed URLs: `<kid>.<mac>`"},
    }
    if signing:
        signed["exp"]["pattern"] = "^[0-9]{1,12}$"
    return {
        "title": {"type": "string", "maxLength": MAX_TITLE},
        "subtitle": {"type": "string", "maxLength": MAX_SUBTITLE},
        "site": {"type": "string", "maxLength": MAX_SITE},
        "url": {
            "type": "string",
            "maxLength": MAX_URL,
            "description": "An http or https URL as a browser reads it (WHATWG), no user info",
        },
        "template": template,
        "theme": {"type": "string", "enum": list(get_args(Theme)), "default": "auto"},
        "accent": {"type": "string", "pattern": r"^\s*(#[0-9a-fA-F]{6})?\s*$"},
        "format": {"type": "string", "enum": list(get_args(ImageFormat)), "default": "png"},
        "v": {"type": "string", "maxLength": MAX_V},
        **signed,
    }


#: Operations whose query parameters are card fields.
CARD_PATHS = ("/og.png", "/meta")

#: Error statuses of operations whose modules do not declare them on the route.
EXTRA_ERRORS: dict[tuple[str, str], tuple[int | str, ...]] = {
    ("get", "/meta"): (403, 404, 429),
    ("post", "/batch"): (403, 429, 503),
    ("post", "/hooks/ghost"): (403, 404, 422),
    ("get", "/readyz"): (503,),
}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` build the corrected description (once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build(app)
        if getattr(app.state, "service", None) is not None:
            app.openapi_schema = schema  # complete (layouts known): keep it
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def build(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = ErrorBody.model_json_schema()
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    service = getattr(app.state, "service", None)
    templates = [layout.name for layout in service.layouts] if service is not None else None
    signer = getattr(app.state, "signer", None)
    card_schemas = card_parameter_schemas(templates, signing=bool(signer and signer.enabled))
    settings = getattr(app.state, "settings", None)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            for status in EXTRA_ERRORS.get((method, path), ()):
                operation.setdefault("responses", {}).setdefault(
                    str(status), {"description": ERROR_DESCRIPTIONS[status]}
                )
            _complete(operation, error_ref)
            if path in CARD_PATHS:
                _card_parameters(operation, card_schemas)
            if (method, path) == ("post", "/batch") and settings is not None:
                _batch_limits(operation, settings.batch_max)
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused not in _refs(schema.get("paths", {})):
            components.pop(unused, None)
    return schema


def _complete(operation: dict[str, Any], error_ref: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses: list[int | str] = [414]
    if operation.get("parameters"):
        statuses.append(422)
    if operation.get("requestBody"):
        statuses += [400, 408, 413, 422]
    for status in statuses:
        responses.setdefault(str(status), {"description": ERROR_DESCRIPTIONS[status]})
    for status, response in responses.items():
        if "text/html" in response.get("content", {}):
            continue  # a page for people (/preview) answers its errors as a page
        if status[0] in "45":
            response["content"] = {"application/json": {"schema": error_ref}}
            if status == "422":
                response["description"] = ERROR_DESCRIPTIONS[422]


def _batch_limits(operation: dict[str, Any], batch_max: int) -> None:
    """``/batch`` takes 1 to ``OGSHOT_BATCH_MAX`` cards (more is a 413) and no other field."""
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = body.get("schema", {})
    cards = schema.get("properties", {}).get("cards")
    if isinstance(cards, dict):
        cards.update({"minItems": 1, "maxItems": batch_max})
        # One bad card never fails the others: a non-object item is an error in its own result.
        cards["items"] = {
            "description": "An object of card parameters; anything else gets an error result"
        }
        schema["additionalProperties"] = False


def _card_parameters(operation: dict[str, Any], schemas: dict[str, dict[str, Any]]) -> None:
    # New dicts: a route's openapi_extra is shared by every app built in the process.
    operation["parameters"] = [
        {**parameter, "schema": schemas[parameter["name"]]}
        if parameter.get("in") == "query" and parameter["name"] in schemas
        else parameter
        for parameter in operation.get("parameters", [])
    ]


def _refs(node: Any, found: set[str] | None = None) -> set[str]:
    found = set() if found is None else found
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)
    return found

