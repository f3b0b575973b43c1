"""Logs: one line per request, plain text or JSON, never a secret.

Each request gets an id (its ``X-Request-Id`` when that is sane, else a new one; echoed in the
response) and a small context that the code making its card fills in as it goes: the card key,
the cache outcome, the time spent in each span. Every log line written while the request is
served carries the id, and the request's own line (logger ``ogshot.access``) carries the rest.

What is never written: query strings (they hold ``sig``, and titles people did not mean to log),
the upstream key, signing secrets, the Redis URL's password. The path is logged without its query,
and a filter on the handler masks every configured secret and any ``sig=``/``key=`` pair that some
library's message might still contain.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import suppress
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import SecretStr

if TYPE_CHECKING:
    from .settings import Settings

#: The request being served, as a dict the code below the middleware may add to.
_REQUEST: ContextVar[dict[str, Any] | None] = ContextVar("ogshot_request", default=None)

_SANE_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")
#: Query-string pairs that carry credentials, wherever a URL ends up in a message.
_CREDENTIAL_PAIR = re.compile(
    r"((?:^|[?&;\s\"'])(?:sig|signature|key|api_key|apikey|access_key|token)=)[^&\s\"']*",
    re.IGNORECASE,
)
MASK = "***"


def request_id(header: str | None) -> str:
    """The client's id when it is short and plain (it is echoed and logged), else a new one."""
    if header is not None and _SANE_ID.fullmatch(header):
        return header
    return os.urandom(16).hex()  # what secrets.token_hex(16) returns, without its three calls


def begin(rid: str) -> dict[str, Any]:
    """Start the context of one request (in the task that serves it)."""
    ctx: dict[str, Any] = {"request_id": rid}
    _REQUEST.set(ctx)
    return ctx


def current() -> dict[str, Any] | None:
    """The current request's log fields (what :func:`note` adds to), or None outside one."""
    return _REQUEST.get()


def note(**fields: Any) -> None:
    """Add fields to the current request's log line; nothing outside a request."""
    ctx = _REQUEST.get()
    if ctx is not None:
        ctx.update(fields)


class RequestId(logging.Filter):
    """Gives every record written during a request that request's id."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _REQUEST.get()
        if ctx is not None and not hasattr(record, "request_id"):
            record.request_id = ctx["request_id"]
        return True


class Redact(logging.Filter):
    """Masks configured secrets and credential query pairs in the final message."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        super().__init__()
        # Short values would mask ordinary words; configured secrets are long in practice.
        self.secrets = sorted({s for s in secrets or () if len(s) >= 4}, key=len, reverse=True)

    def clean(self, text: str) -> str:
        for value in self.secrets:
            text = text.replace(value, MASK)
        return _CREDENTIAL_PAIR.sub(lambda m: m.group(1) + MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        cleaned = self.clean(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_text:
            record.exc_text = self.clean(record.exc_text)
        return True


#: Attributes every LogRecord has; anything else on a record was passed as ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with terminal colours
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and every extra field."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                out[name] = value
        if record.exc_text or record.exc_info:
            out["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Plain lines in uvicorn's own shape (``INFO:     message``), with the request id when
    there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname + ':':<9} {record.getMessage()}"
        rid = getattr(record, "request_id", None)
        if rid and record.name != "ogshot.access":  # the access line says rid= itself
            line = f"{line} [{rid}]"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        return line


class LaterLines:
    """Log lines written a moment after they are made, in order, a few at a time.

    A request's access line is made once its answer is written. But the client that answer
    wakes (or the proxy in front, on the same host) is often put on the very core the server
    runs on, and runs only when the server's thread next sleeps: a line written right after
    the answer delays it as much as one written before, about a tenth of a millisecond with the
    caches cold after a render. So a line's fields are kept, with the time they were taken, and
    the line is made (``render``) and written ``delay`` seconds later with any others kept
    meanwhile, by which time the event loop has slept. Outside an event loop, or with no delay,
    a line is written at once; at most ``MAX_KEPT`` lines wait; :meth:`flush` writes them all
    now (at shutdown). Used from the event loop's thread only.
    """

    #: Lines kept at most before they are all written at once.
    MAX_KEPT = 256

    def __init__(
        self,
        logger: logging.Logger,
        render: Callable[[dict[str, Any]], tuple[str, dict[str, Any]]],
        delay: float = 0.002,
    ) -> None:
        self.logger = logger
        self.render = render
        self.delay = delay
        self._kept: list[tuple[int, dict[str, Any], float]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, level: int, fields: dict[str, Any]) -> None:
        """Write the line of these fields shortly (a copy is kept: the caller's dict may change
        meanwhile). The caller has checked the logger is enabled for ``level``."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or self.delay <= 0:
            self.flush()
            self._write(level, dict(fields), None)
            return
        if self._loop is not loop:
            self.flush()  # lines kept for another loop (which may be gone) go first
        self._kept.append((level, dict(fields), time.time()))
        if len(self._kept) >= self.MAX_KEPT:
            self.flush()
        elif self._timer is None:
            self._loop = loop
            self._timer = loop.call_later(self.delay, self._due)

    def _due(self) -> None:
        self._timer = None  # this very timer: nothing to cancel
        self.flush()

    def flush(self) -> None:
        """Write every kept line now, each with the time its fields were taken."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop = None
        kept, self._kept = self._kept, []
        for level, fields, taken in kept:
            self._write(level, fields, taken)

    def _write(self, level: int, fields: dict[str, Any], taken: float | None) -> None:
        logger = self.logger
        try:
            message, extra = self.render(fields)
            record = logger.makeRecord(
                logger.name, level, __file__, 0, message, (), None, extra=extra
            )
            if taken is not None:
                record.created = taken
                record.msecs = (taken - int(taken)) * 1000
                record.relativeCreated = (taken - logging._startTime) * 1000  # type: ignore[attr-defined]
            logger.handle(record)
        except Exception:
            # A filter or handler of the user's that fails on one line costs that line alone,
            # reported as logging reports its own failures, never the lines after it.
            rid = fields.get("request_id")
            sys.stderr.write(f"ogshot: the access line of request {rid} could not be written\n")
            traceback.print_exc(file=sys.stderr)


def access_message(ctx: dict[str, Any]) -> str:
    """The text form of a request's line; the JSON form has the same fields as keys."""
    parts = [f"{ctx.get('method')} {ctx.get('path')} {ctx.get('status')}"]
    parts.append(f"{ctx.get('duration_ms')}ms")
    for name in ("cache", "card_key"):
        if ctx.get(name):
            parts.append(f"{name}={ctx[name]}")
    spans = [f"{k}={v}" for k, v in ctx.items() if k.endswith("_ms") and k != "duration_ms"]
    parts.extend(spans)
    parts.append(f"rid={ctx['request_id']}")
    return " ".join(parts)


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret, and the parts of it that could appear alone in a message: each
    ``kid:secret`` pair's secret, a URL's password."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if not isinstance(value, SecretStr) or not value.get_secret_value():
            continue
        raw = value.get_secret_value()
        found.append(raw)
        for part in raw.split(","):
            found.extend([part.strip(), part.strip().rpartition(":")[2]])
        with suppress(ValueError):
            if password := urlsplit(raw).password:
                found.append(password)
    return [s for s in found if s]


def log_config(fmt: str, level: str, secrets: list[str]) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``ogshot serve`` (also applied in every worker).

    Uvicorn's own access log is off (it would print query strings); ``ogshot.access`` replaces it.
    """
    formatter = "json" if fmt == "json" else "text"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "ogshot.logs.RequestId"},
            "redact": {"()": "ogshot.logs.Redact", "secrets": secrets},
        },
        "formatters": {
            "json": {"()": "ogshot.logs.JsonFormatter"},
            "text": {"()": "ogshot.logs.TextFormatter"},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": formatter,
                "filters": ["request_id", "redact"],
            }
        },
        "loggers": {
            "ogshot": {"handlers": ["default"], "level": _level(level), "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": _level(level), "propagate": False},
            "uvicorn.error": {"level": _level(level)},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
        "root": {"handlers": ["default"], "level": "WARNING"},
    }


def _level(name: str) -> str:
    # uvicorn's "trace" is below debug; the standard library knows no such level.
    return "DEBUG" if name.lower() == "trace" else name.upper()
