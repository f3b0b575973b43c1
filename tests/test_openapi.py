"""The API description tells the truth: schemathesis against a real ``ogshot serve``, the
documented error shapes, and ``/docs`` working with no network."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from .conftest import ogshot_serve
from .fake_upstream import KEY as UPSTREAM_KEY
from .fake_upstream import FakeUpstream

#: Generated requests per generation mode (positive, negative), spread over the operations.
EXAMPLES = 100


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Iterator[str]:
    """A real server with capture on, through the fake upstream on loopback (no page URL is
    ever resolved: the upstream is handed the URL, and the fake one answers without fetching)."""
    env = {
        "OGSHOT_CAPTURE": "http",
        "OGSHOT_UPSTREAM_URL": fake_upstream.url,
        "OGSHOT_UPSTREAM_KEY": UPSTREAM_KEY,
        "OGSHOT_UPSTREAM_TIMEOUT": "2",
        "OGSHOT_UPSTREAM_RETRIES": "0",
        "OGSHOT_UPSTREAM_BREAKER_FAILURES": "1000000",
    }
    with ogshot_serve(tmp_path_factory.mktemp("openapi"), env=env) as base:
        yield base


#: Every check runs, with one adjustment. Three rules of the card and capture endpoints cannot
#: be written in JSON Schema: a card needs a `title` or a `url`; text is normalised (control and
#: unassigned characters dropped) before its length and emptiness are judged; and a page URL is
#: whatever a browser's WHATWG parser accepts, with no user info. So a request the schema allows
#: may still get a 422 there; everything else about positive data is still checked. And a
#: request too long for the server (414, 413) is a rejection like any other.
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = [
    "400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "428", "429",
]

[[operations]]
include-path-regex = '^/(og[.]png|meta|screenshot|screenshots/batch)$'
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx",
]
"""


def _run(api: Any, mode: GenerationMode, seen: dict[Any, int], statuses: dict[int, int]) -> None:
    """Generated requests of one mode, each sent to the server and put through every check."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    @given(case=api.as_strategy(generation_mode=mode))
    def conforms(case: Any) -> None:
        label = (mode.value, case.operation.label)
        seen[label] = seen.get(label, 0) + 1
        response = case.call_and_validate(timeout=30)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    conforms()


def test_the_api_conforms_to_its_own_description(served: str) -> None:
    config = schemathesis.config.SchemathesisConfig.from_str(CONFIG)
    api = schemathesis.openapi.from_url(f"{served}/openapi.json", config=config)
    seen: dict[tuple[str, str], int] = {}
    statuses: dict[int, int] = {}
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        _run(api, mode, seen, statuses)
    print(f"schemathesis: {sum(seen.values())} cases", seen, statuses)
    # The run reached every operation, and the server accepted a good share of what it sent.
    operations = {label for _, label in seen}
    assert {"GET /og.png", "GET /screenshot", "POST /screenshots/batch"} <= operations
    assert statuses.get(200, 0) >= 20, statuses


# The description itself --------------------------------------------------------------------


def test_every_error_response_documents_the_real_error_body(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert set(spec["components"]["schemas"]["ErrorBody"]["required"]) == {"error", "detail"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            responses = op["responses"]
            assert "414" in responses, (method, path)
            if op.get("parameters") or op.get("requestBody"):
                assert "422" in responses, (method, path)
            if op.get("requestBody"):
                assert {"400", "408", "413"} <= set(responses), (method, path)
            for status, response in responses.items():
                if status[0] in "45":
                    if path == "/preview" and status == "422":
                        # The page for people gives itself back, naming the bad parameter.
                        assert list(response["content"]) == ["text/html"]
                        continue
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)


def test_the_card_documents_its_statuses_media_types_and_limits(client: TestClient) -> None:
    op = client.get("/openapi.json").json()["paths"]["/og.png"]["get"]
    assert {"200", "206", "304", "403", "404", "414", "422", "429", "503"} <= set(op["responses"])
    assert set(op["responses"]["200"]["content"]) == {"image/png", "image/jpeg", "image/webp"}
    assert "Retry-After" in op["responses"]["503"]["headers"]
    params = {p["name"]: p["schema"] for p in op["parameters"]}
    assert params["title"]["maxLength"] == 300
    assert params["subtitle"]["maxLength"] == 500
    assert params["site"]["maxLength"] == 100
    assert params["url"]["maxLength"] == 2048
    assert params["v"]["maxLength"] == 64
    assert params["theme"]["enum"] == ["auto", "light", "dark"]
    assert params["format"]["enum"] == ["png", "jpeg", "webp"]
    # The layouts this server has, by name.
    assert "default" in params["template"]["description"]
    assert re.fullmatch(params["template"]["pattern"], " Default ")
    assert not re.fullmatch(params["template"]["pattern"], "nope")


def test_a_title_longer_than_documented_is_refused_as_sent(client: TestClient) -> None:
    # Folding the white space would make it fit; the limit the description states holds as sent.
    r = client.get("/og.png", params={"title": "a " * 150 + " "})
    assert r.status_code == 422
    assert r.json() == {
        "error": "invalid_parameter",
        "detail": "'title' must be at most 300 characters",
    }


# /docs with no network ------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_their_assets_from_the_app(client: TestClient, page: str) -> None:
    html = client.get(page).text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, html
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        r = client.get(asset)
        assert r.status_code == 200 and len(r.content) > 1000, asset
    assert "googleapis" not in html and "cdn." not in html


def test_docs_page_renders_in_a_browser_with_the_network_blocked(
    served: str, tmp_path: Path
) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    out = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path}",
            # Every host name fails to resolve except loopback: a CDN asset could not load.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=10000",
            "--dump-dom",
            f"{served}/docs",
        ],
        capture_output=True,
        timeout=90,
        check=True,
    ).stdout.decode()
    # Swagger UI ran (it builds these from the description) and lists every operation.
    for path in ("/og.png", "/templates", "/screenshot", "/screenshots/batch"):
        assert f'data-path="{path}"' in out, path


def test_openapi_description_is_valid_json_over_http(served: str) -> None:
    r = httpx.get(f"{served}/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json()["openapi"].startswith("3.")
