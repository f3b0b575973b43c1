"""Render + encode time per layout, and ogshot against its peers on the same card.

    python -m bench.bench_render [--n 30]

Every layout of the registry is measured, title card and screenshot card (a synthetic page
capture: header, text, a JPEG-served photograph). Then, on the default layout:

- the screenshot card through ogshot's encoder, through Pillow's default PNG path and through
  Pillow at compress level 1 (its fastest zlib level), timed in turn;
- a new title on an already-captured page: the capture's bytes decoded for each card, against
  the decoded capture kept in memory (``ogshot.capture.decoded``), timed in turn;
- JPEG and WebP encodes, and a capture of raw photographic grain (the PNG worst case).

ogshot against @vercel/og, in process and over HTTP, is ``bench.bench_cold``.
"""

from __future__ import annotations

import argparse
import functools
import io
import itertools
import json
from pathlib import Path
from typing import Any

from PIL import Image

from ogshot import encode as enc
from ogshot.capture.decoded import DecodedCaptures
from ogshot.capture.images import decode
from ogshot.card import Card
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry, builtin_dir
from ogshot.render import render_card
from ogshot.workers import tune_allocator

from .common import SITE, SUBTITLE, TITLE, interleaved, summary, synthetic_capture, timings

HERE = Path(__file__).resolve().parent


def _pillow_default_png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")  # Pillow's defaults: zlib level 6, adaptive filters
    return out.getvalue()


def _pillow_fast_png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)  # Pillow's fastest zlib level, adaptive filters
    return out.getvalue()


def per_layout(registry: LayoutRegistry, fonts: FontSet, n: int) -> dict[str, Any]:
    """Render + encode (PNG) of distinct cards, for each layout: title card and screenshot card."""
    capture = synthetic_capture(1)
    counter = itertools.count()
    out: dict[str, Any] = {}
    for layout in registry:

        def title_card(layout: Any = layout) -> bytes:
            card = Card(title=f"{TITLE} #{next(counter)}", subtitle=SUBTITLE, site=SITE)
            return enc.encode(render_card(card, layout, fonts), "png", captured=False)

        def shot_card(layout: Any = layout) -> bytes:
            card = Card(title=f"{TITLE} #{next(counter)}", subtitle=SUBTITLE, site=SITE)
            return enc.encode(render_card(card, layout, fonts, capture), "png")

        out[layout.name] = {
            "title": summary(timings(title_card, n)) | {"bytes": len(title_card())},
            "screenshot": summary(timings(shot_card, max(5, n // 2))) | {"bytes": len(shot_card())},
        }
    return out


def against_pillow(registry: LayoutRegistry, fonts: FontSet, n: int) -> dict[str, Any]:
    """The same screenshot card through ogshot's encoder and through Pillow's default PNG."""
    layout = registry.get("default")
    capture = synthetic_capture(2)
    card = Card(title=TITLE, subtitle=SUBTITLE, site=SITE)
    image = render_card(card, layout, fonts, capture)
    reps = max(10, n // 2)
    ours_total, pillow_total, fast_total = map(
        summary,
        interleaved(
            [
                lambda: enc.encode(render_card(card, layout, fonts, capture), "png"),
                lambda: _pillow_default_png(render_card(card, layout, fonts, capture)),
                lambda: _pillow_fast_png(render_card(card, layout, fonts, capture)),
            ],
            reps,
        ),
    )
    ours_encode, pillow_encode, fast_encode = map(
        summary,
        interleaved(
            [
                lambda: enc.encode(image, "png"),
                lambda: _pillow_default_png(image),
                lambda: _pillow_fast_png(image),
            ],
            reps,
        ),
    )
    render_only = summary(timings(lambda: render_card(card, layout, fonts, capture), reps))
    return {
        "render_ms": render_only["median_ms"],
        "ogshot": ours_total | {"bytes": len(enc.encode(image, "png"))},
        "pillow_default": pillow_total | {"bytes": len(_pillow_default_png(image))},
        "pillow_level1": fast_total | {"bytes": len(_pillow_fast_png(image))},
        "ogshot_encode": ours_encode,
        "pillow_default_encode": pillow_encode,
        "pillow_level1_encode": fast_encode,
        "ratio_total": pillow_total["median_ms"] / ours_total["median_ms"],
        "ratio_encode": pillow_encode["median_ms"] / ours_encode["median_ms"],
        "ratio_level1_total": fast_total["median_ms"] / ours_total["median_ms"],
        "ratio_level1_encode": fast_encode["median_ms"] / ours_encode["median_ms"],
    }


def capture_lru(registry: LayoutRegistry, fonts: FontSet, n: int) -> dict[str, Any]:
    """A new title on a captured page: decode + render + PNG against kept capture + render + PNG."""
    layout = registry.get("default")
    served = io.BytesIO()
    synthetic_capture(3).save(served, "PNG")  # what a capture provider hands back
    body = served.getvalue()
    kept = DecodedCaptures()
    kept.put("capture", decode(body, 40_000_000))
    counter = itertools.count()

    def card() -> Card:
        return Card(title=f"{TITLE} #{next(counter)}", subtitle=SUBTITLE, site=SITE)

    def decoded_each_time() -> bytes:
        return enc.encode(render_card(card(), layout, fonts, decode(body, 40_000_000)), "png")

    def from_memory() -> bytes:
        capture = kept.get("capture")
        assert capture is not None
        return enc.encode(render_card(card(), layout, fonts, capture), "png")

    without, with_lru = map(summary, interleaved([decoded_each_time, from_memory], max(10, n // 2)))
    decode_only = summary(timings(lambda: decode(body, 40_000_000), max(10, n // 2)))
    return {
        "capture_bytes": len(body),
        "decode": decode_only,
        "without_lru": without,
        "with_lru": with_lru,
        "ratio": without["median_ms"] / with_lru["median_ms"],
    }


def other_formats(registry: LayoutRegistry, fonts: FontSet, n: int) -> dict[str, Any]:
    """Encode-only times and sizes of one screenshot card in each format, and the PNG worst case."""
    layout = registry.get("default")
    card = Card(title=TITLE, subtitle=SUBTITLE, site=SITE)
    image = render_card(card, layout, fonts, synthetic_capture(2))
    out: dict[str, Any] = {}
    for fmt in ("png", "jpeg", "webp"):
        out[fmt] = summary(timings(functools.partial(enc.encode, image, fmt), max(5, n // 2)))
        out[fmt]["bytes"] = len(enc.encode(image, fmt))
    grainy = render_card(card, layout, fonts, synthetic_capture(2, photo_quality=None))
    out["png_raw_grain"] = summary(timings(lambda: enc.encode(grainy, "png"), 5))
    out["png_raw_grain"]["bytes"] = len(enc.encode(grainy, "png"))
    out["png_raw_grain"]["fast_bytes"] = len(enc.fast_png(grainy))
    return out


def title_png(registry: LayoutRegistry, fonts: FontSet, n: int) -> dict[str, Any]:
    """The lossless PNG writer alone on the default layout's title card: time and size."""
    image = render_card(Card(title=TITLE, subtitle=SUBTITLE, site=SITE), registry.get("default"),
                        fonts)
    return summary(timings(lambda: enc.fast_png(image), n)) | {"bytes": len(enc.fast_png(image))}


def figures(n: int = 30) -> dict[str, Any]:
    tune_allocator()  # as the service does
    registry = LayoutRegistry.load(builtin_dir())
    fonts = FontSet.default()
    return {
        "encoder": enc.ENCODER_VERSION,
        "layouts": per_layout(registry, fonts, n),
        "title_png": title_png(registry, fonts, max(n, 100)),
        "vs_pillow": against_pillow(registry, fonts, n),
        "capture_lru": capture_lru(registry, fonts, n),
        "formats": other_formats(registry, fonts, n),
    }


def _ms(row: dict[str, Any]) -> str:
    return f"{row['median_ms']:7.1f} {row['p95_ms']:7.1f}"


def table(fig: dict[str, Any], first: list[tuple[str, dict[str, Any]]] | None = None) -> str:
    """The figures as a Markdown table: what the README shows. ``first``: rows (label,
    summary) measured elsewhere in the same run, put at the top."""
    lines = [
        "| measurement | median ms | p95 ms | bytes |",
        "|---|---:|---:|---:|",
    ]

    def row(name: str, r: dict[str, Any]) -> None:
        lines.append(
            f"| {name} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} | {r.get('bytes', '')} |"
        )

    for name, r in first or []:
        row(name, r)
    for name, per in fig["layouts"].items():
        row(f"`{name}` title card, render + PNG", per["title"])
        row(f"`{name}` screenshot card, render + PNG", per["screenshot"])
    row("`default` title card, PNG encode only", fig["title_png"])
    vp = fig["vs_pillow"]
    row("screenshot card, render + ogshot PNG", vp["ogshot"])
    row("screenshot card, render + Pillow default PNG", vp["pillow_default"])
    row("screenshot card, ogshot PNG encode only", vp["ogshot_encode"])
    row("screenshot card, Pillow default PNG encode only", vp["pillow_default_encode"])
    row("screenshot card, render + Pillow PNG compress level 1", vp["pillow_level1"])
    row("screenshot card, Pillow PNG compress level 1 encode only", vp["pillow_level1_encode"])
    lru = fig["capture_lru"]
    row("screenshot card, capture PNG decoded for the card", lru["without_lru"])
    row("screenshot card, decoded capture kept in memory", lru["with_lru"])
    for fmt, r in fig["formats"].items():
        if fmt == "png_raw_grain":
            name = "screenshot card over a raw-grain photo, PNG encode only"
            row(f"{name} (over 300 KB: palette)", r)
        else:
            row(f"screenshot card, {fmt} encode only", r)
    lines.append("")
    lines.append(
        f"Ratios (same run): screenshot card vs Pillow default PNG {vp['ratio_total']:.1f}x "
        f"end to end, {vp['ratio_encode']:.1f}x encode only; vs Pillow PNG compress level 1 "
        f"{vp['ratio_level1_total']:.1f}x end to end, {vp['ratio_level1_encode']:.1f}x encode only"
        + f"; new title on a captured page, kept capture vs decoded {lru['ratio']:.2f}x."
    )
    return "\n".join(lines)


#: The screenshot card's target: Pillow's default PNG path at least this many times ogshot's time.
SCREENSHOT_TARGET = 10.0


def target_check(fig: dict[str, Any]) -> str:
    """The screenshot card's target, plainly: the figure, the target, PASS or FAIL."""
    vp = fig["vs_pillow"]
    verdict = "PASS" if vp["ratio_total"] >= SCREENSHOT_TARGET else "FAIL"
    return (
        f"{verdict}: screenshot card, render + PNG, Pillow default PNG time / ogshot time: "
        f"{vp['ratio_total']:.2f} (target >= {SCREENSHOT_TARGET:g}; "
        f"{vp['ogshot']['median_ms']:.1f} ms against {vp['pillow_default']['median_ms']:.1f} ms)\n"
        f"(for fairness) against Pillow at compress level 1: {vp['ratio_level1_total']:.2f} "
        f"end to end, {vp['ratio_level1_encode']:.2f} encode only"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="timed repetitions per measurement")
    args = parser.parse_args()
    fig = figures(args.n)
    print(table(fig))
    print(target_check(fig))
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
