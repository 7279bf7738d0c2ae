"""The outbox: every notification is stored before it is sent, and marked when delivered.

Enqueuing is idempotent (notification id × sink), so a notification decided twice — say,
before and after a crash — is stored and sent once. Per sink and alert key, items leave in
order: a resolve never overtakes its trigger.

When the state file takes no writes (a full disk, a read-only file system, an I/O error), the
outbox holds what it could not write in memory — new notifications with the named entries
that go with them, and the delivery results of stored ones — and hands them out for delivery
from there: a full disk delays no page. Delivery is not crash-safe meanwhile (a restart
forgets what is held). The next write that succeeds (an enqueue, or write_held, which the
dispatcher calls on every pass) writes everything held first, in one transaction, with the
results it had: a notification sent from memory is stored as delivered, never sent again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from monitor.core.notifications import Notification
from monitor.state.store import StateStore, put_entry

RETENTION_S = 7 * 86400

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    sink TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT,
    finished_at REAL,
    UNIQUE (id, sink)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, sink, key, seq);
"""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    seq: int  # negative: held in memory (not in the state file)
    sink: str
    notification: Notification
    attempts: int

    @property
    def held(self) -> bool:
        """Sent from memory: the state file could not store it (yet)."""
        return self.seq < 0


@dataclass(slots=True)
class _Held:
    """A row the state file could not take yet, as it will be written."""

    item: OutboxItem
    created_at: float
    next_attempt_at: float
    status: str = "pending"
    last_error: str | None = None
    finished_at: float | None = None


@dataclass(frozen=True, slots=True)
class _Mark:
    """A stored row's delivery result the state file could not take yet."""

    status: str  # delivered | rejected | pending (a retry)
    at: float  # finished_at, or the next attempt for a retry
    error: str | None


class Outbox:
    def __init__(self, store: StateStore) -> None:
        self.store = store
        with store.lock:
            store.connection.executescript(_SCHEMA)
        # What the state file could not take yet (see the module's docstring).
        self._held: list[_Held] = []
        self._held_entries: dict[str, Any] = {}
        self._marks: dict[int, _Mark] = {}
        self._next_held_seq = -1

    # --- writing ------------------------------------------------------------------------------

    def enqueue(
        self,
        notifications: Iterable[Notification],
        sinks: Iterable[str],
        now: float,
        *,
        entries: Mapping[str, Any] | None = None,
    ) -> int:
        """Store each notification for each sink; returns how many were new. `entries` (named
        JSON values) are written in the same transaction: the planner's state goes with the
        notifications it decided. When the state file takes no writes they are held in memory
        instead (`holding` says so) and handed out by due() all the same."""
        notifications = list(notifications)
        sinks = list(sinks)
        rows = [
            (n.id, sink, n.key, json.dumps(n.to_json(), separators=(",", ":")), now, now)
            for n in notifications
            for sink in sinks
        ]
        try:
            with self.store.transaction() as db:
                self._write_held(db)  # older than these: first, so their order is kept
                for name, value in (entries or {}).items():
                    put_entry(db, name, value)
                before = db.total_changes
                db.executemany(
                    "INSERT OR IGNORE INTO outbox "
                    "(id, sink, key, payload, created_at, next_attempt_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                stored = db.total_changes - before
        except sqlite3.Error:
            return self._hold(notifications, sinks, now, entries or {})
        self._clear_held()
        return stored

    def _hold(
        self,
        notifications: list[Notification],
        sinks: list[str],
        now: float,
        entries: Mapping[str, Any],
    ) -> int:
        known = {(h.item.notification.id, h.item.sink) for h in self._held}
        new = 0
        for notification in notifications:
            for sink in sinks:
                if (notification.id, sink) in known:
                    continue  # idempotent, as the table's UNIQUE (id, sink)
                item = OutboxItem(self._next_held_seq, sink, notification, 0)
                self._next_held_seq -= 1
                self._held.append(_Held(item, now, now))
                new += 1
        self._held_entries.update(entries)  # the newest planner state is the one to write
        return new

    @property
    def holding(self) -> bool:
        """Something the state file could not take yet is held in memory."""
        return bool(self._held or self._marks or self._held_entries)

    def write_held(self) -> bool:
        """Write what is held, in one transaction; True when nothing is held any more."""
        if not self.holding:
            return True
        try:
            with self.store.transaction() as db:
                self._write_held(db)
        except sqlite3.Error:
            return False
        self._clear_held()
        return True

    def _write_held(self, db: sqlite3.Connection) -> None:
        for seq, mark in self._marks.items():
            if mark.status == "pending":
                db.execute(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, "
                    "last_error = ? WHERE seq = ?",
                    (mark.at, mark.error, seq),
                )
            else:
                db.execute(
                    "UPDATE outbox SET status = ?, attempts = attempts + 1, finished_at = ?, "
                    "last_error = ? WHERE seq = ?",
                    (mark.status, mark.at, mark.error, seq),
                )
        for name, value in self._held_entries.items():
            put_entry(db, name, value)
        db.executemany(
            "INSERT OR IGNORE INTO outbox (id, sink, key, payload, created_at, attempts, "
            "next_attempt_at, status, last_error, finished_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    h.item.notification.id,
                    h.item.sink,
                    h.item.notification.key,
                    json.dumps(h.item.notification.to_json(), separators=(",", ":")),
                    h.created_at,
                    h.item.attempts,
                    h.next_attempt_at,
                    h.status,
                    h.last_error,
                    h.finished_at,
                )
                for h in self._held
            ],
        )

    def _clear_held(self) -> None:
        self._held.clear()
        self._held_entries.clear()
        self._marks.clear()

    # --- reading ------------------------------------------------------------------------------

    def due(self, now: float, limit: int = 100) -> list[OutboxItem]:
        if self.holding:
            return self._due_with_held(now, limit)
        with self.store.lock:
            rows = self.store.connection.execute(
                """
                SELECT o.seq, o.sink, o.payload, o.attempts FROM outbox o
                WHERE o.status = 'pending' AND o.next_attempt_at <= ?
                  AND NOT EXISTS (
                      SELECT 1 FROM outbox earlier
                      WHERE earlier.status = 'pending' AND earlier.sink = o.sink
                        AND earlier.key = o.key AND earlier.seq < o.seq)
                ORDER BY o.seq LIMIT ?
                """,
                (now, limit),
            ).fetchall()
        return [
            OutboxItem(seq, sink, Notification.from_json(json.loads(payload)), attempts)
            for seq, sink, payload, attempts in rows
        ]

    def _due_with_held(self, now: float, limit: int) -> list[OutboxItem]:
        """due() while something is held: the stored pending rows with the results held for
        them, then the held rows (all newer), each (sink, key) in order."""
        with self.store.lock:
            rows = self.store.connection.execute(
                "SELECT seq, sink, key, payload, attempts, next_attempt_at FROM outbox "
                "WHERE status = 'pending' ORDER BY seq"
            ).fetchall()
        candidates: list[tuple[str, float, OutboxItem]] = []
        for seq, sink, key, payload, attempts, next_attempt_at in rows:
            mark = self._marks.get(seq)
            if mark is not None and mark.status != "pending":
                continue  # finished; the file does not know it yet
            if mark is not None:
                attempts, next_attempt_at = attempts + 1, mark.at
            notification = Notification.from_json(json.loads(payload))
            candidates.append((key, next_attempt_at, OutboxItem(seq, sink, notification, attempts)))
        candidates += [
            (h.item.notification.key, h.next_attempt_at, h.item)
            for h in self._held
            if h.status == "pending"
        ]
        out: list[OutboxItem] = []
        earlier: set[tuple[str, str]] = set()
        for key, next_attempt_at, item in candidates:
            if (item.sink, key) in earlier:
                continue  # an earlier one for this sink and alert is still pending
            earlier.add((item.sink, key))
            if next_attempt_at <= now:
                out.append(item)
                if len(out) >= limit:
                    break
        return out

    def next_attempt(self) -> float | None:
        with self.store.lock:
            row = self.store.connection.execute(
                "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'"
            ).fetchone()
        times = [float(row[0])] if row is not None and row[0] is not None else []
        times += [h.next_attempt_at for h in self._held if h.status == "pending"]
        times += [m.at for m in self._marks.values() if m.status == "pending"]
        return min(times, default=None)

    def pending(self, sink: str | None = None) -> int:
        query = "SELECT COUNT(*) FROM outbox WHERE status = 'pending'"
        args: tuple[str, ...] = ()
        if sink is not None:
            query += " AND sink = ?"
            args = (sink,)
        with self.store.lock:
            stored = int(self.store.connection.execute(query, args).fetchone()[0])
        if not self.holding:
            return stored
        # Finished while the file took no writes (the file still says pending), and held.
        finished = 0
        if self._marks:
            with self.store.lock:
                sinks = dict(
                    self.store.connection.execute(
                        f"SELECT seq, sink FROM outbox WHERE status = 'pending' AND seq IN "
                        f"({','.join('?' * len(self._marks))})",
                        list(self._marks),
                    ).fetchall()
                )
            finished = sum(
                1
                for seq, mark in self._marks.items()
                if mark.status != "pending" and seq in sinks and sink in (None, sinks[seq])
            )
        held = sum(1 for h in self._held if h.status == "pending" and sink in (None, h.item.sink))
        return stored - finished + held

    # --- delivery results ---------------------------------------------------------------------

    def mark_delivered(self, item: OutboxItem, now: float) -> None:
        self._finish(item, "delivered", now, None)

    def mark_rejected(self, item: OutboxItem, now: float, error: str) -> None:
        self._finish(item, "rejected", now, error)

    def mark_retry(self, item: OutboxItem, next_attempt_at: float, error: str) -> None:
        if item.held:
            self._update_held(item, "pending", next_attempt_at, error)
            return
        try:
            with self.store.transaction() as db:
                db.execute(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, "
                    "last_error = ? WHERE seq = ?",
                    (next_attempt_at, error, item.seq),
                )
        except sqlite3.Error:
            self._marks[item.seq] = _Mark("pending", next_attempt_at, error)

    def _finish(self, item: OutboxItem, status: str, now: float, error: str | None) -> None:
        if item.held:
            self._update_held(item, status, now, error)
            return
        try:
            with self.store.transaction() as db:
                db.execute(
                    "UPDATE outbox SET status = ?, attempts = attempts + 1, finished_at = ?, "
                    "last_error = ? WHERE seq = ?",
                    (status, now, error, item.seq),
                )
        except sqlite3.Error:
            # Delivered, and the file cannot say so yet: remembered here, so it is not sent
            # again, and written with the next write that succeeds.
            self._marks[item.seq] = _Mark(status, now, error)

    def _update_held(self, item: OutboxItem, status: str, at: float, error: str | None) -> None:
        for held in self._held:
            if held.item.seq == item.seq:
                held.item = replace(held.item, attempts=held.item.attempts + 1)
                held.status, held.last_error = status, error
                if status == "pending":
                    held.next_attempt_at = at
                else:
                    held.finished_at = at
                return

    def prune(self, now: float, retention: float = RETENTION_S) -> int:
        try:
            with self.store.transaction() as db:
                return db.execute(
                    "DELETE FROM outbox WHERE status != 'pending' AND finished_at < ?",
                    (now - retention,),
                ).rowcount
        except sqlite3.Error:
            return 0  # the state file takes no writes: pruned next time
