"""History: the latency sketch's stated error bound, incremental saves (an UPSERT per changed
row, nothing rewritten), retention, restarts that add to the current hour, incidents from
notifications, and a state file of the previous schema version keeping its data."""

from __future__ import annotations

import json
import math
import random
import sqlite3
from pathlib import Path

import pytest

from monitor.app.history import HistoryRecorder
from monitor.core.clock import ManualClock
from monitor.core.notifications import Action, Notification, Severity
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.history import (
    BUCKETS,
    HOUR,
    RETENTION_S,
    SKETCH_RELATIVE_ERROR,
    bucket_of,
    hour_from_json,
    quantile,
)
from monitor.detect.stats import p95_nearest_rank
from monitor.state.store import SCHEMA_VERSION, StateStore, read_history_file

T0 = 1_780_000_000.0 - 1_780_000_000.0 % HOUR  # an hour's start


def result(tenant: str, check: str, at: float, outcome: Outcome = Outcome.OK, s: float = 0.05):
    return ProbeResult(tenant, check, outcome, s, at)


def save(recorder: HistoryRecorder, store: StateStore) -> int:
    snapshot = recorder.changes()
    store.write_history(snapshot.write)
    recorder.written(snapshot)
    return len(snapshot.write.hours)


@pytest.mark.parametrize("seed", range(5))
def test_p95_and_p50_from_the_sketch_are_within_the_stated_bound(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(-2.5, 0.8) for _ in range(2000)]
    sketch: dict[int, int] = {}
    for v in values:
        sketch[bucket_of(v)] = sketch.get(bucket_of(v), 0) + 1
    ordered = sorted(values)
    for q in (0.5, 0.95):
        exact = ordered[max(0, math.ceil(q * len(ordered)) - 1)]
        estimate = quantile(sketch, q)
        assert estimate is not None
        assert abs(estimate - exact) / exact <= SKETCH_RELATIVE_ERROR + 1e-9
    assert quantile(sketch, 0.95) == pytest.approx(p95_nearest_rank(values), rel=0.0906)
    assert max(sketch) < BUCKETS


def test_a_save_upserts_only_the_rows_that_changed(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    store = StateStore.open(tmp_path / "state.db")
    recorder = HistoryRecorder(clock)
    for i in range(100):
        recorder.observe(result(f"t{i}", "search", T0 + 10))
    assert save(recorder, store) == 100
    clock.advance(60)
    recorder.observe(result("t7", "search", T0 + 70, Outcome.TIMEOUT, 5.0))
    assert save(recorder, store) == 1  # one row changed, one row written
    assert save(recorder, store) == 0
    rows = store.read_history(T0, T0 + HOUR)
    row = hour_from_json(json.loads(next(r[3] for r in rows.hours if r[0] == "t7")))
    assert row.outcomes == {"ok": 1, "timeout": 1}
    assert sum(row.latency.values()) == 1  # a timeout's duration is a deadline, not latency
    store.close()


def test_a_failed_save_is_written_by_the_next_one(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    store = StateStore.open(tmp_path / "state.db")
    recorder = HistoryRecorder(clock)
    recorder.observe(result("a", "search", T0))
    recorder.changes()  # taken, never written
    assert save(recorder, store) == 1
    store.close()


def test_rows_past_retention_are_pruned(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    store = StateStore.open(tmp_path / "state.db")
    recorder = HistoryRecorder(clock)
    recorder.observe(result("a", "search", T0, Outcome.HTTP_ERROR))
    recorder.observe(result("a", "search", T0 + 60))
    save(recorder, store)
    clock.advance(RETENTION_S + 2 * HOUR)
    recorder.observe(result("a", "search", clock.time()))
    save(recorder, store)
    read = store.read_history(-math.inf, math.inf)
    assert [r[2] for r in read.hours] == [int(clock.time() // HOUR * HOUR)]
    assert read.events == []  # the old span went with it
    store.close()


def test_a_restart_adds_to_the_current_hour_and_closes_the_open_span(tmp_path: Path) -> None:
    clock = ManualClock(T0 + 600)
    path = tmp_path / "state.db"
    store = StateStore.open(path)
    first = HistoryRecorder(clock)
    first.observe(result("a", "search", T0 + 100))
    first.observe(result("a", "search", T0 + 160, Outcome.CONNECT_ERROR))
    save(first, store)
    store.close()

    store = StateStore.open(path)
    second = HistoryRecorder(clock)
    second.restore(store)
    second.observe(result("a", "search", T0 + 700))
    save(second, store)
    store.close()
    read = read_history_file(path, -math.inf, math.inf)
    (row,) = read.hours
    assert hour_from_json(json.loads(row[3])).outcomes == {"ok": 2, "connect_error": 1}
    (span,) = [json.loads(text) for kind, _, text in read.events if kind == "span"]
    assert (span["start"], span["end"], span["outcomes"]) == (
        T0 + 160,
        T0 + 700,
        {"connect_error": 1},
    )


def _note(action: Action, at: float, key: str = "recmon/failures/search/a") -> Notification:
    return Notification(
        id=f"{key}@{action}",
        key=key,
        action=action,
        rule="failures",
        severity=Severity.CRITICAL,
        summary=f"search failing for tenant a ({action})",
        started_at=T0,
        at=at,
        tenant="a",
        check="search",
    )


def test_incidents_are_recorded_as_notifications_are_decided(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    store = StateStore.open(tmp_path / "state.db")
    recorder = HistoryRecorder(clock)
    routed: list[object] = []
    route = recorder.routed(routed.append)
    from monitor.alerting.hub import Decision
    from monitor.alerting.planner import PlannerState

    route(Decision((_note(Action.TRIGGER, T0),), PlannerState()))
    save(recorder, store)
    (opened,) = [json.loads(t) for k, _, t in store.read_history(0, math.inf).events]
    assert opened["closed_at"] is None and opened["pages"] == 1
    route(Decision((_note(Action.RESOLVE, T0 + 900),), PlannerState()))
    save(recorder, store)
    (closed,) = [json.loads(t) for k, _, t in store.read_history(0, math.inf).events]
    assert (closed["closed_at"], closed["pages"]) == (T0 + 900, 2)
    assert [step[1] for step in closed["timeline"]] == ["trigger", "resolve"]
    assert len(routed) == 2  # the pipeline's route still got every decision
    store.close()


def test_a_previous_version_file_opens_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
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
        INSERT INTO meta VALUES ('schema_version', '2');
        INSERT INTO kv VALUES ('tenants', '["acme"]');
        INSERT INTO series VALUES ('acme', 'search', '{"x": 1}', '{"b": 2}');
        INSERT INTO series_items VALUES ('acme', 'search', 1.0, '{"s": 3}');
        """
    )
    db.commit()
    db.close()
    assert read_history_file(path, 0, math.inf).hours == ()  # readable before the upgrade

    store = StateStore.open(path)
    assert store.get_meta("schema_version") == str(SCHEMA_VERSION) == "4"
    assert store.get("tenants") == ["acme"]
    assert store.load_series(lambda head, detail, items: (head, detail, items)) == {
        ("acme", "search"): ({"x": 1}, {"b": 2}, [{"s": 3}])
    }
    recorder = HistoryRecorder(ManualClock(T0))
    recorder.observe(result("acme", "search", T0))
    assert save(recorder, store) == 1
    store.close()
    assert len(read_history_file(path, 0, math.inf).hours) == 1
