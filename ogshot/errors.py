"""The exception tree.

Every error that a client can cause, or that the outside world can cause on a client's behalf, is
one of these. Each class carries its HTTP status and a stable machine-readable code; the API turns
them into ``{"error": code, "detail": sentence}`` with ``Cache-Control: no-store``, and the CLI into
a one-line message and exit status 1::

    OgshotError (500 internal)
    ├── BadRequest (400 bad_request)
    │   └── InvalidParameter (422 invalid_parameter)
    ├── LoginRequired (401 login_required)   a page that wants the API token from a browser
    ├── Forbidden (403 forbidden)
    │   ├── SignatureRequired (403 signature_required)
    │   ├── BadSignature (403 bad_signature)
    │   ├── SignatureExpired (403 signature_expired)
    │   ├── ApiKeyRequired (403 api_key_required)
    │   └── BadApiKey (403 bad_api_key)
    ├── NotFound (404 not_found)
    │   └── UnknownTemplate (404 unknown_template)
    ├── RequestTimeout (408 request_timeout)   a client too slow to send its request
    ├── PayloadTooLarge (413 too_large)
    ├── UriTooLong (414 uri_too_long)
    ├── RateLimited (429 rate_limited)
    ├── UpstreamError (502 upstream_error)
    │   └── UpstreamTimeout (504 upstream_timeout)
    ├── Overloaded (503 overloaded)
    ├── LayoutError (500 layout_error)   a broken layout file, found at load time
    └── ConfigError (500 config_error)   a setting that cannot be used, found at start-up
"""

from __future__ import annotations


class OgshotError(Exception):
    """Base of every ogshot error."""

    status: int = 500
    code: str = "internal"
    #: Seconds a client should wait before trying again, sent as ``Retry-After``.
    retry_after: int | None = None

    def __init__(self, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if retry_after is not None:
            self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        """Headers the error's response carries besides its JSON body."""
        return {"Retry-After": str(self.retry_after)} if self.retry_after else {}


class BadRequest(OgshotError):
    status = 400
    code = "bad_request"


class InvalidParameter(BadRequest):
    status = 422
    code = "invalid_parameter"

    def __init__(self, detail: str, *, param: str | None = None) -> None:
        super().__init__(detail)
        self.param = param


class LoginRequired(OgshotError):
    """A page for people (preview, gallery) asked for without the API token, while signing is
    on: the browser is asked for it as an HTTP Basic password."""

    status = 401
    code = "login_required"

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "WWW-Authenticate": 'Basic realm="ogshot", charset="UTF-8"'}


class Forbidden(OgshotError):
    status = 403
    code = "forbidden"


class SignatureRequired(Forbidden):
    code = "signature_required"


class BadSignature(Forbidden):
    code = "bad_signature"


class SignatureExpired(Forbidden):
    code = "signature_expired"


class ApiKeyRequired(Forbidden):
    code = "api_key_required"


class BadApiKey(Forbidden):
    code = "bad_api_key"


class NotFound(OgshotError):
    status = 404
    code = "not_found"


class UnknownTemplate(NotFound):
    code = "unknown_template"


class RequestTimeout(OgshotError):
    status = 408
    code = "request_timeout"


class PayloadTooLarge(OgshotError):
    status = 413
    code = "too_large"


class UriTooLong(OgshotError):
    status = 414
    code = "uri_too_long"


class RateLimited(OgshotError):
    status = 429
    code = "rate_limited"
    retry_after = 1


class UpstreamError(OgshotError):
    status = 502
    code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class Overloaded(OgshotError):
    status = 503
    code = "overloaded"
    retry_after = 1


class LayoutError(OgshotError):
    """A layout file that does not validate; raised at load time, naming the file and field."""

    code = "layout_error"


class ConfigError(OgshotError):
    """A setting that cannot be used (a malformed signing key, say); raised at start-up."""

    code = "config_error"
