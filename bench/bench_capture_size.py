"""Capture cards by encoding: bytes, milliseconds and SSIM against the lossless card.

    python -m bench.bench_capture_size [--n 5]

Capture cards (a page capture under the title) are photo-like, and a lossless PNG of one is
often over 300 KB, past what WhatsApp shows as a thumbnail. Each option below encodes the same
cards: real-looking captures (a header, text and a photograph served as JPEG, as pages serve
them; the same with raw sensor grain, the worst case; the sample light, dark and noisy pages)
in every layout that shows a capture. SSIM is measured on the luminance against the lossless
card (1.0 is identical). The table gives, per option, the median and largest size, the median
time and the lowest SSIM; ``ogshot default`` is what ``encode(image, "png")`` does.
"""

from __future__ import annotations

import argparse
import functools
import io
import statistics
from collections.abc import Callable
from dataclasses import dataclass

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
        return enc.encode_png(quantised)

    return run


def _posterized(bits: int) -> Callable[[Image.Image], bytes]:
    def run(image: Image.Image) -> bytes:
        return enc.fast_png(ImageOps.posterize(image, bits))

    return run


OPTIONS = (
    Option("ogshot default", lambda im: enc.encode(im, "png")),
    Option("png lossless, fast", enc.fast_png),
    Option("png 256 colours, octree", _palette(256, Image.Quantize.FASTOCTREE, False)),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5)
    args = parser.parse_args()
    print(table(figures(args.n)))


if __name__ == "__main__":
    main()
