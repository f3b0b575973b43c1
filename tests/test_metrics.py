"""Requests' figures kept as plain numbers reach the instruments before anyone reads them."""

from __future__ import annotations

import asyncio
import itertools

from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from ogshot import metrics

from .test_ops import value

durations = st.lists(
    st.one_of(
        st.sampled_from(metrics._DURATIONS),  # exactly on a bound: the bound's own bucket
        st.floats(min_value=0, max_value=100, allow_nan=False),
    ),
    max_size=40,
)


_routes = itertools.count()


@settings(max_examples=150, deadline=None)
@given(values=durations)
def test_durations_kept_then_handed_over_match_one_by_one(values: list[float]) -> None:
    one_by_one = Histogram(
        "d", "durations", buckets=metrics._DURATIONS, registry=CollectorRegistry()
    )
    figures = metrics.RequestFigures(shared=False)
    route = f"/durations-{next(_routes)}"
    for v in values:
        one_by_one.observe(v)
        figures.request_done(route, 200, v, None)
    figures.flush()
    handed = metrics._child(metrics.REQUEST_DURATION, route)
    assert [b.get() for b in handed._buckets] == [b.get() for b in one_by_one._buckets]
    assert handed._sum.get() == one_by_one._sum.get()


def test_kept_figures_reach_the_registry_whenever_it_is_read() -> None:
    labels = {"route": "/kept-figures", "status": "299"}
    before = REGISTRY.get_sample_value("ogshot_requests_total", labels) or 0.0
    metrics.request_done("/kept-figures", 299, 0.003, "hit")
    metrics.request_done("/kept-figures", 299, 0.2, None)
    # No sample, no event loop turn: reading the registry is what hands them over.
    assert REGISTRY.get_sample_value("ogshot_requests_total", labels) == before + 2
    count = REGISTRY.get_sample_value(
        "ogshot_request_duration_seconds_bucket", {"route": "/kept-figures", "le": "0.005"}
    )
    assert count is not None and count >= 1


def test_shared_figures_reach_the_files_within_one_loop_turn() -> None:
    """In multiprocess mode another worker reads the files, not this process's registry."""
    figures = metrics.RequestFigures(shared=True)
    child = metrics._child(metrics.REQUESTS, "/shared-figures", "200")

    async def answer() -> tuple[float, float]:
        before = child._value.get()
        figures.request_done("/shared-figures", 200, 0.001, None)
        figures.request_done("/shared-figures", 200, 0.001, None)
        await asyncio.sleep(0)
        return before, child._value.get()

    before, after = asyncio.run(answer())
    assert after == before + 2


def test_requests_in_progress_counts_the_scrape_itself(client: TestClient) -> None:
    assert client.get("/og.png", params={"title": "In progress"}).status_code == 200
    text = client.get("/metrics").text
    assert value(text, "ogshot_requests_in_progress") == 1
