from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ogshot.api import create_app
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry, builtin_dir
from ogshot.service import CardService
from ogshot.settings import Settings


@pytest.fixture(scope="session")
def fonts() -> FontSet:
    return FontSet.default()


@pytest.fixture(scope="session")
def layouts() -> LayoutRegistry:
    return LayoutRegistry.load(builtin_dir())


@pytest.fixture
def settings() -> Settings:
    # Built from keywords only, so no OGSHOT_* variable of the machine leaks into tests.
    return Settings(_env_file=None, capture="none")  # type: ignore[call-arg]


@pytest.fixture
def service(settings: Settings, layouts: LayoutRegistry, fonts: FontSet) -> CardService:
    return CardService(settings, layouts=layouts, fonts=fonts)


@pytest.fixture
def client(settings: Settings, service: CardService) -> Iterator[TestClient]:
    app = create_app(settings, service=service)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def decode(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image
