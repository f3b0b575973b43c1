"""The capture endpoints' API token, captures that always need a signature, and the start-up
warning when captures are open to anyone."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ogshot.api import create_app
from ogshot.capture import make_provider
from ogshot.cli import main
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry
from ogshot.service import CardService
from ogshot.settings import Settings
from ogshot.signing import Signer, api_token, card_url

from .fake_upstream import FakeUpstream

KEYS = "k2026:" + "n" * 24 + ",k2025:" + "o" * 24


@pytest.fixture
def locked(
    capture_settings: Settings, layouts: LayoutRegistry, fonts: FontSet
) -> Iterator[tuple[TestClient, Settings]]:
    settings = capture_settings.model_copy(
        update={"signing_keys": Settings(_env_file=None, signing_keys=KEYS).signing_keys}  # type: ignore[call-arg]
    )
    service = CardService(settings, layouts=layouts, fonts=fonts, capture=make_provider(settings))
    with TestClient(create_app(settings, service=service), raise_server_exceptions=False) as c:
        yield c, settings


def token_for(keys: str) -> str:
    return api_token(Signer.from_settings(Settings(_env_file=None, signing_keys=keys)))  # type: ignore[call-arg]


PAGE = {"url": "https://example.com/page-token"}


def test_screenshot_needs_the_api_token(
    locked: tuple[TestClient, Settings], fake_upstream: FakeUpstream
) -> None:
    client, _ = locked
    r = client.get("/screenshot", params=PAGE)
    assert (r.status_code, r.json()["error"]) == (403, "api_key_required")
    assert r.headers["cache-control"] == "no-store"
    assert client.head("/screenshot", params=PAGE).status_code == 403
    assert fake_upstream.calls.get("page-token") is None  # nothing was spent
    token = token_for(KEYS)
    ok = client.get("/screenshot", params=PAGE, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200, ok.text
    also = client.get("/screenshot", params=PAGE, headers={"X-API-Key": token})
    assert also.status_code == 200
    # The token of a key that still verifies (rotation) is accepted too.
    older = token_for("k2025:" + "o" * 24)
    assert client.get("/screenshot", params=PAGE, headers={"X-API-Key": older}).status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        {"Authorization": "Bearer k2026.nope"},
        {"Authorization": "Basic Zm9vOmJhcg=="},
        {"X-API-Key": "k2027.AAAA"},
        {"X-API-Key": "no-dot-at-all"},
        {"X-API-Key": "k2026." + "A" * 43},
    ],
)
def test_bad_api_tokens_are_refused(
    locked: tuple[TestClient, Settings], header: dict[str, str]
) -> None:
    client, _ = locked
    r = client.get("/screenshot", params=PAGE, headers=header)
    assert r.status_code == 403
    assert r.json()["error"] in ("bad_api_key", "api_key_required")


def test_a_token_from_a_foreign_secret_is_refused(locked: tuple[TestClient, Settings]) -> None:
    client, _ = locked
    foreign = token_for("k2026:" + "x" * 24)
    r = client.get("/screenshot", params=PAGE, headers={"X-API-Key": foreign})
    assert (r.status_code, r.json()["error"]) == (403, "bad_api_key")


def test_batch_needs_the_api_token(
    locked: tuple[TestClient, Settings], fake_upstream: FakeUpstream
) -> None:
    client, _ = locked
    body = {"urls": ["https://example.com/page-b1t"]}
    r = client.post("/screenshots/batch", json=body)
    assert (r.status_code, r.json()["error"]) == (403, "api_key_required")
    ok = client.post("/screenshots/batch", json=body, headers={"X-API-Key": token_for(KEYS)})
    assert ok.status_code == 200, ok.text
    # Let through: the capture was asked of the upstream (whatever it answered in time).
    assert fake_upstream.calls.get("page-b1t", 0) >= 1


def test_captured_cards_always_need_a_signature(
    capture_settings: Settings, layouts: LayoutRegistry, fonts: FontSet, fake_upstream: FakeUpstream
) -> None:
    settings = capture_settings.model_copy(
        update={
            "signing_keys": Settings(_env_file=None, signing_keys=KEYS).signing_keys,  # type: ignore[call-arg]
            "allow_unsigned_text_cards": True,
        }
    )
    service = CardService(settings, layouts=layouts, fonts=fonts, capture=make_provider(settings))
    with TestClient(create_app(settings, service=service), raise_server_exceptions=False) as c:
        r = c.get("/og.png", params={"title": "t", "url": "https://example.com/card-cap"})
        assert (r.status_code, r.json()["error"]) == (403, "signature_required")
        assert fake_upstream.calls.get("card-cap") is None
        assert c.get("/og.png", params={"title": "text only"}).status_code == 200
        from ogshot.card import Card

        signer = Signer.from_settings(settings)
        url = card_url(
            "", signer.signed_params(Card(title="t", url="https://example.com/card-cap"))
        )
        assert c.get(url).status_code == 200
        assert fake_upstream.calls.get("card-cap") == 1


def test_api_token_cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OGSHOT_SIGNING_KEYS", KEYS)
    assert main(["api-token"]) == 0
    assert capsys.readouterr().out.strip() == token_for(KEYS)
    monkeypatch.delenv("OGSHOT_SIGNING_KEYS")
    assert main(["api-token"]) == 1


def test_start_up_warns_when_capture_is_open(
    capture_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ogshot"):
        create_app(capture_settings)
    assert any(
        "SECURITY" in r.message and "OGSHOT_SIGNING_KEYS" in r.message for r in caplog.records
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ogshot"):
        create_app(
            capture_settings.model_copy(
                update={"signing_keys": Settings(_env_file=None, signing_keys=KEYS).signing_keys}
            )
        )  # type: ignore[call-arg]
        create_app(Settings(_env_file=None, capture="none"))  # type: ignore[call-arg]
    assert not any("SECURITY" in r.message for r in caplog.records)
