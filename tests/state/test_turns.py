"""Periodic saves in turns: a quiet series (every sample since its last write ok, no alert)
is written on its turn, one save in SAVE_TURNS; anything else at every save. A crash loses at
most SAVE_TURNS saves of a quiet series, and the file holds each series whole as at one save."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerting.tracker import AlertTracker
from monitor.app.history import HistoryRecorder
from monitor.app.persist import SAVE_TURNS, Persistence, _quiet, series_changes, turns
from monitor.config.model import AlertsSpec
from monitor.core.clock import ManualClock
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.codec import series_from_parts
from monitor.detect.history import hour_of
from monitor.detect.series import Bucket, Sample, SeriesState
from monitor.state.store import StateStore

T0 = 1_700_000_000.0
KEYS = (("acme", "search"), ("acme", "recommendations"), ("globex", "search"))


def tracker_of(minutes: int) -> AlertTracker:
    tracker = AlertTracker(AlertsSpec(), counting_checks={"recommendations"}, parents={})
    for i in range(minutes):
        for tenant, check in KEYS:
            tracker.observe(
                ProbeResult(tenant, check, Outcome.OK, 0.06 + i / 1000, 0.0), T0 + i * 60
            )
    return tracker


def probe(tracker: AlertTracker, key: tuple[str, str], outcome: Outcome, minute: int) -> None:
    tracker.observe(ProbeResult(*key, outcome, 0.05, 0.0), T0 + minute * 60)


def test_a_bucket_tells_whether_its_samples_from_an_offset_on_are_ok() -> None:
    outcomes = ["empty", "ok", "ok", "timeout", "ok", "ok"]
    bucket = Bucket.of(Sample(T0 + i, o, 0.05, "") for i, o in enumerate(outcomes))
    assert [bucket.all_ok_since(i) for i in range(7)] == [False] * 4 + [True] * 3


def test_turns_are_runs_of_the_sorted_keys_of_even_sizes() -> None:
    keys = [(f"t{i:03}", check) for i in range(23) for check in ("b", "a")]
    turn = turns(reversed(keys), 5)
    assert turn.keys() == set(keys)
    ordered = [turn[key] for key in sorted(keys)]
    assert ordered == sorted(ordered) and set(ordered) == set(range(5))
    sizes = [ordered.count(t) for t in range(5)]
    assert max(sizes) - min(sizes) <= 1


def test_a_quiet_series_not_in_its_turn_is_left_as_the_file_holds_it() -> None:
    tracker = tracker_of(20)
    _, saved = series_changes({}, tracker.series)
    for key in KEYS:
        probe(tracker, key, Outcome.OK, 20)
    for minute in range(21, 25):  # five minutes: its baseline learns (every 5 m) and changes
        probe(tracker, ("acme", "search"), Outcome.OK, minute)
    probe(tracker, ("globex", "search"), Outcome.EMPTY, 21)  # not quiet: written
    write, after = series_changes(saved, tracker.series, baseline_every=300.0, later=set(KEYS))
    assert [h[:2] for h in write.heads] == [("globex", "search")]
    assert {i[:2] for i in write.items} == {("globex", "search")}
    assert not write.details  # its baseline: written less than 300 s ago
    for key in KEYS[:2]:
        assert after[key] is saved[key]
    # Its turn: written though quiet, its baseline too.
    turn = set(KEYS) - {("acme", "search")}
    write, after = series_changes(after, tracker.series, baseline_every=300.0, later=turn)
    assert [h[:2] for h in write.heads] == [("acme", "search")]
    assert [d[:2] for d in write.details] == [("acme", "search")]
    assert [i[:3] for i in write.items] == [("acme", "search", T0 + 20 * 60)]
    # Left for later, never written: a series the file does not hold is written.
    write, _ = series_changes({}, tracker.series, later=set(KEYS))
    assert len(write.heads) == 3


def test_a_series_with_an_alert_in_its_state_or_its_head_as_written_is_written() -> None:
    """Ok probes can keep an alert pending or firing (or end it): its head is written at
    every save while its state or the file holds an alert, and then left for its turn."""
    key = ("acme", "recommendations")  # a counting check: empty answers page
    tracker = tracker_of(20)
    minute = 20
    while not tracker.series[key].alerts:
        assert minute < 40
        probe(tracker, key, Outcome.EMPTY, minute)
        minute += 1
    _, saved = series_changes({}, tracker.series)
    later = set(KEYS)
    written = 0
    while True:
        assert minute < 80
        probe(tracker, key, Outcome.OK, minute)
        minute += 1
        had = bool(tracker.series[key].alerts)
        write, saved = series_changes(saved, tracker.series, later=later)
        if not write.heads:
            break
        assert [h[:2] for h in write.heads] == [key]
        written += 1
        if not had:  # the resolved head written once: then quiet
            probe(tracker, key, Outcome.OK, minute)
            minute += 1
            write, saved = series_changes(saved, tracker.series, later=later)
            assert not write.heads and not write.items
            break
    assert written >= 2 and not tracker.series[key].alerts


def window(state: SeriesState) -> tuple[object, ...]:
    """A series' memory but its baseline, which a periodic save writes at most every
    BASELINE_EVERY_S (a restored older one learns again what is still in the window)."""
    return (
        state.samples,
        state.empty_streak,
        state.failure_streak,
        state.ok_streak,
        state.slow_burn_quiet_until,
        state.window_p95,
        dict(state.alerts),
    )


def _monitor(clock: ManualClock) -> object:
    from prometheus_client import CollectorRegistry

    from monitor.app.assembly import build_monitor
    from tests.helpers import load

    return build_monitor(load(), clock=clock, registry=CollectorRegistry())  # type: ignore[arg-type]


def _ok_count(store: StateStore, tenant: str, check: str, hour: int) -> int:
    rows = store.history_rows(tenant, check, [hour])
    return int(json.loads(rows[0][1])["o"].get("ok", 0)) if rows else 0


async def test_a_crash_loses_at_most_the_turns_of_a_quiet_series(tmp_path: Path) -> None:
    """Periodic saves, then a crash (no final save): each series restores as it was at one of
    the last SAVE_TURNS saves, whole (its head and samples from one save; its baseline as
    ever at most BASELINE_EVERY_S older); a series that failed since its last write, as at
    the last save. Its hour rows likewise lag by at
    most SAVE_TURNS saves; the final save writes everything."""
    from monitor.app.service import Monitor

    clock = ManualClock(start=T0)
    path = tmp_path / "state.db"
    store = StateStore.open(path)
    monitor = _monitor(clock)
    assert isinstance(monitor, Monitor)
    history = HistoryRecorder(clock)
    persistence = Persistence(store, monitor.hub, monitor.metrics, monitor.tenant_source, history)
    keys = [(t, c) for t in ("acme", "globex") for c in ("search", "recommendations")]
    memories = []
    for minute in range(13):
        clock.advance(60)
        for tenant, check in keys:
            failing = (tenant, check) == ("globex", "search") and minute == 12
            outcome = Outcome.HTTP_ERROR if failing else Outcome.OK
            result = ProbeResult(tenant, check, outcome, 0.06, clock.time())
            monitor.hub.observe(result)
            history.observe(result)
        await persistence.save_async()
        memories.append(monitor.hub.memory().series)
    hour = hour_of(clock.time())
    store.close()  # a crash: no final save

    again = StateStore.open(path)
    restored = again.load_series(series_from_parts)
    for key in keys:
        recent = [window(memory[key]) for memory in memories[-SAVE_TURNS:]]
        assert window(restored[key]) in recent, key
    assert window(restored[("globex", "search")]) == window(memories[-1][("globex", "search")])
    # Some quiet series was left for its turn at the last save: the turns are at work.
    assert any(window(restored[key]) != window(memories[-1][key]) for key in keys)
    truth = {key: len(memories) for key in keys}
    for key in keys:
        ok = _ok_count(again, *key, hour)
        assert truth[key] - SAVE_TURNS <= ok <= truth[key]
    assert any(_ok_count(again, *key, hour) < truth[key] for key in keys)
    again.close()

    # The final save (shutdown): every series and hour row as it is.
    store = StateStore.open(path)
    persistence = Persistence(store, monitor.hub, monitor.metrics, monitor.tenant_source, history)
    persistence.save(counters=False)
    assert store.load_series(series_from_parts) == monitor.hub.memory().series
    expected = {key: truth[key] - (key == ("globex", "search")) for key in keys}
    assert {key: _ok_count(store, *key, hour) for key in keys} == expected
    store.close()


@settings(max_examples=200)
@given(
    outcomes=st.lists(st.sampled_from([Outcome.OK, Outcome.OK, Outcome.EMPTY, Outcome.TIMEOUT])),
    streak=st.none() | st.integers(0, 30),
)
def test_quiet_reads_the_ok_streak_as_the_samples_say(
    outcomes: list[Outcome], streak: int | None
) -> None:
    """Whether every sample after a time is ok, from the ok streak (one lookup), equals
    reading the samples, for the detector's states and for states whose streak counts fewer
    than their run of ok samples (restored from a file written before, say: then the samples
    are read)."""
    tracker = AlertTracker(AlertsSpec(), counting_checks={"search"}, parents={})
    key = ("acme", "search")
    for i, outcome in enumerate(outcomes):
        tracker.observe(ProbeResult(*key, outcome, 0.05, 0.0), T0 + i * 60)
    state = tracker.series.get(key, SeriesState())
    if streak is not None:  # at most the samples' own run of ok ones (never more, as counted)
        run = len(state.samples) - len(
            "".join("x" if s.outcome != "ok" else "o" for s in state.samples).rstrip("o")
        )
        state = SeriesState.from_samples(state.samples, ok_streak=min(streak, run))
    times = [T0 - 60] + [s.at for s in state.samples]
    for stored in times:
        expected = all(s.outcome == "ok" for s in state.samples if s.at > stored)
        assert _quiet(state, stored) is expected


async def test_a_failed_save_keeps_its_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A periodic save that fails is done again with its turn: the next save writes that
    turn's quiet series, which would otherwise wait SAVE_TURNS saves more."""
    clock = ManualClock(start=T0)
    store = StateStore.open(tmp_path / "state.db")
    monitor = _monitor(clock)
    persistence = Persistence(store, monitor.hub, monitor.metrics, monitor.tenant_source)  # type: ignore[attr-defined]
    keys = [(f"t{i}", check) for i in range(5) for check in ("search", "recommendations")]

    def minute() -> None:
        clock.advance(60)
        for key in keys:
            monitor.hub.observe(ProbeResult(*key, Outcome.OK, 0.06, clock.time()))  # type: ignore[attr-defined]

    minute()
    await persistence.save_async()  # every series' first write, whatever its turn: turn 0
    written: list[tuple[str, str]] = []
    real = store.write_series
    failing = [True]

    def recording(write: object) -> None:
        if failing and failing.pop():
            raise sqlite3.OperationalError("disk I/O error")
        written.extend((tenant, check) for tenant, check, _ in write.heads)  # type: ignore[attr-defined]
        real(write)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "write_series", recording)
    minute()
    with pytest.raises(sqlite3.OperationalError):
        await persistence.save_async()  # turn 1, failed
    await persistence.save_async()
    turn = turns(keys)
    assert set(written) == {key for key in keys if turn[key] == 1}
    store.close()
