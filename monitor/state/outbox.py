"""The outbox: every notification is stored before it is sent, and marked when delivered.

Enqueuing is idempotent (notification id × sink), so a notification decided twice — say,
before and after a crash — is stored and sent once. Per sink and alert key, items leave in
order: a resolve never overtakes its trigger.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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
    seq: int
    sink: str
    notification: Notification
    attempts: int


class Outbox:
    def __init__(self, store: StateStore) -> None:
        self.store = store
        with store.lock:
            store.connection.executescript(_SCHEMA)

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
        notifications it decided."""
        sinks = list(sinks)
        rows = [
            (n.id, sink, n.key, json.dumps(n.to_json(), separators=(",", ":")), now, now)
            for n in notifications
            for sink in sinks
        ]
        with self.store.transaction() as db:
            for name, value in (entries or {}).items():
                put_entry(db, name, value)
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO outbox "
                "(id, sink, key, payload, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            return db.total_changes - before

    def due(self, now: float, limit: int = 100) -> list[OutboxItem]:
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

    def next_attempt(self) -> float | None:
        with self.store.lock:
            row = self.store.connection.execute(
                "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'"
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def mark_delivered(self, item: OutboxItem, now: float) -> None:
        self._finish(item, "delivered", now, None)

    def mark_rejected(self, item: OutboxItem, now: float, error: str) -> None:
        self._finish(item, "rejected", now, error)

    def mark_retry(self, item: OutboxItem, next_attempt_at: float, error: str) -> None:
        with self.store.transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
                "WHERE seq = ?",
                (next_attempt_at, error, item.seq),
            )

    def _finish(self, item: OutboxItem, status: str, now: float, error: str | None) -> None:
        with self.store.transaction() as db:
            db.execute(
                "UPDATE outbox SET status = ?, attempts = attempts + 1, finished_at = ?, "
                "last_error = ? WHERE seq = ?",
                (status, now, error, item.seq),
            )

    def pending(self, sink: str | None = None) -> int:
        query = "SELECT COUNT(*) FROM outbox WHERE status = 'pending'"
        args: tuple[str, ...] = ()
        if sink is not None:
            query += " AND sink = ?"
            args = (sink,)
        with self.store.lock:
            return int(self.store.connection.execute(query, args).fetchone()[0])

    def prune(self, now: float, retention: float = RETENTION_S) -> int:
        with self.store.transaction() as db:
            return db.execute(
                "DELETE FROM outbox WHERE status != 'pending' AND finished_at < ?",
                (now - retention,),
            ).rowcount
