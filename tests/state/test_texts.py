"""The state file's JSON texts a save builds by hand are the texts json writes: the file's
format does not depend on which encoder wrote it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.notifications import Severity
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.codec import (
    baseline_row,
    baseline_text,
    baseline_to_json,
    bucket_to_json,
    samples_row,
    samples_text,
    series_core_text,
    series_core_to_json,
    series_from_parts,
    series_head_to_json,
)
from monitor.detect.history import (
    EMPTY_HOUR,
    HourRow,
    add_result,
    bucket_of,
    hour_text,
    hour_to_json,
    pack_hour,
    packed_text,
    unpack_hour,
)
from monitor.detect.series import AlertState, AlertStatus, Sample, SeriesState
from monitor.detect.stats import DecayingHistogram

_dumps = json.JSONEncoder(separators=(",", ":")).encode

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=1e9, max_value=2e9),
)
reasons = st.one_of(st.just(""), st.text(max_size=12))
samples = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=2e9),
        st.sampled_from([o.value for o in Outcome]),
        st.one_of(st.none(), st.floats(min_value=0, max_value=30), numbers),
        reasons,
    ),
    max_size=20,
)
alerts = st.dictionaries(
    st.text(max_size=8),
    st.builds(
        AlertState,
        status=st.sampled_from(list(AlertStatus)),
        since=numbers,
        fired_at=st.one_of(st.none(), numbers),
        severity=st.sampled_from(list(Severity)),
        summary=st.text(max_size=10),
        details=st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text())),
    ),
    max_size=2,
)


def _state(draw: Any) -> SeriesState:
    rows = sorted(draw(samples), key=lambda row: row[0])
    baseline = DecayingHistogram()
    for latency in draw(st.lists(st.floats(min_value=0.0005, max_value=20), max_size=8)):
        baseline = baseline.add(latency, draw(st.floats(min_value=0, max_value=2e9)), 86400.0)
    return SeriesState.from_samples(
        (Sample(*row) for row in rows),
        empty_streak=draw(st.integers(min_value=0, max_value=10**6)),
        failure_streak=draw(st.integers(min_value=0, max_value=10)),
        ok_streak=draw(st.integers(min_value=0, max_value=10**9)),
        baseline=baseline,
        learned_until=draw(numbers),
        slow_burn_quiet_until=draw(numbers),
        window_p95=draw(st.one_of(st.none(), numbers)),
        alerts=draw(alerts),
    )


states = st.composite(_state)()


@given(states)
def test_a_head_and_baseline_read_as_json_writes_them(state: SeriesState) -> None:
    assert series_core_text(state) == _dumps(series_core_to_json(state))
    assert baseline_text(state) == _dumps(baseline_to_json(state))


@given(states)
def test_a_row_of_samples_reads_as_json_writes_it(state: SeriesState) -> None:
    for bucket in state.buckets:
        assert samples_text(bucket) == _dumps(bucket_to_json(bucket))
        assert samples_text(bucket.since(len(bucket) - 1)) == _dumps(
            bucket_to_json(bucket.since(len(bucket) - 1))
        )


@given(states, st.integers(min_value=0, max_value=64))
def test_a_row_of_samples_packed_or_as_text_reads_back_as_its_samples(
    state: SeriesState, cut: int
) -> None:
    """A save stores a row's samples packed unless one has a reason (then as JSON text);
    either reads back as the same samples."""
    head = series_head_to_json(SeriesState())
    for bucket in state.buckets:
        offset = min(cut, len(bucket) - 1)
        expected = bucket.since(offset)
        row = samples_row(bucket, offset)
        assert isinstance(row, str) == any(sample.reason for sample in expected)
        stored = row if isinstance(row, bytes) else json.loads(row)
        assert series_from_parts(head, None, [stored]).samples == expected


@given(states)
def test_a_packed_baseline_reads_back_as_its_json(state: SeriesState) -> None:
    """The detail row a save writes (packed) restores the baseline and how far it learned,
    as baseline_to_json's text does: DecayingHistogram.packed's layout is the codec's."""
    head = series_core_to_json(state)
    packed = series_from_parts(head, baseline_row(state), [])
    as_text = series_from_parts(head, json.loads(baseline_text(state)), [])
    # (Equal to each other; to the state's only up to its running total's rounding, which a
    # restore sums afresh whichever way the buckets were stored.)
    assert packed.baseline == as_text.baseline
    assert _dumps(baseline_to_json(packed)) == _dumps(baseline_to_json(state))


def test_a_packed_baseline_of_broken_length_is_refused() -> None:
    state = SeriesState()
    with pytest.raises(ValueError, match="packed baseline of 20 bytes"):
        series_from_parts(series_core_to_json(state), b"x" * 20, [])


def test_packed_samples_that_are_not_whole_records_are_refused() -> None:
    head = series_head_to_json(SeriesState())
    with pytest.raises(ValueError, match="packed samples of 20 bytes"):
        series_from_parts(head, None, [b"x" * 20])
    with pytest.raises(ValueError, match="unreadable series state"):
        series_from_parts(head, None, [b"\0" * 16 + b"\xff"])  # no such outcome


counts = st.dictionaries(st.text(max_size=10), st.integers(min_value=0, max_value=10**7))


@given(
    st.builds(
        HourRow,
        outcomes=counts,
        maintenance=counts,
        latency=st.dictionaries(
            st.integers(min_value=0, max_value=65), st.integers(min_value=1, max_value=10**6)
        ),
    )
)
def test_an_hour_row_reads_as_json_writes_it(row: HourRow) -> None:
    assert hour_text(row) == _dumps(hour_to_json(row))


known = st.dictionaries(
    st.sampled_from([o.value for o in Outcome]), st.integers(min_value=1, max_value=2**32 - 1)
)


@given(
    st.builds(
        HourRow,
        outcomes=known,
        maintenance=known,
        latency=st.dictionaries(
            st.integers(min_value=0, max_value=65), st.integers(min_value=1, max_value=2**32 - 1)
        ),
    )
)
def test_a_packed_hour_row_is_the_row_and_writes_its_text(row: HourRow) -> None:
    packed = pack_hour(row)
    assert unpack_hour(packed) == row
    assert packed_text(packed) == hour_text(row)  # outcomes in the same order too


@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(Outcome)),
            st.floats(min_value=0, max_value=100),
            st.booleans(),
            st.booleans(),
        ),
        max_size=40,
    )
)
def test_counting_into_a_packed_row_counts_as_the_dicts_did(
    probes: list[tuple[Outcome, float, bool, bool]],
) -> None:
    packed = EMPTY_HOUR
    outcomes: dict[str, int] = {}
    maintenance: dict[str, int] = {}
    latency: dict[int, int] = {}
    for outcome, duration, trusted, inside in probes:
        result = ProbeResult("t", "c", outcome, duration, 0.0, latency_trusted=trusted)
        before = packed
        packed = add_result(packed, result, in_maintenance=inside)
        assert packed is not before  # a new object: a snapshot keeps the row it took
        counted = maintenance if inside else outcomes
        counted[outcome.value] = counted.get(outcome.value, 0) + 1
        if (
            not inside
            and trusted
            and outcome
            not in (
                Outcome.TIMEOUT,
                Outcome.CONNECT_ERROR,
                Outcome.TLS_ERROR,
                Outcome.WRONG_CONTENT,
            )
        ):
            bucket = bucket_of(duration)
            latency[bucket] = latency.get(bucket, 0) + 1
    assert unpack_hour(packed) == HourRow(outcomes, maintenance, latency)
    assert packed_text(packed) == _dumps(hour_to_json(HourRow(outcomes, maintenance, latency)))


def test_a_row_recmon_cannot_pack_is_refused() -> None:
    with pytest.raises(ValueError, match="not packable"):
        pack_hour(HourRow({"an_outcome_of_a_newer_version": 1}))
    with pytest.raises(ValueError, match="not packable"):
        pack_hour(HourRow({"ok": 2**32}))
