"""Signed card URLs: who may make this server render.

With ``OGSHOT_SIGNING_KEYS`` set, a card URL carries ``sig=<kid>.<mac>``: ``mac`` is HMAC-SHA256,
URL-safe base64 without padding, under the key named ``kid``, over::

    ogshot-card-v1 \\n <kid> \\n <exp or empty> \\n <the card's canonical JSON>

The canonical JSON is what :meth:`Card.canonical` gives (every field normalised, defaults filled
in, the same form the cache key hashes), so a URL that a CMS, a proxy or a browser re-encodes —
percent escapes in either case, ``+`` for a space, parameters in another order, a title in NFD,
a default spelled out — still verifies, while any change to what the card shows does not.
``exp`` (Unix seconds) is inside what is signed; past it, the URL is refused.

Keys are ``kid:secret`` pairs, comma-separated. The first signs; all verify, so a new key can be
put first while URLs signed with the old one keep working until it is removed.

The capture endpoints (``/screenshot``, ``/screenshots/batch``) are called server to server; with
keys set they need an API token, ``<kid>.<HMAC(secret, "ogshot-api-v1")>`` (``ogshot api-token``
prints it), sent as ``Authorization: Bearer <token>`` or ``X-API-Key: <token>``. A token gives no
way to sign card URLs, so it can be handed to a service that only needs captures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from .card import Card
from .errors import (
    ApiKeyRequired,
    BadApiKey,
    BadSignature,
    ConfigError,
    SignatureExpired,
    SignatureRequired,
)
from .settings import Settings

#: The label that starts every signed message; a new scheme gets a new label.
SCHEME = b"ogshot-card-v1"
#: What an API token is the MAC of (see :meth:`Signer.api_token`).
API_SCHEME = b"ogshot-api-v1"
#: Shortest secret accepted: 16 characters (128 bits when random).
MIN_SECRET = 16
_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
#: Length of an HMAC-SHA256 in URL-safe base64 without padding.
MAC_LENGTH = 43
#: ``exp``: at most 12 ASCII digits (year 33658); anything else is refused unread.
_EXP = re.compile(r"^[0-9]{1,12}$")


def parse_keys(text: str) -> list[tuple[str, bytes]]:
    """``kid:secret,kid:secret`` → ``[(kid, secret bytes), ...]``, refusing anything unclear."""
    keys: list[tuple[str, bytes]] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        kid, sep, secret = item.partition(":")
        kid = kid.strip()
        if not sep or not _KID.match(kid):
            raise ConfigError(
                "OGSHOT_SIGNING_KEYS must be comma-separated kid:secret pairs, each kid 1-32 "
                "letters, digits, '-' or '_'"
            )
        if len(secret) < MIN_SECRET:
            raise ConfigError(
                f"OGSHOT_SIGNING_KEYS: the secret of key '{kid}' is shorter than {MIN_SECRET} "
                "characters"
            )
        if any(k == kid for k, _ in keys):
            raise ConfigError(f"OGSHOT_SIGNING_KEYS names key '{kid}' twice")
        keys.append((kid, secret.encode("utf-8")))
    return keys


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Signer:
    """Signs and verifies card URLs; disabled (signs nothing, lets everything through) without
    keys."""

    keys: tuple[tuple[str, bytes], ...] = ()
    #: Let cards without a ``url`` (no capture, so no upstream credits) through unsigned.
    allow_unsigned_text: bool = False
    _by_kid: dict[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_kid", dict(self.keys))

    @classmethod
    def from_settings(cls, settings: Settings) -> Signer:
        keys = parse_keys(settings.signing_keys.get_secret_value())
        return cls(tuple(keys), allow_unsigned_text=settings.allow_unsigned_text_cards)

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def mac(self, kid: str, secret: bytes, card: Card, exp: str) -> str:
        message = b"\n".join(
            (SCHEME, kid.encode("ascii"), exp.encode("ascii"), card.canonical_json().encode())
        )
        return _b64(hmac.new(secret, message, hashlib.sha256).digest())

    def signed_params(self, card: Card, *, exp: int | None = None) -> dict[str, str]:
        """Query parameters of the card's /og.png URL: the card's non-default canonical fields,
        plus ``exp`` when given and ``sig`` when signing is on (unsigned when off)."""
        defaults = Card.model_construct().canonical()
        params = {
            name: value for name, value in card.canonical().items() if value != defaults[name]
        }
        exp_text = ""
        if exp is not None:
            if exp < 0:
                raise ValueError("exp must be a Unix time in seconds, not negative")
            exp_text = str(int(exp))
            params["exp"] = exp_text
        if self.enabled:
            kid, secret = self.keys[0]
            params["sig"] = f"{kid}.{self.mac(kid, secret, card, exp_text)}"
        return params

    def verify(self, card: Card, exp: str | None, sig: str | None, *, now: float) -> None:
        """Raise errors.Forbidden (403) unless the signature is valid (no-op when disabled).

        With ``allow_unsigned_text``, a card without a ``url`` may come without ``sig`` (a
        signature that is there must still be right).
        """
        if not self.enabled:
            return
        if not sig:
            if self.allow_unsigned_text and not card.url:
                return
            raise SignatureRequired("this server only makes cards from signed URLs ('sig')")
        kid, dot, mac = sig.partition(".")
        secret = self._by_kid.get(kid) if dot else None
        if secret is None:
            raise BadSignature("'sig' is not a signature from a key this server knows")
        exp_text = exp or ""
        if exp_text:
            if not _EXP.match(exp_text):
                raise BadSignature("'exp' must be a Unix time in whole seconds")
            exp_text = str(int(exp_text))
        expected = self.mac(kid, secret, card, exp_text)
        if not hmac.compare_digest(expected.encode("ascii"), mac.encode("utf-8", "replace")):
            raise BadSignature("'sig' does not match this card")
        if exp_text and int(exp_text) <= now:
            raise SignatureExpired("this signed URL has expired ('exp' is past)")


def _api_mac(secret: bytes, kid: str) -> str:
    return _b64(hmac.new(secret, API_SCHEME + b"\n" + kid.encode("ascii"), hashlib.sha256).digest())


def api_token(signer: Signer) -> str:
    """The API token of the signing (first) key; empty when signing is off."""
    if not signer.enabled:
        return ""
    kid, secret = signer.keys[0]
    return f"{kid}.{_api_mac(secret, kid)}"


def check_api_token(signer: Signer, token: str | None) -> None:
    """Raise Forbidden unless ``token`` is the API token of one of the keys (no-op when off)."""
    if not signer.enabled:
        return
    if not token:
        raise ApiKeyRequired(
            "this endpoint needs an API token: 'Authorization: Bearer <token>' or 'X-API-Key'"
        )
    kid, dot, mac = token.partition(".")
    secret = signer._by_kid.get(kid) if dot else None
    expected = _api_mac(secret, kid) if secret is not None else "-" * MAC_LENGTH
    ok = hmac.compare_digest(expected.encode("ascii"), mac.encode("utf-8", "replace"))
    if secret is None or not ok:
        raise BadApiKey("the API token is not one this server issued")


def card_url(base: str, params: Mapping[str, str]) -> str:
    """Absolute /og.png URL on ``base`` (e.g. OGSHOT_PUBLIC_URL) with these params."""
    query = urlencode(dict(params), quote_via=quote, safe="")
    return f"{base.rstrip('/')}/og.png" + (f"?{query}" if query else "")
