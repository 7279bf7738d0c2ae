"""The outbox when the state file takes no writes: what it cannot store it holds in memory and
hands out all the same; the first write that succeeds stores it with its delivery results
(the writes fail in SQLite itself: tests/statefaults.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.core.notifications import Action
from monitor.state.outbox import Outbox
from monitor.state.store import StateStore
from tests.alerting.test_dispatch import T0, note
from tests.statefaults import read_only


def rows(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as db:
        return list(db.execute("SELECT id, sink, status FROM outbox ORDER BY seq"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    opened = StateStore.open(tmp_path / "state.db")
    yield opened
    opened.close()


def test_a_failed_write_is_raised_rolled_back_and_shown_until_one_succeeds(
    store: StateStore,
) -> None:
    assert not store.write_health().failing
    with read_only(store), pytest.raises(sqlite3.OperationalError):
        store.put("planner", {"x": 1})
    health = store.write_health()
    assert health.failing and health.failures == 1
    assert "readonly" in health.error
    assert not store.connection.in_transaction  # the next BEGIN is not refused
    store.put("planner", {"x": 2})
    health = store.write_health()
    assert not health.failing and health.failures == 1 and "readonly" in health.error
    assert store.get("planner") == {"x": 2}


def test_what_cannot_be_stored_is_held_and_handed_out_then_stored_as_it_ended(
    store: StateStore, tmp_path: Path
) -> None:
    outbox = Outbox(store)
    with read_only(store):
        assert outbox.enqueue([note("a"), note("b")], ["pd"], T0, entries={"planner": 1}) == 2
        assert outbox.holding
        due = outbox.due(T0)
        assert [(i.notification.tenant, i.held) for i in due] == [("a", True), ("b", True)]
        assert outbox.pending() == 2 and outbox.pending("pd") == 2 and outbox.pending("x") == 0
        outbox.mark_delivered(due[0], T0 + 1)
        outbox.mark_retry(due[1], T0 + 30, "status 503")
        assert outbox.due(T0 + 2) == []  # a delivered, b backed off
        assert outbox.next_attempt() == T0 + 30
        assert not outbox.write_held()  # still read-only
    assert rows(tmp_path / "state.db") == []
    assert outbox.write_held()
    assert not outbox.holding
    assert rows(tmp_path / "state.db") == [
        (note("a").id, "pd", "delivered"),
        (note("b").id, "pd", "pending"),
    ]
    assert store.get("planner") == 1
    [b] = outbox.due(T0 + 30)
    assert b.notification.tenant == "b" and b.attempts == 1 and not b.held


def test_results_of_stored_notifications_are_held_too_so_nothing_is_sent_twice(
    store: StateStore, tmp_path: Path
) -> None:
    outbox = Outbox(store)
    outbox.enqueue([note("a")], ["pd"], T0)
    [a] = outbox.due(T0)
    with read_only(store):
        outbox.mark_delivered(a, T0 + 1)  # sent; the file cannot say so
        assert outbox.due(T0 + 2) == [] and outbox.pending() == 0
    assert rows(tmp_path / "state.db") == [(note("a").id, "pd", "pending")]
    outbox.enqueue([note("b")], ["pd"], T0 + 3)  # the next write stores what was held first
    assert rows(tmp_path / "state.db") == [
        (note("a").id, "pd", "delivered"),
        (note("b").id, "pd", "pending"),
    ]
    assert [i.notification.tenant for i in outbox.due(T0 + 3)] == ["b"]


def test_a_held_resolve_never_overtakes_its_stored_trigger(store: StateStore) -> None:
    outbox = Outbox(store)
    outbox.enqueue([note("a")], ["pd"], T0)
    [trigger] = outbox.due(T0)
    with read_only(store):
        outbox.mark_retry(trigger, T0 + 10, "status 503")
        outbox.enqueue([note("a", Action.RESOLVE), note("c")], ["pd"], T0 + 1)
        assert [(i.notification.tenant, i.held) for i in outbox.due(T0 + 2)] == [("c", True)]
        due = outbox.due(T0 + 10)
        assert [(i.notification.action, i.held) for i in due] == [
            (Action.TRIGGER, False),
            (Action.TRIGGER, True),
        ]
        outbox.mark_delivered(due[0], T0 + 10)
        [resolve] = [i for i in outbox.due(T0 + 11) if i.notification.tenant == "a"]
        assert resolve.notification.action is Action.RESOLVE and resolve.held


def test_holding_is_idempotent_like_the_table(store: StateStore) -> None:
    outbox = Outbox(store)
    with read_only(store):
        assert outbox.enqueue([note("a")], ["pd"], T0) == 1
        assert outbox.enqueue([note("a")], ["pd"], T0) == 0  # decided again: held once
        assert len(outbox.due(T0)) == 1


def test_opening_a_known_state_file_writes_nothing_so_a_full_volume_still_opens(
    tmp_path: Path,
) -> None:
    first = StateStore.open(tmp_path / "state.db")
    assert first.connection.total_changes > 0  # a new file: schema and stamps written
    first.close()
    again = StateStore.open(tmp_path / "state.db")
    assert again.connection.total_changes == 0
    assert again.get_meta("written_by") is not None
    again.close()
