"""The detector's latency histograms: their one-call steps against the step-by-step forms
they replaced (the same buckets and quantiles; the same bytes where nothing is rescaled)."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.detect.stats import (
    _PRUNE_BELOW,
    _REBASE_FROM,
    DecayingHistogram,
    WindowHistogram,
    _bucket_of,
)

_WEIGHT = struct.Struct("<id")


def added_pair_by_pair(
    histogram: DecayingHistogram, seconds: float, now: float, half_life: float
) -> DecayingHistogram:
    """DecayingHistogram.add as it was written first: every weight decayed into a dict at
    every add, sorted, packed (scale 1 throughout)."""
    updated_at = histogram.updated_at
    factor = 0.5 ** ((now - updated_at) / half_life) if now > updated_at else 1.0
    weights: dict[int, float] = {}
    for index, weight in histogram.buckets:
        if weight * factor >= _PRUNE_BELOW:
            weights[index] = weight * factor
    index = _bucket_of(seconds)
    weights[index] = weights.get(index, 0.0) + 1.0
    buckets = tuple(sorted(weights.items()))
    return DecayingHistogram.restore(buckets, max(now, updated_at))


def same_distribution(lazy: DecayingHistogram, eager: DecayingHistogram) -> None:
    assert lazy.indexes == eager.indexes and lazy.updated_at == eager.updated_at
    assert lazy.total == pytest.approx(eager.total, rel=1e-9)
    for (_, weight), (_, expected) in zip(lazy.buckets, eager.buckets, strict=True):
        assert weight == pytest.approx(expected, rel=1e-9)
    for q in (0.5, 0.95):
        # A running weight on the quantile's very target (a tie) goes either way by rounding.
        if not _on_a_tie(eager, q):
            assert lazy.quantile(q) == eager.quantile(q)


def _on_a_tie(histogram: DecayingHistogram, q: float) -> bool:
    running = itertools.accumulate(weight for _, weight in histogram.buckets)
    return any(abs(sum_ - q * histogram.total) <= 1e-9 * histogram.total for sum_ in running)


latency = st.one_of(
    st.sampled_from([0.0005, 0.03, 0.05, 0.061, 0.2]),
    st.floats(min_value=0.0, max_value=30.0, allow_nan=False),
)


@given(
    st.lists(st.tuples(latency, st.floats(min_value=0.0, max_value=50_000.0)), max_size=60),
    st.sampled_from([60.0, 3600.0, 21_600.0]),
)
def test_add_gives_the_distribution_of_decaying_every_weight(
    steps: list[tuple[float, float]], half_life: float
) -> None:
    # Gaps up to many half-lives: buckets decay below the pruning weight and leave, and the
    # scale passes its bound and is brought back to 1.
    lazy, eager = DecayingHistogram(), DecayingHistogram()
    now = 1_700_000_000.0
    for seconds, gap in steps:
        now += gap
        lazy = lazy.add(seconds, now, half_life)
        eager = added_pair_by_pair(eager, seconds, now, half_life)
        same_distribution(lazy, eager)
        assert 1.0 <= lazy.scale < _REBASE_FROM


def test_without_decay_the_weights_are_counts_bit_for_bit() -> None:
    lazy, eager = DecayingHistogram(), DecayingHistogram()
    for seconds in (0.05, 0.061, 0.05, 0.2, 0.0005, 0.05):
        lazy = lazy.add(seconds, 1_700_000_000.0, 3600.0)
        eager = added_pair_by_pair(eager, seconds, 1_700_000_000.0, 3600.0)
    assert lazy == eager  # scale 1: the same bytes and floats
    assert lazy.buckets == tuple(
        (_bucket_of(s), n) for s, n in ((0, 1.0), (0.05, 3.0), (0.061, 1.0), (0.2, 1.0))
    )


def test_a_year_of_adds_keeps_the_scale_bounded_and_the_weights_right() -> None:
    # One sample an hour for a year at a 6 h half-life: ~1,460 half-lives, 2**1460 overflows a
    # float; the scale is rebased every 64 of them.
    lazy, eager = DecayingHistogram(), DecayingHistogram()
    now = 1_700_000_000.0
    for hour in range(365 * 24):
        seconds = 0.06 if hour % 20 else 0.2
        lazy = lazy.add(seconds, now + hour * 3600.0, 21_600.0)
        eager = added_pair_by_pair(eager, seconds, now + hour * 3600.0, 21_600.0)
        assert lazy.scale < _REBASE_FROM
    same_distribution(lazy, eager)
    assert lazy.total == pytest.approx(1 / (1 - 0.5 ** (1 / 6)), rel=1e-6)  # the series' sum


def test_a_sample_after_a_long_silence_stands_alone() -> None:
    # 10**6 half-lives: 2.0 ** that would overflow; every old weight is below the pruning one.
    histogram = DecayingHistogram().add(0.2, 1_700_000_000.0, 60.0)
    histogram = histogram.add(0.05, 1_700_000_000.0 + 6e7, 60.0)
    assert histogram.buckets == ((_bucket_of(0.05), 1.0),) and histogram.scale == 1.0


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


@given(
    st.lists(st.tuples(latency, st.floats(min_value=0.0, max_value=50_000.0)), max_size=30),
    st.integers(min_value=1, max_value=8),
    st.sampled_from([60.0, 21_600.0]),
)
def test_learning_a_batch_gives_the_floats_of_adding_each_in_turn(
    steps: list[tuple[float, float]], batch: int, half_life: float
) -> None:
    now, timed = 1_700_000_000.0, []
    for seconds, gap in steps:
        now += gap
        timed.append((now, seconds))
    one_by_one = batched = DecayingHistogram()
    for at, seconds in timed:
        one_by_one = one_by_one.add(seconds, at, half_life)
    for start in range(0, len(timed), batch):
        batched = batched.learned(timed[start : start + batch], half_life)
    assert (batched.indexes, batched.scaled, batched.scale) == (
        one_by_one.indexes,
        one_by_one.scaled,
        one_by_one.scale,
    )
    assert batched == one_by_one
