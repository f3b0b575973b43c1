"""Text and render timings: per layout, per script and on pathological input.

Run: python bench/bench_text.py [--repeat N]. Prints milliseconds (median of N runs) and the ratio
of the worst pathological title to a short one, the figure that must stay small.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from PIL import Image

from ogshot.card import Card
from ogshot.fonts import FontSet
from ogshot.layouts import LayoutRegistry, builtin_dir
from ogshot.render import render_card
from ogshot.samples import CAPTURES, TITLES
from ogshot.text import fit
from ogshot.text.fitting import forget

PATHOLOGICAL = {
    "2000 chars of words": ("Lorem ipsum dolor sit amet, consectetur. " * 60)[:2000],
    "2000 x one word": "x" * 2000,
    "2000 CJK": "为社交网络快速生成预览卡片" * 160,
    "2000 Arabic": ("مرحبا بالعالم " * 150)[:2000],
    "600 ZWJ families": "👨\u200d👩\u200d👧" * 600,
    "zalgo 2000": ("Z̷̛̮a̴͙l̵̰g̸̱o̷̗ " * 200)[:2000],
    "2000 spaces+dots": ". " * 1000,
}


def timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    start = time.perf_counter()
    fonts = FontSet.default()
    print(
        f"font set: {len(fonts.names)} families, loaded in "
        f"{(time.perf_counter() - start) * 1000:.0f} ms, version {fonts.version}"
    )
    layouts = LayoutRegistry.load(builtin_dir())
    captures = {"none": None} | {k: make() for k, make in CAPTURES.items()}

    print("\nrender_card, ms (median; a new title each run, so no text cache helps)")
    print(f"{'layout':<10}" + "".join(f"{k:>10}" for k in captures))
    counter = 0
    for name in layouts.names():
        row = f"{name:<10}"
        for capture in captures.values():

            def one(name: str = name, capture: Image.Image | None = capture) -> None:
                nonlocal counter
                counter += 1
                card = Card(
                    title=f"How we render social cards {counter} fast",
                    site="example.org",
                    subtitle="Typography, caching and captures",
                )
                render_card(card, layouts.get(name), fonts, capture)

            one()  # warm the static layers
            row += f"{timed(one, args.repeat):>10.1f}"
        print(row)

    def fit_ms(text: str) -> float:
        # Fitted texts are kept: each run starts from a font set that has fitted nothing.
        return timed(
            lambda: (
                forget(fonts)
                or fit(
                    text,
                    fonts=fonts,
                    weight="bold",
                    width=1040,
                    height=300,
                    max_size=80,
                    min_size=40,
                    max_lines=3,
                    line_height=1.12,
                )
            ),
            args.repeat,
        )

    print("\nfit() per script, ms")
    for label, title in TITLES:
        print(f"  {label:<12}{fit_ms(title):>8.1f}")
    short = fit_ms("Hello world")
    print("\npathological fit(), ms")
    worst = 0.0
    for label, text in PATHOLOGICAL.items():
        ms = fit_ms(text)
        worst = max(worst, ms)
        print(f"  {label:<22}{ms:>8.1f}")
    print(
        f"\nworst pathological / 'Hello world': {worst / short:.1f}x ({worst:.1f} / {short:.2f} ms)"
    )


if __name__ == "__main__":
    main()
