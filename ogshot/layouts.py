"""Layouts are data: ``templates/*.toml`` files validated by strict models.

A layout places the capture (when there is one), a scrim, an accent bar and three text boxes
(title, subtitle, site) on the 1200×630 canvas, and gives colours for the light and dark themes.
A file that does not validate fails at load time with its name and the offending field.

The built-in layouts ship inside the package (``ogshot/templates`` in a wheel, ``templates/`` at the
top of a source checkout); ``OGSHOT_TEMPLATES_DIR`` adds more, and a user file with a built-in's
name replaces it.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .errors import LayoutError, UnknownTemplate

WIDTH = 1200
HEIGHT = 630

Box = tuple[int, int, int, int]
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
Colour = Annotated[str, Field(pattern=_HEX.pattern)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_box(box: Box) -> Box:
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise ValueError("width and height must be positive")
    if x < 0 or y < 0 or x + w > WIDTH or y + h > HEIGHT:
        raise ValueError(f"must lie inside the {WIDTH}x{HEIGHT} canvas")
    return box


class Palette(_Strict):
    """Colours for one theme. ``accent`` is the default when the card gives none."""

    background: Colour
    background_end: Colour | None = None
    foreground: Colour
    muted: Colour
    accent: Colour
    #: Colour of the panel behind text drawn over a capture.
    scrim: Colour = "#000000"


class TextBox(_Strict):
    box: Box
    max_size: int = Field(ge=8, le=200)
    min_size: int = Field(ge=8, le=200)
    max_lines: int = Field(default=1, ge=1, le=8)
    weight: Literal["regular", "medium", "bold"] = "regular"
    line_height: float = Field(default=1.2, ge=0.8, le=2.5)
    align: Literal["left", "center", "right"] = "left"
    valign: Literal["top", "middle", "bottom"] = "top"
    color: Literal["foreground", "muted", "accent"] = "foreground"
    uppercase: bool = False

    _box = field_validator("box")(_check_box)

    @field_validator("min_size")
    @classmethod
    def _min_le_max(cls, value: int, info: ValidationInfo) -> int:
        if "max_size" in info.data and value > info.data["max_size"]:
            raise ValueError("must not exceed max_size")
        return value


class CaptureBox(_Strict):
    box: Box = (0, 0, WIDTH, HEIGHT)
    #: ``cover`` fills the box and crops; the capture's top is kept, where pages put their heading.
    fit: Literal["cover"] = "cover"
    radius: int = Field(default=0, ge=0, le=64)
    #: Veil the capture under the text (in the palette's ``scrim`` colour): none, a gradient
    #: from the bottom, or an even veil. Text boxes get more where contrast still falls short.
    scrim: Literal["none", "bottom", "full"] = "bottom"
    #: ``browser`` draws the capture inside a browser window (title bar, dots, address bar).
    frame: Literal["none", "browser"] = "none"
    #: What fills the box on a card without a capture: nothing (the background shows), an accent
    #: panel, or a sketch of a page.
    placeholder: Literal["none", "accent", "skeleton"] = "none"
    #: A soft drop shadow under the box.
    shadow: bool = False

    _box = field_validator("box")(_check_box)


class AccentBar(_Strict):
    box: Box

    _box = field_validator("box")(_check_box)


class Layout(_Strict):
    """One layout file, validated."""

    name: str = ""
    version: int = Field(default=1, ge=1)
    description: str = ""
    #: ``glow`` is the gradient with a soft light of the accent colour in the top right corner.
    background: Literal["solid", "gradient", "glow"] = "gradient"
    capture: CaptureBox | None = None
    accent_bar: AccentBar | None = None
    title: TextBox
    subtitle: TextBox | None = None
    site: TextBox | None = None
    light: Palette
    dark: Palette
    #: Theme chosen by ``theme=auto`` on a title card; over a capture, auto follows its brightness.
    auto_theme: Literal["light", "dark"] = "dark"
    #: Fingerprint of the file's bytes, filled in by the loader; part of the cache key.
    digest: str = ""

    def palette(self, theme: Literal["light", "dark"]) -> Palette:
        return self.light if theme == "light" else self.dark


def builtin_dir() -> Path:
    """Where the built-in layouts live: inside the wheel, or at the top of a checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "templates"
    return packaged if packaged.is_dir() else here.parent / "templates"


def load_layout(path: Path) -> Layout:
    """Read and validate one layout file, raising :class:`LayoutError` naming file and field."""
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LayoutError(f"{path.name}: not valid TOML: {exc}") from None
    name = path.stem
    if data.get("name", name) != name:
        raise LayoutError(f"{path.name}: field 'name' must match the file name ({name!r})")
    data["name"] = name
    data["digest"] = hashlib.sha256(raw).hexdigest()[:16]
    try:
        return Layout.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise LayoutError(f"{path.name}: field '{loc}': {err['msg']}") from None


class LayoutRegistry:
    """All layouts by name, loaded once at start-up."""

    def __init__(self, layouts: Iterable[Layout]) -> None:
        self._by_name = {layout.name: layout for layout in layouts}

    @classmethod
    def load(cls, *dirs: Path) -> LayoutRegistry:
        """Load every ``*.toml`` of the given folders, later folders overriding earlier ones."""
        found: dict[str, Layout] = {}
        for folder in dirs:
            if not folder.is_dir():
                raise LayoutError(f"layout folder {folder} does not exist")
            for path in sorted(folder.glob("*.toml")):
                layout = load_layout(path)
                found[layout.name] = layout
        if "default" not in found:
            raise LayoutError("no layout named 'default' was found")
        return cls(found.values())

    def get(self, name: str) -> Layout:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownTemplate(
                f"no layout named {name!r}; GET /templates lists the layouts"
            ) from None

    def __iter__(self) -> Iterator[Layout]:
        return iter(sorted(self._by_name.values(), key=lambda layout: layout.name))

    def names(self) -> list[str]:
        return sorted(self._by_name)
