"""The state file: round trips, corruption, other versions."""

from __future__ import annotations

import gc
import json
import logging
import sqlite3
import weakref
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from monitor.alerting.codec import planner_from_json, planner_to_json
from monitor.alerting.planner import PlannerState, Policy, plan
from monitor.alerting.tracker import AlertTracker
from monitor.app.persist import Persistence, series_changes
from monitor.config.model import AlertsSpec, StormSpec
from monitor.core.notifications import Severity
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.codec import (
    baseline_text,
    samples_text,
    series_core_text,
    series_from_json,
    series_from_parts,
    series_to_json,
)
from monitor.detect.content import content_to_json
from monitor.detect.series import AlertEvent, Bucket, EventKind, SeriesState
from monitor.state.store import SCHEMA_VERSION, SeriesKey, StateStore

T0 = 1_700_000_000.0


def busy_tracker() -> AlertTracker:
    tracker = AlertTracker(AlertsSpec(), counting_checks={"recommendations"}, parents={})
    for i in range(40):
        outcome = Outcome.EMPTY if i > 35 else Outcome.OK
        tracker.observe(
            ProbeResult("acme", "recommendations", outcome, 0.06 + i / 1000, 0.0), T0 + i * 60
        )
    return tracker


def save_all(store: StateStore, series: Mapping[SeriesKey, SeriesState]) -> None:
    """A first save: everything written."""
    store.write_series(series_changes({}, series)[0])


def test_series_state_round_trips_through_json() -> None:
    tracker = busy_tracker()
    state = tracker.series[("acme", "recommendations")]
    assert state.alerts  # empty_results is firing
    restored = series_from_json(series_to_json(state))
    assert restored == state


def test_planner_state_round_trips_through_json() -> None:
    event = AlertEvent(
        EventKind.FIRING, "empty_results", "acme", "recommendations", Severity.CRITICAL, T0, T0, "x"
    )
    state, _ = plan(PlannerState(), [event], T0, Policy(StormSpec(), 10), flush=True)
    assert planner_from_json(planner_to_json(state)) == state
    # a storm with its fleet-wide escalation (two incidents, resolved together)
    storm = [
        AlertEvent(
            EventKind.FIRING,
            "empty_results",
            f"t{i}",
            "recommendations",
            Severity.CRITICAL,
            T0,
            T0,
            "x",
        )
        for i in range(10)
    ]
    state, _ = plan(PlannerState(), storm[:5], T0, Policy(StormSpec(), 10))
    state, _ = plan(state, storm[5:], T0 + 1, Policy(StormSpec(), 10))
    (group,) = state.groups.values()
    assert group.escalation is not None and group.opened_with == 5
    assert planner_from_json(planner_to_json(state)) == state
    # a fleet incident with a tenant alert folded under it; a file from before fleet
    # incidents (no "folded") reads as nothing folded
    fleet = AlertEvent(
        EventKind.FIRING, "fleet_empty", None, "recommendations", Severity.CRITICAL, T0, T0, "x"
    )
    state, _ = plan(PlannerState(), [fleet, storm[0]], T0, Policy(StormSpec(), 10))
    assert state.folded == {storm[0].key: fleet.key}
    assert planner_from_json(planner_to_json(state)) == state
    older = planner_to_json(state)
    del older["folded"]
    assert planner_from_json(older).folded == {}
    # a flapping alert: its incidents and its held resolve
    policy = Policy(StormSpec(), 10)
    state, _ = plan(PlannerState(), [event], T0, policy, flush=True)
    state, _ = plan(state, [replace(event, kind=EventKind.RESOLVED)], T0 + 10, policy)
    state, _ = plan(state, [event], T0 + 20, policy, flush=True)
    state, _ = plan(state, [replace(event, kind=EventKind.RESOLVED)], T0 + 30, policy)
    assert state.resolving and len(state.incidents[event.key]) == 2
    assert planner_from_json(planner_to_json(state)) == state


def test_store_saves_and_loads(tmp_path: Path) -> None:
    tracker = busy_tracker()
    store = StateStore.open(tmp_path / "state.db")
    save_all(store, tracker.series)
    store.put("tenants", ["acme"])
    store.close()
    again = StateStore.open(tmp_path / "state.db")
    assert again.load_series(series_from_parts) == tracker.series
    assert again.get("tenants") == ["acme"]
    assert again.get("missing") is None
    again.close()


def test_corrupt_file_is_kept_aside_and_recmon_starts_clean(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.ERROR, logger="recmon.state"):
        store = StateStore.open(path)
    assert store.load_series(series_from_parts) == {}
    store.close()
    aside = list(tmp_path.glob("state.db.bad-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    assert "kept aside" in caplog.text


def test_state_from_another_schema_version_is_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    store = StateStore.open(path)
    store.close()
    assert len(list(tmp_path.glob("state.db.bad-*"))) == 1
    # and the fresh file opens without complaint next time: no crash loop
    StateStore.open(path).close()
    assert len(list(tmp_path.glob("state.db.bad-*"))) == 1


def test_unreadable_rows_are_skipped_not_fatal(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path / "state.db")
    save_all(store, busy_tracker().series)
    with store.transaction() as db:
        db.execute(
            "INSERT INTO series (tenant, check_name, state) "
            "VALUES ('other', 'search', '{\"garbage\": 1}')"
        )
        db.execute("INSERT INTO kv VALUES ('planner', 'not json')")
    assert list(store.load_series(series_from_parts)) == [("acme", "recommendations")]
    assert store.get("planner") is None
    store.close()


def test_an_incident_paged_before_a_crash_still_resolves(tmp_path: Path) -> None:
    """The planner is saved with every page it decides, the detector only now and then: after a
    kill in between, the restarted detector must still know the alert fires, or the fault's
    recovery would never resolve the incident."""
    from prometheus_client import CollectorRegistry

    from monitor.app.assembly import build_monitor
    from monitor.app.service import Monitor
    from monitor.core.clock import ManualClock
    from monitor.core.notifications import Action, Notification
    from tests.helpers import load

    def monitor(clock: ManualClock, sent: list[Notification]) -> Monitor:
        return build_monitor(
            load(),
            clock=clock,
            registry=CollectorRegistry(),
            route=lambda d: sent.extend(d.notifications),
        )

    def probe(m: Monitor, clock: ManualClock, outcome: Outcome) -> None:
        clock.advance(10)
        m.hub.observe(ProbeResult("acme", "recommendations", outcome, 0.06, clock.time()))
        m.hub.tick(flush=True)

    clock = ManualClock()
    store = StateStore.open(tmp_path / "state.db")
    sent: list[Notification] = []
    before = monitor(clock, sent)
    Persistence(store, before.hub, before.metrics, before.tenant_source).save(counters=False)
    for _ in range(3):
        probe(before, clock, Outcome.EMPTY)
    assert [n.action for n in sent] == [Action.TRIGGER]
    # What the outbox transaction keeps of that moment: the planner, not the detector's windows.
    store.put("planner", planner_to_json(before.hub.memory().planner))
    store.close()

    store = StateStore.open(tmp_path / "state.db")
    after = monitor(clock, sent)
    Persistence(store, after.hub, after.metrics, after.tenant_source).restore(counters=False)
    assert after.hub.firing == 1
    for _ in range(3):
        probe(after, clock, Outcome.OK)
    store.close()
    assert [(n.action, n.key) for n in sent] == [
        (Action.TRIGGER, "recmon/empty_results/recommendations/acme"),
        (Action.RESOLVE, "recmon/empty_results/recommendations/acme"),
    ]


def test_a_locked_state_file_is_never_moved_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another recmon holding the file (two CronJob pods, a manual run) is no corruption: the
    file may hold undelivered pages, so it stays where it is and the run stops with a reason."""
    from monitor.state.store import StateUnavailable

    path = tmp_path / "state.db"
    StateStore.open(path).close()
    real_connect = sqlite3.connect
    holder = real_connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    # The store waits 10 s for a lock; the test need not.
    monkeypatch.setattr(
        sqlite3, "connect", lambda *a, **k: real_connect(*a, **{**k, "timeout": 0.1})
    )
    try:
        with pytest.raises(StateUnavailable, match="locked"):
            StateStore.open(path)
    finally:
        holder.close()
    assert list(tmp_path.glob("state.db.bad-*")) == []
    StateStore.open(path).close()  # and it opens once released


def test_a_second_process_on_the_state_file_is_refused_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    from monitor.state.store import StateUnavailable

    path = tmp_path / "state.db"
    tracker = busy_tracker()
    store = StateStore.open(path)
    save_all(store, tracker.series)
    store.close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from monitor.state.store import StateStore; "
            f"s = StateStore.open({str(path)!r}); print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(
            StateUnavailable, match=rf"in use by another recmon process \(pid {holder.pid}\)"
        ):
            StateStore.open(path)
    finally:
        holder.communicate("", timeout=30)
    assert list(tmp_path.glob("state.db.bad-*")) == []
    again = StateStore.open(path)  # the holder exited: the kernel released its lock
    assert again.load_series(series_from_parts) == tracker.series
    again.close()


def test_one_process_cannot_open_the_file_twice(tmp_path: Path) -> None:
    from monitor.state.store import StateUnavailable

    first = StateStore.open(tmp_path / "state.db")
    with pytest.raises(StateUnavailable, match="in use"):
        StateStore.open(tmp_path / "state.db")
    first.close()
    StateStore.open(tmp_path / "state.db").close()


def test_a_file_written_by_another_shard_is_refused_and_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from monitor.app.ownership import open_for_shard
    from monitor.core.tenancy import Shard
    from monitor.state.store import StateUnavailable

    path = tmp_path / "state.db"
    tracker = busy_tracker()
    store = open_for_shard(path, Shard(0, 3))
    save_all(store, tracker.series)
    store.close()
    with pytest.raises(StateUnavailable, match=r"belongs to shard 0/3, this is shard 1/3"):
        open_for_shard(path, Shard(1, 3))
    # Refused before anything was written, and the lock was let go.
    again = open_for_shard(path, Shard(0, 3))
    assert again.load_series(series_from_parts) == tracker.series
    assert again.get_meta("shard") == "0/3"
    again.close()
    # A reshard keeps the index (a StatefulSet pod keeps its volume): accepted, with a warning.
    with caplog.at_level(logging.WARNING, logger="recmon.state"):
        resharded = open_for_shard(path, Shard(0, 4))
    assert resharded.get_meta("shard") == "0/4"
    resharded.close()
    assert "shard count changed" in caplog.text


def three_series() -> AlertTracker:
    tracker = AlertTracker(AlertsSpec(), counting_checks={"recommendations"}, parents={})
    for i in range(20):  # past the longest window (15 probes a minute apart)
        for tenant, check in (
            ("acme", "search"),
            ("acme", "recommendations"),
            ("globex", "search"),
        ):
            tracker.observe(
                ProbeResult(tenant, check, Outcome.OK, 0.06 + i / 1000, 0.0), T0 + i * 60
            )
    return tracker


def test_a_save_writes_only_the_series_and_samples_that_changed(tmp_path: Path) -> None:
    tracker = three_series()
    store = StateStore.open(tmp_path / "state.db")
    write, saved = series_changes({}, tracker.series)
    store.write_series(write)
    # The window, once: a row per bucket (five minutes of samples), 15 samples a series.
    assert len(write.heads) == 3 and len(write.items) == 3 * 3
    # Packed (no sample has a reason): 17 bytes a sample.
    assert sum(len(Bucket.of_records(i[3])) for i in write.items) == 3 * 15

    for i in range(20, 25):  # a new bucket; the oldest one's samples all leave the window
        tracker.observe(ProbeResult("acme", "search", Outcome.OK, 0.05, 0.0), T0 + i * 60)
    write, saved = series_changes(saved, tracker.series)
    new_first = tracker.series[("acme", "search")].buckets[0].at(0)
    assert new_first == T0 + 10 * 60
    assert [h[:2] for h in write.heads] == [("acme", "search")]
    assert [d[:2] for d in write.details] == [("acme", "search")]
    assert [i[:3] for i in write.items] == [("acme", "search", T0 + 20 * 60)]
    assert list(write.keep_from) == [("acme", "search", new_first)]
    assert not write.removed
    rows_before = store.connection.total_changes
    store.write_series(write)
    # a head, its baseline, a bucket in, one out
    assert store.connection.total_changes - rows_before == 4
    assert store.load_series(series_from_parts) == tracker.series

    unchanged, _ = series_changes(saved, tracker.series)
    assert not (unchanged.heads or unchanged.items or unchanged.keep_from or unchanged.removed)

    gone = {k: v for k, v in tracker.series.items() if k[0] != "globex"}
    write, _ = series_changes(saved, gone)
    assert list(write.removed) == [("globex", "search")] and not write.items
    store.write_series(write)
    assert store.load_series(series_from_parts) == gone
    assert store.connection.execute(
        "SELECT count(*) FROM series_items WHERE tenant='globex'"
    ).fetchone() == (0,)
    store.close()


def test_a_series_whose_clock_went_back_is_written_afresh(tmp_path: Path) -> None:
    """Rows hold the samples newer than the newest stored: a series whose newest sample is
    older than that (a restored clock, a replaced series) cannot be told apart that way, so
    it is written whole again, and the file holds exactly the memory."""
    store = StateStore.open(tmp_path / "state.db")
    tracker = three_series()
    write, saved = series_changes({}, tracker.series)
    store.write_series(write)
    earlier = AlertTracker(AlertsSpec(), counting_checks={"recommendations"}, parents={})
    for i in range(3):  # the same series, its probes an hour earlier
        earlier.observe(ProbeResult("acme", "search", Outcome.EMPTY, 0.07, 0.0), T0 - 3600 + i)
    states = {**tracker.series, ("acme", "search"): earlier.series[("acme", "search")]}
    write, _ = series_changes(saved, states)
    assert list(write.removed) == [("acme", "search")]
    assert [i[:3] for i in write.items] == [("acme", "search", T0 - 3600)]
    store.write_series(write)
    assert store.load_series(series_from_parts) == states
    store.close()


def test_a_save_does_not_keep_the_states_it_saved_alive() -> None:
    """What a save remembers of a series is a tuple of numbers (hashes and times), which the
    garbage collector stops tracking: once the series moves on, the state saved goes (a
    fleet's worth of them was ~24 MB kept a minute), and nothing of it is walked by every
    collection."""
    tracker = three_series()
    _, saved = series_changes({}, tracker.series)
    key = ("acme", "search")
    state = weakref.ref(tracker.series[key])
    tracker.observe(ProbeResult(*key, Outcome.OK, 0.05, 0.0), T0 + 20 * 60)
    gc.collect()
    assert state() is None
    assert not any(gc.is_tracked(entry) for entry in saved.values())
    write, _ = series_changes(saved, tracker.series)
    assert [h[:2] for h in write.heads] == [key]  # still known as changed


def test_a_series_unchanged_since_the_last_save_is_not_written_again() -> None:
    """Equal content, not the same object: a state restored or rebuilt equal to what was
    saved writes nothing, and the final save (every baseline) writes only what differs."""
    tracker = three_series()
    _, saved = series_changes({}, tracker.series)
    rebuilt = {key: series_from_json(series_to_json(s)) for key, s in tracker.series.items()}
    for baseline_every in (300.0, 0.0):
        write, after = series_changes(saved, rebuilt, baseline_every=baseline_every)
        assert (write.heads, write.details, write.items, write.keep_from) == ([], [], [], [])
        assert [entry[:5] for entry in after.values()] == [entry[:5] for entry in saved.values()]


def _monitor(clock: object) -> object:
    from prometheus_client import CollectorRegistry

    from monitor.app.assembly import build_monitor
    from tests.helpers import load

    return build_monitor(load(), clock=clock, registry=CollectorRegistry())  # type: ignore[arg-type]


def test_incremental_saves_across_restarts_keep_exactly_the_memory(tmp_path: Path) -> None:
    """Saves a minute apart, restarts in between: every restart restores what the last
    save's process held, though each save wrote only what changed."""
    from monitor.app.service import Monitor
    from monitor.core.clock import ManualClock

    clock = ManualClock()
    path = tmp_path / "state.db"
    memory = None
    for _restart in range(3):
        store = StateStore.open(path)
        monitor = _monitor(clock)
        assert isinstance(monitor, Monitor)
        persistence = Persistence(store, monitor.hub, monitor.metrics, monitor.tenant_source)
        persistence.restore(counters=False)
        if memory is not None:
            assert monitor.hub.memory().series == memory
        for minute in range(7):
            clock.advance(60)
            for tenant in ("acme", "globex"):
                outcome = Outcome.EMPTY if minute % 3 == 0 else Outcome.OK
                monitor.hub.observe(
                    ProbeResult(tenant, "recommendations", outcome, 0.06, clock.time())
                )
            if minute % 2:
                persistence.save(counters=False)
        persistence.save(counters=False)
        memory = monitor.hub.memory().series
        store.close()
    assert memory and all(len(s.samples) == 15 for s in memory.values())


def test_a_save_in_chunks_with_a_failed_chunk_retried_keeps_exactly_the_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save writes its series a chunk (a transaction) at a time; a chunk that fails is
    written by the next save, the chunks before it are not written twice."""
    from monitor.app import persist
    from monitor.app.service import Monitor
    from monitor.core.clock import ManualClock

    monkeypatch.setattr(persist, "SAVE_CHUNK", 1)
    clock = ManualClock()
    path = tmp_path / "state.db"
    store = StateStore.open(path)
    monitor = _monitor(clock)
    assert isinstance(monitor, Monitor)
    persistence = Persistence(store, monitor.hub, monitor.metrics, monitor.tenant_source)

    def minute(outcome: Outcome = Outcome.OK) -> None:
        clock.advance(60)
        for tenant in ("acme", "globex"):
            monitor.hub.observe(ProbeResult(tenant, "recommendations", outcome, 0.06, clock.time()))

    for _ in range(3):
        minute()
        persistence.save(counters=False)
    written: list[object] = []
    real = store.write_series
    failing = [False, True]  # the second chunk of the next save fails

    def failing_second(write: object) -> None:
        written.append(write)
        if failing and failing.pop(0):
            raise sqlite3.OperationalError("disk I/O error")
        real(write)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "write_series", failing_second)
    minute(Outcome.EMPTY)
    with pytest.raises(sqlite3.OperationalError):
        persistence.save(counters=False)
    assert len(written) == 2  # acme's chunk written, globex's failed
    written.clear()
    persistence.save(counters=False)  # nothing new for acme: only globex's chunk writes
    assert [w.heads[0][0] for w in written if w.heads] == ["globex"]  # type: ignore[attr-defined]
    minute()
    persistence.save(counters=False)
    store.close()
    reopened = StateStore.open(path)
    assert reopened.load_series(series_from_parts) == monitor.hub.memory().series
    reopened.close()


def test_a_version_1_file_is_upgraded_in_place_and_keeps_its_series(tmp_path: Path) -> None:
    from monitor.app.service import Monitor
    from monitor.core.clock import ManualClock

    path = tmp_path / "state.db"
    tracker = three_series()
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE series (tenant TEXT NOT NULL, check_name TEXT NOT NULL,
            state TEXT NOT NULL, PRIMARY KEY (tenant, check_name));
        CREATE TABLE kv (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        """
    )
    db.executemany(
        "INSERT INTO series VALUES (?, ?, ?)",
        [(t, c, json.dumps(series_to_json(s))) for (t, c), s in tracker.series.items()],
    )
    db.commit()
    db.close()

    clock = ManualClock(T0 + 20 * 60)
    store = StateStore.open(path)
    assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
    monitor = _monitor(clock)
    assert isinstance(monitor, Monitor)
    persistence = Persistence(store, monitor.hub, monitor.metrics, monitor.tenant_source)
    persistence.restore(counters=False)
    assert monitor.hub.memory().series == tracker.series
    monitor.hub.observe(ProbeResult("acme", "search", Outcome.OK, 0.05, clock.time()))
    persistence.save(counters=False)
    expected = monitor.hub.memory().series
    store.close()

    again = StateStore.open(path)
    assert again.load_series(series_from_parts) == expected
    heads = dict(
        ((t, c), json.loads(text))
        for t, c, text in again.connection.execute(
            "SELECT tenant, check_name, state FROM series"
        ).fetchall()
    )
    assert "s" not in heads[("acme", "search")]  # rewritten: its samples are rows now
    again.close()


def test_a_clean_close_leaves_no_lock_file_and_the_next_open_claims_a_fresh_one(
    tmp_path: Path,
) -> None:
    from monitor.state.store import _same_file

    path = tmp_path / "state.db"
    store = StateStore.open(path)
    lock = tmp_path / "state.db.lock"
    assert lock.exists()
    # Another process opened the lock file just before the owner's clean exit...
    late = lock.open("a+", encoding="utf-8")
    store.close()
    assert not lock.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]
    # ...its flock now succeeds on a file nobody will find: it must not count as the owner.
    assert not _same_file(late, lock)
    late.close()
    again = StateStore.open(path)
    assert lock.exists()
    again.close()
    assert not lock.exists()


def test_a_version_3_file_keeps_its_baselines_and_the_first_save_moves_them(
    tmp_path: Path,
) -> None:
    """Schema 3 kept a series' detail (its baseline) in the series row and its rows as JSON
    text: it loads as it is, and the first save after start, which writes every series
    afresh, leaves the details in their own table and the new rows packed."""
    path = tmp_path / "state.db"
    tracker = three_series()
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE series (tenant TEXT NOT NULL, check_name TEXT NOT NULL,
            state TEXT NOT NULL, detail TEXT, PRIMARY KEY (tenant, check_name));
        CREATE TABLE series_items (tenant TEXT NOT NULL, check_name TEXT NOT NULL,
            at REAL NOT NULL, item TEXT NOT NULL, PRIMARY KEY (tenant, check_name, at))
            WITHOUT ROWID;
        CREATE TABLE kv (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '3');
        """
    )
    db.executemany(
        "INSERT INTO series VALUES (?, ?, ?, ?)",
        [(t, c, series_core_text(s), baseline_text(s)) for (t, c), s in tracker.series.items()],
    )
    db.executemany(
        "INSERT INTO series_items VALUES (?, ?, ?, ?)",
        [
            (t, c, bucket.at(0), samples_text(bucket))
            for (t, c), s in tracker.series.items()
            for bucket in s.buckets
        ],
    )
    db.commit()
    db.close()

    store = StateStore.open(path)
    assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
    loaded = store.load_series(series_from_parts)
    assert loaded == tracker.series
    assert {k: s.baseline for k, s in loaded.items()} == {
        k: s.baseline for k, s in tracker.series.items()
    }
    write, _ = series_changes({}, loaded)
    store.write_series(write)
    db = store.connection
    assert db.execute("SELECT count(*) FROM series WHERE detail IS NOT NULL").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM series_details").fetchone() == (3,)
    assert {type(item) for (item,) in db.execute("SELECT item FROM series_items")} == {bytes}
    assert store.load_series(series_from_parts) == tracker.series
    store.close()


async def test_a_periodic_save_writes_content_and_tenants_again_only_when_they_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cross-tenant content states (a list of ids per tenant) and the tenant list are
    written by a periodic save when they changed since the last good save, and again after a
    save that failed; what a restart restores is the memory as it was."""
    from monitor.app.service import Monitor
    from monitor.core.clock import ManualClock

    clock = ManualClock()
    path = tmp_path / "state.db"
    store = StateStore.open(path)
    monitor = _monitor(clock)
    assert isinstance(monitor, Monitor)
    await monitor.refresh_tenants()
    persistence = Persistence(store, monitor.hub, monitor.metrics, monitor.tenant_source)
    put = store.put
    written: list[str] = []
    failing: list[str] = []

    def recording(name: str, value: object) -> None:
        if name in failing:
            failing.remove(name)
            raise sqlite3.OperationalError("disk I/O error")
        written.append(name)
        put(name, value)

    monkeypatch.setattr(store, "put", recording)

    def minute(ids: tuple[str, ...]) -> None:
        clock.advance(60)
        for tenant in ("acme", "globex"):
            monitor.hub.observe(
                ProbeResult(
                    tenant,
                    "recommendations",
                    Outcome.OK,
                    0.06,
                    clock.time(),
                    items=len(ids),
                    item_ids=tuple(f"{tenant}-{i}" for i in ids),
                    asked="a1",
                )
            )

    minute(("p1", "p2"))
    await persistence.save_async()
    assert {"content", "tenants"} <= set(written)
    written.clear()
    minute(("p1", "p2"))  # the same answers: the content states are as they were
    await persistence.save_async()
    assert "content" not in written and "tenants" not in written
    minute(("p3", "p4"))  # new lists
    failing.append("content")
    with pytest.raises(sqlite3.OperationalError):
        await persistence.save_async()
    written.clear()
    await persistence.save_async()  # the failed one's content written now
    assert "content" in written
    written.clear()
    await persistence.save_async()
    assert "content" not in written
    memory = monitor.hub.memory()
    store.close()

    again = StateStore.open(path)
    restored = _monitor(clock)
    assert isinstance(restored, Monitor)
    Persistence(again, restored.hub, restored.metrics, restored.tenant_source).restore(
        counters=False
    )
    assert content_to_json(restored.hub.memory().content) == content_to_json(memory.content)
    assert restored.tenant_source.current == ("acme", "globex")
    again.close()
