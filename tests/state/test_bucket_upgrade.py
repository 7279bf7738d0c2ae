"""A state file written by the detector before buckets (one row per sample, heads without
"from") loads into the incremental detector, keeps its alerts firing with the verdicts the old
detector would have given, and is rewritten in buckets in place by the first save."""

from __future__ import annotations

import json
from pathlib import Path

from monitor.alerting.tracker import AlertTracker
from monitor.app.persist import series_changes
from monitor.config.model import AlertsSpec
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.codec import series_from_parts
from monitor.detect.rules import RuleSet
from monitor.detect.series import AlertStatus, Bucket
from monitor.state.store import SeriesWrite, StateStore
from tests.detect import reference_detector as reference

T0 = 1_700_000_000.0
SERIES = {("acme", "recommendations"): Outcome.EMPTY, ("acme", "search"): Outcome.TIMEOUT}


def _result(key: tuple[str, str], outcome: Outcome) -> ProbeResult:
    reason = "" if outcome is Outcome.OK else f"{outcome.value} happened"
    return ProbeResult(*key, outcome, 0.06, 0.0, status=200, reason=reason)


def _todays_save(path: Path, states: dict[tuple[str, str], reference.SeriesState]) -> None:
    """What app/persist.py wrote before buckets: a head, a detail, a row per sample."""
    store = StateStore.open(path)
    store.write_series(
        SeriesWrite(
            heads=[
                (t, c, json.dumps(reference.series_core_to_json(s))) for (t, c), s in states.items()
            ],
            details=[
                (t, c, json.dumps(reference.baseline_to_json(s))) for (t, c), s in states.items()
            ],
            items=[
                (t, c, sample.at, json.dumps(reference.sample_to_json(sample)))
                for (t, c), s in states.items()
                for sample in s.samples
            ],
        )
    )
    store.close()


def test_a_file_of_per_sample_rows_loads_keeps_its_alerts_firing_and_is_rewritten_in_buckets(
    tmp_path: Path,
) -> None:
    tracker = AlertTracker(AlertsSpec(), counting_checks={"search", "recommendations"}, parents={})
    rules: dict[tuple[str, str], RuleSet] = {k: tracker.rulebook.for_series(*k) for k in SERIES}
    old = {key: reference.SeriesState() for key in SERIES}
    now = T0
    # 20 healthy minutes at a 1 s interval (windows full, a baseline learned), then an outage.
    for second in range(1260):
        now = T0 + second
        for key, failing in SERIES.items():
            outcome = failing if second >= 1200 else Outcome.OK
            old[key], _ = reference.observe(old[key], _result(key, outcome), now, rules[key])
    assert {k: s.firing().keys() for k, s in old.items()} == {
        ("acme", "recommendations"): {"empty_results"},
        ("acme", "search"): {"failures"},
    }
    path = tmp_path / "state.db"
    _todays_save(path, old)

    store = StateStore.open(path)
    tracker.series.update(store.load_series(series_from_parts))
    assert set(tracker.series) == set(SERIES)
    for key, state in tracker.series.items():
        assert state.samples == old[key].samples
        assert state.alerts == old[key].alerts and state.baseline == old[key].baseline

    # The outage goes on for a minute, then recovers: the same events at the same times.
    for second in range(1260, 1500):
        now = T0 + second
        for key, failing in SERIES.items():
            outcome = failing if second < 1320 else Outcome.OK
            old[key], expected = reference.observe(old[key], _result(key, outcome), now, rules[key])
            events = tracker.observe(_result(key, outcome), now)
            assert [(e.kind, e.rule, e.variant, e.summary) for e in events] == [
                (e.kind, e.rule, e.variant, e.summary) for e in expected
            ]
            if second < 1320:  # still firing, never resolved and paged again
                assert tracker.series[key].alerts[next(iter(old[key].alerts))].status is (
                    AlertStatus.FIRING
                )
    assert all(not s.alerts for s in tracker.series.values())
    assert {k: s.samples for k, s in tracker.series.items()} == {
        k: s.samples for k, s in old.items()
    }

    # The first save after a restore writes every series afresh: bucket rows (packed samples,
    # or JSON where a sample has a reason), no sample rows.
    write, _ = series_changes({}, tracker.series)
    store.write_series(write)
    rows = [
        Bucket.of_records(item) if isinstance(item, bytes) else json.loads(item)["b"]
        for (item,) in store.connection.execute("SELECT item FROM series_items").fetchall()
    ]
    assert rows and all(len(row) for row in rows)
    assert any(isinstance(row, Bucket) for row in rows)
    assert len(rows) < sum(len(s.samples) for s in tracker.series.values()) / 30
    assert store.load_series(series_from_parts) == tracker.series
    store.close()
