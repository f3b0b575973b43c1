"""The measures the renderer picks text colours and scrims from, against plain computations."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ogshot.contrast import _channel, extremes, relative_luminance
from ogshot.layouts import HEIGHT, WIDTH

rects = st.lists(
    st.tuples(
        st.integers(-50, WIDTH + 50),
        st.integers(-50, HEIGHT + 50),
        st.integers(1, 400),
        st.integers(1, 200),
    ).map(lambda r: (r[0], r[1], r[0] + r[2], r[1] + r[3])),
    min_size=1,
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), spread=st.integers(0, 255), boxes=rects)
def test_extremes_are_the_lowest_and_highest_value_of_each_channel_under_the_rects(
    seed: int, spread: int, boxes: list[tuple[int, int, int, int]]
) -> None:
    rng = random.Random(seed)
    # Values within a band of the range, so that the ends are not always 0 and 255.
    base = rng.randrange(0, 256 - spread)
    noise = bytes(base + rng.randrange(spread + 1) for _ in range(300 * 3))
    image = Image.frombytes("RGB", (20, 15), noise).resize((WIDTH, HEIGHT), Image.NEAREST)
    lo, hi = [255, 255, 255], [0, 0, 0]
    for left, top, right, bottom in boxes:
        box = (max(0, left), max(0, top), min(WIDTH, right), min(HEIGHT, bottom))
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        for i, (a, b) in enumerate(image.crop(box).getextrema()):
            lo[i], hi[i] = min(lo[i], a), max(hi[i], b)
    assert extremes(image, boxes) == (tuple(lo), tuple(hi))


def test_luminance_of_8_bit_colours_is_the_wcag_formula_exactly() -> None:
    for c in range(256):
        expected = 0.2126 * _channel(c) + 0.7152 * _channel(0) + 0.0722 * _channel(255)
        assert relative_luminance((c, 0, 255)) == expected
        assert relative_luminance((float(c), 0.0, 255.0)) == expected
