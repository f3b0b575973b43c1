from __future__ import annotations

from pathlib import Path

import pytest

from ogshot.errors import LayoutError, UnknownTemplate
from ogshot.layouts import LayoutRegistry, builtin_dir, load_layout

DEFAULT = (builtin_dir() / "default.toml").read_text()


def test_builtin_layouts_load() -> None:
    registry = LayoutRegistry.load(builtin_dir())
    assert "default" in registry.names()
    with pytest.raises(UnknownTemplate):
        registry.get("nope")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda t: t.replace("max_size = 80", "max_size = 80\nsparkle = true"), "title.sparkle"),
        (
            lambda t: t.replace("box = [80, 160, 1040, 300]", "box = [80, 160, 1200, 300]"),
            "title.box",
        ),
        (lambda t: t.replace('foreground = "#f8fafc"', 'foreground = "white"'), "dark.foreground"),
        (lambda t: t.replace("min_size = 40", "min_size = 90"), "title.min_size"),
        (lambda t: t.replace("version = 1", 'version = "one"'), "version"),
    ],
)
def test_bad_layout_fails_naming_file_and_field(tmp_path: Path, mutate: object, field: str) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(mutate(DEFAULT))  # type: ignore[operator]
    with pytest.raises(LayoutError) as info:
        load_layout(path)
    assert "broken.toml" in info.value.detail
    assert f"'{field}'" in info.value.detail


def test_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "junk.toml"
    path.write_text("this is = = not toml")
    with pytest.raises(LayoutError, match="junk.toml: not valid TOML"):
        load_layout(path)


def test_user_folder_adds_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(DEFAULT.replace("version = 1", "version = 7"))
    (tmp_path / "default.toml").write_text(DEFAULT.replace("version = 1", "version = 2"))
    registry = LayoutRegistry.load(builtin_dir(), tmp_path)
    assert registry.get("mine").version == 7
    assert registry.get("default").version == 2


def test_layout_digest_follows_file_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(DEFAULT)
    b.write_text(DEFAULT.replace("max_size = 80", "max_size = 78"))
    assert load_layout(a).digest != load_layout(b).digest


def test_four_built_in_layouts_each_with_a_description() -> None:
    registry = LayoutRegistry.load(builtin_dir())
    assert {"default", "split", "card", "browser"} <= set(registry.names())
    for layout in registry:
        assert layout.description and layout.digest


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda t: t.replace('scrim = "bottom"', 'scrim = "bottom"\nframe = "window"'),
            "capture.frame",
        ),
        (
            lambda t: t.replace('scrim = "bottom"', 'scrim = "bottom"\nplaceholder = "kitten"'),
            "capture.placeholder",
        ),
        (lambda t: t.replace('background = "gradient"', 'background = "plaid"'), "background"),
        (lambda t: t.replace('scrim = "#ffffff"', 'scrim = "#fff"'), "light.scrim"),
    ],
)
def test_new_fields_are_checked_too(tmp_path: Path, mutate: object, field: str) -> None:
    path = tmp_path / "fancy.toml"
    path.write_text(mutate(DEFAULT))  # type: ignore[operator]
    with pytest.raises(LayoutError) as info:
        load_layout(path)
    assert "fancy.toml" in info.value.detail and f"'{field}'" in info.value.detail


def test_user_layouts_are_listed_by_the_api(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from ogshot.api import create_app
    from ogshot.settings import Settings

    (tmp_path / "mine.toml").write_text(
        (builtin_dir() / "split.toml").read_text().replace("version = 1", "version = 3")
    )
    settings = Settings(_env_file=None, capture="none", templates_dir=str(tmp_path))  # type: ignore[call-arg]
    with TestClient(create_app(settings)) as client:
        listed = {t["name"]: t for t in client.get("/templates").json()["templates"]}
        assert listed["mine"]["version"] == 3
        assert {"default", "split", "card", "browser"} <= set(listed)
        response = client.get("/og.png", params={"title": "Mine", "template": "mine"})
        assert response.status_code == 200
        assert client.get("/og.png", params={"title": "x", "template": "nope"}).status_code == 404


def test_a_broken_user_layout_fails_at_load_naming_it(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(DEFAULT.replace("max_lines = 3", "max_lines = 30"))
    with pytest.raises(LayoutError, match=r"bad.toml: field 'title.max_lines'"):
        LayoutRegistry.load(builtin_dir(), tmp_path)
