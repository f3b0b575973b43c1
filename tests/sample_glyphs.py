"""Does every sample script render with real glyphs? The check, and a script that runs it.

Imported by the bare-machine tests (in process), and run as a script by the fresh-install test
with the Python of a fresh environment where the built wheel is installed::

    python tests/sample_glyphs.py

It then imports ogshot from that environment (this folder has no ``ogshot``), renders every
sample title with the settings of the environment (``OGSHOT_SYSTEM_FONTS=false``: the package's
own fonts alone) and prints a JSON report on standard output.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ogshot.fonts import FontSet
    from ogshot.render import Rendered


def drawn_clusters(fonts: FontSet, result: Rendered) -> list[tuple[str, str, bool]]:
    """Every cluster a card drew as (cluster, family, whether that family has all of it);
    spaces and the ellipsis of a cut title left out."""
    from ogshot.text import clusters

    drawn = []
    for placed in result.placed:
        for line in placed.fitted.lines:
            for run in line.runs:
                for cluster in clusters(run.text):
                    if cluster.isspace() or cluster == "…":
                        continue
                    drawn.append((cluster, run.font, fonts.covers(run.font, cluster)))
    return drawn


def report() -> dict[str, Any]:
    """Every sample title rendered with the environment's settings, and what was drawn."""
    import ogshot
    from ogshot.card import Card
    from ogshot.fonts import FontSet
    from ogshot.layouts import LayoutRegistry, builtin_dir
    from ogshot.render import render_detailed
    from ogshot.samples import TITLES
    from ogshot.settings import Settings

    fonts = FontSet.from_settings(Settings(capture="none"))
    layout = LayoutRegistry.load(builtin_dir()).get("default")
    titles = {}
    for label, title in TITLES:
        card = Card(title=title, subtitle="Fast, careful social preview images", site="example.org")
        result = render_detailed(card, layout, fonts)
        colours = result.image.convert("L").getextrema()
        titles[label] = {
            "missing": fonts.missing(title),
            "drawn": drawn_clusters(fonts, result),
            "size": list(result.image.size),
            "extrema": list(colours),
        }
    return {
        "package": ogshot.__file__,
        "dirs": [str(d) for d in fonts.dirs],
        "files": sorted({str(p) for face in fonts.faces for p in face.files.values()}),
        "titles": titles,
    }


if __name__ == "__main__":
    json.dump(report(), sys.stdout, ensure_ascii=False)
