"""Capture cards by encoding: bytes, milliseconds and SSIM against the lossless card.

    python -m bench.bench_capture_size [--n 5]

Capture cards (a page capture under the title) are photo-like, and a lossless PNG of one is
often over 300 KB, past what WhatsApp shows as a thumbnail. Each option below encodes the same
cards: real-looking captures (a header, text and a photograph served as JPEG, as pages serve
them; the same with raw sensor grain, the worst case; the sample light, dark and noisy pages)
in every layout that shows a capture. SSIM is measured on the luminance against the lossless
card (1.0 is identical). The table gives, per option, the median and largest size, the median
time and the lowest SSIM; ``ogshot default`` is what ``encode(image, "png")`` does.

First, the palette decision: on more cards (title cards, pages of other seeds, photo qualities and
sizes), how ``encode_png`` judged each against the 300 KB budget from its sampled rows, and
whether it ever sent a card whose lossless PNG fits to the palette (it must not: PASS/FAIL).
"""

from __future__ import annotations

import argparse
import functools
import io
import itertools
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image, ImageOps

from ogshot import encode as enc
from ogshot.card import Card
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry, builtin_dir
from ogshot.render import render_card
from ogshot.samples import CAPTURES
from tests.imagecompare import ssim

from .common import synthetic_capture, timings


@dataclass
class Option:
    name: str
    encode: Callable[[Image.Image], bytes]


def _save(fmt: str, **params: object) -> Callable[[Image.Image], bytes]:
    def run(image: Image.Image) -> bytes:
        out = io.BytesIO()
        image.save(out, fmt, **params)
        return out.getvalue()

    return run


def _palette(colours: int, method: Image.Quantize, dither: bool) -> Callable[[Image.Image], bytes]:
    def run(image: Image.Image) -> bytes:
        quantised = image.quantize(
            colours,
            method=method,
            dither=Image.Dither.FLOYDSTEINBERG if dither else Image.Dither.NONE,
        )
        return enc.fast_png(quantised)  # the palette PNG itself (encode_png would make it RGB)

    return run


def _posterized(bits: int) -> Callable[[Image.Image], bytes]:
    def run(image: Image.Image) -> bytes:
        return enc.fast_png(ImageOps.posterize(image, bits))

    return run


OPTIONS = (
    Option("ogshot default", lambda im: enc.encode(im, "png")),
    Option("png lossless, fast", enc.fast_png),
    Option("png 256 colours, octree (whole)", _palette(256, Image.Quantize.FASTOCTREE, False)),
    Option("png 256 colours, octree, dither", _palette(256, Image.Quantize.FASTOCTREE, True)),
    Option("png lossless, 6 bits a channel", _posterized(6)),
    Option("png lossless, 5 bits a channel", _posterized(5)),
    Option("jpeg q88 (ogshot's)", lambda im: enc.encode(im, "jpeg")),
    Option("jpeg q80", _save("JPEG", quality=80)),
    Option("webp q86 (ogshot's)", lambda im: enc.encode(im, "webp")),
)


def cards() -> list[tuple[str, Image.Image]]:
    fonts = FontSet.default()
    layouts = LayoutRegistry.load(builtin_dir())
    captures = {f"page {seed}": synthetic_capture(seed) for seed in range(3)}
    captures["raw grain"] = synthetic_capture(7, photo_quality=None)
    captures.update({name: make() for name, make in CAPTURES.items()})
    card = Card(
        title="Ship social cards that load before the crawler gives up",
        subtitle="Typography, caching and captures, explained.",
        site="example.org",
    )
    out = []
    for layout in layouts:
        if layout.capture is None:
            continue
        for name, capture in captures.items():
            out.append((f"{layout.name}/{name}", render_card(card, layout, fonts, capture)))
    return out


def decision_cards() -> list[tuple[str, Image.Image]]:
    """More cards for checking the palette decision: :func:`cards`, title cards, and capture
    cards over pages of other seeds, photo qualities and page sizes (fitted, not 1200×630)."""
    fonts = FontSet.default()
    layouts = LayoutRegistry.load(builtin_dir())
    out = cards()
    titles = (
        "Ship social cards that load before the crawler gives up",
        "Short",
        "A much longer title that needs three lines or more to fit in its box, surely it does",
    )
    themes: tuple[Literal["auto", "light", "dark"], ...] = ("auto", "light", "dark")
    for layout in layouts:
        for theme in themes[1:]:
            card = Card(title=titles[0], subtitle="A subtitle", site="example.org", theme=theme)
            out.append((f"{layout.name}/title card/{theme}", render_card(card, layout, fonts)))
    pages = itertools.product(range(4), (40, 70, 95, None), ((1200, 630), (1280, 900), (800, 1400)))
    for i, (seed, quality, size) in enumerate(pages):
        capture = synthetic_capture(seed + 10, size, quality)
        card = Card(
            title=titles[i % 3], subtitle="A subtitle", site="example.org", theme=themes[i % 3]
        )
        for layout in layouts:
            if layout.capture is not None:
                name = f"{layout.name}/seed {seed + 10} q{quality} {size[0]}x{size[1]}"
                out.append((name, render_card(card, layout, fonts, capture)))
    return out


def decision(images: list[tuple[str, Image.Image]]) -> dict[str, Any]:
    """How ``encode_png`` judged each card against the byte budget, and whether it ever sent a
    card whose lossless PNG fits to the palette (a misjudgement: it must never happen)."""
    budget = enc.CARD_BYTE_BUDGET
    routes = {"under": 0, "near": 0, "over": 0}
    misjudged: list[str] = []
    ratios: list[float] = []
    over = 0
    for name, image in images:
        exact = len(enc.fast_png(image))
        over += exact > budget
        ratios.append(enc.predicted_png_size(image, enc.FINE_EVERY) / exact)
        route = enc.predicted_fit(image, budget)
        routes[route] += 1
        if route == "over" and exact <= budget:
            misjudged.append(name)
    return {
        "cards": len(images),
        "over budget lossless": over,
        "judged under (lossless at once)": routes["under"],
        "judged near (lossless, measured)": routes["near"],
        "judged over (palette at once)": routes["over"],
        "misjudged": misjudged,
        "fine prediction / true size": (min(ratios), statistics.median(ratios), max(ratios)),
    }


def _decode(body: bytes) -> Image.Image:
    return Image.open(io.BytesIO(body)).convert("RGB")


def figures(n: int) -> list[dict[str, float | str]]:
    rows = []
    images = cards()
    for option in OPTIONS:
        sizes, times, scores = [], [], []
        for _, image in images:
            body = option.encode(image)
            sizes.append(len(body))
            run = functools.partial(option.encode, image)
            times.append(statistics.median(timings(run, n, warmup=1)))
            scores.append(ssim(_decode(body), image))
        rows.append(
            {
                "option": option.name,
                "median KB": statistics.median(sizes) / 1024,
                "max KB": max(sizes) / 1024,
                "median ms": statistics.median(times) * 1000,
                "min SSIM": min(scores),
                "over 300 KB": sum(size > 300 * 1024 for size in sizes),
                "cards": len(sizes),
            }
        )
    return rows


def table(rows: list[dict[str, float | str]]) -> str:
    head = f"{'option':<34}{'median KB':>10}{'max KB':>8}{'ms':>7}{'min SSIM':>10}{'>300KB':>8}"
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['option']:<34}{r['median KB']:>10.0f}{r['max KB']:>8.0f}{r['median ms']:>7.1f}"
            f"{r['min SSIM']:>10.4f}{r['over 300 KB']:>5}/{r['cards']}"
        )
    return "\n".join(lines)


def decision_table(found: dict[str, Any]) -> str:
    low, mid, high = found["fine prediction / true size"]
    lines = [
        f"palette decision on {found['cards']} cards "
        f"({found['over budget lossless']} over {enc.CARD_BYTE_BUDGET // 1024} KB lossless):"
    ]
    for key in (
        "judged under (lossless at once)",
        "judged near (lossless, measured)",
        "judged over (palette at once)",
    ):
        lines.append(f"  {key:<36}{found[key]:>5}")
    lines.append(f"  fine prediction / true size: min {low:.3f}, median {mid:.3f}, max {high:.3f}")
    misjudged = found["misjudged"]
    verdict = "PASS" if not misjudged else "FAIL: " + ", ".join(misjudged)
    lines.append(f"  never a card that fits sent to the palette: {verdict}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--decision-only", action="store_true", help="only the palette decision")
    args = parser.parse_args()
    print(decision_table(decision(decision_cards())))
    if not args.decision_only:
        print(table(figures(args.n)))


if __name__ == "__main__":
    main()
