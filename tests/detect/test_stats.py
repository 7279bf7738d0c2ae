"""The detector's latency histograms: their one-call steps against the step-by-step forms
they replaced (the same bytes, the same floats)."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from monitor.detect.stats import (
    _PRUNE_BELOW,
    DecayingHistogram,
    WindowHistogram,
    _bucket_of,
    _packed,
    _quantile,
)

_WEIGHT = struct.Struct("<id")


def added_pair_by_pair(
    histogram: DecayingHistogram, seconds: float, now: float, half_life: float
) -> DecayingHistogram:
    """DecayingHistogram.add as it was written first: decayed into a dict, sorted, packed."""
    updated_at = histogram.updated_at
    factor = 0.5 ** ((now - updated_at) / half_life) if now > updated_at else 1.0
    weights: dict[int, float] = {}
    for index, weight in _WEIGHT.iter_unpack(histogram.packed):
        if weight * factor >= _PRUNE_BELOW:
            weights[index] = weight * factor
    index = _bucket_of(seconds)
    weights[index] = weights.get(index, 0.0) + 1.0
    buckets = tuple(sorted(weights.items()))
    total = sum(weights.values())
    return DecayingHistogram(
        _packed(buckets), max(now, updated_at), total, _quantile(buckets, total, 0.95)
    )


latency = st.one_of(
    st.sampled_from([0.0005, 0.03, 0.05, 0.061, 0.2]),
    st.floats(min_value=0.0, max_value=30.0, allow_nan=False),
)


@given(
    st.lists(st.tuples(latency, st.floats(min_value=0.0, max_value=50_000.0)), max_size=60),
    st.sampled_from([60.0, 3600.0, 21_600.0]),
)
def test_add_gives_the_bytes_and_floats_of_the_pair_by_pair_add(
    steps: list[tuple[float, float]], half_life: float
) -> None:
    # Gaps up to many half-lives: buckets decay below the pruning weight and leave.
    fast, slow = DecayingHistogram(), DecayingHistogram()
    now = 1_700_000_000.0
    for seconds, gap in steps:
        now += gap
        fast = fast.add(seconds, now, half_life)
        slow = added_pair_by_pair(slow, seconds, now, half_life)
        assert fast == slow  # packed bytes, updated_at, total and p95, bit for bit
        assert fast.quantile(0.5) == slow.quantile(0.5)


def stepwise(
    histogram: WindowHistogram, joining: list[int], leaving: list[int]
) -> WindowHistogram | None:
    """added() for each joining, then removed() for each leaving; None if one was not in."""
    try:
        for index in joining:
            histogram = histogram.added(index)
        for index in leaving:
            histogram = histogram.removed(index)
    except ValueError:
        return None
    return histogram


def moved(
    histogram: WindowHistogram, joining: list[int], leaving: list[int]
) -> WindowHistogram | None:
    try:
        return histogram.moved(joining, leaving)
    except ValueError:
        return None


@given(
    st.lists(st.integers(min_value=0, max_value=40), max_size=30),
    st.lists(st.integers(min_value=0, max_value=40), max_size=3),
    st.lists(st.integers(min_value=0, max_value=40), max_size=3),
)
def test_moved_is_added_then_removed(
    start: list[int], joining: list[int], leaving: list[int]
) -> None:
    histogram = WindowHistogram()
    for index in start:
        histogram = histogram.added(index)
    # None on both sides: a bucket leaving that was never in raises ValueError in both.
    assert moved(histogram, joining, leaving) == stepwise(histogram, joining, leaving)
