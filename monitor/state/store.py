"""The state file (SQLite): one file for windows, baselines, alert states and the outbox.

Storage only: rows and named entries hold JSON the domain packages encode and decode
themselves (detect.codec, alerting.codec, tls.codec); nothing here knows their types. A series
is a head, a detail (a larger part that changes less often) and item rows keyed by time (its
samples), each written only when it changed.

A state file that is corrupt, or was written by another schema version, is moved aside with a
log line and recmon starts clean: a monitor that crash-loops on its own state watches nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO, TypeVar

from monitor import __version__

log = logging.getLogger("recmon.state")

# 2: a series' items (its samples) in rows of their own, and its detail apart from its head.
# A version 1 file is read and upgraded in place (its heads still carry their samples and
# detail, which the owner's decoder reads).
# 3: history (hourly rows per series, and events: impact spans, incidents, maintenance). A
# version 1 or 2 file gains the empty tables in place and keeps everything else.
# 4: a series' detail in a table of its own (series_details): a save rewrites every probed
# series' head, and a head sharing its row with the ~1 KB detail rewrote both (a save at
# 10,000 tenants dirtied ~2x the pages); items may be packed samples (BLOB, see
# detect.codec.samples_row). An earlier file's details are read from its series rows until the
# first save after start writes every series afresh, which moves them: upgraded in place.
SCHEMA_VERSION = 4
_UPGRADABLE = {1, 2, 3, SCHEMA_VERSION}
SeriesKey = tuple[str, str]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SeriesWrite:
    """What changed in the series since the last save, as JSON text their owner encoded.
    Applied in one transaction, in this order."""

    removed: Sequence[SeriesKey] = ()  # series gone (or to be written afresh): all of them
    keep_from: Sequence[tuple[str, str, float]] = ()  # a series' items before `at` deleted
    heads: Sequence[tuple[str, str, str]] = ()  # (tenant, check, head) written
    details: Sequence[tuple[str, str, str | bytes]] = ()  # (tenant, check, detail) written
    # (tenant, check, at, item) added: an item is JSON text or bytes its owner packed
    items: Sequence[tuple[str, str, float, str | bytes]] = ()


@dataclass(frozen=True, slots=True)
class HistoryWrite:
    """History rows changed since the last save, as JSON text their owner encoded: each an
    UPSERT of its own row, nothing else rewritten. `prune_before`: rows and events older
    than this (Unix seconds) are deleted in the same transaction."""

    hours: Sequence[tuple[str, str, int, str]] = ()  # (tenant, check, hour start, row)
    events: Sequence[tuple[str, str, float, str]] = ()  # (kind, id, at, event)
    prune_before: float | None = None


@dataclass(frozen=True, slots=True)
class HistoryRead:
    """History as stored: hour rows (tenant, check, hour start, row) and events (kind, at,
    event), both as the JSON text their owner wrote."""

    hours: Sequence[tuple[str, str, int, str]]
    events: Sequence[tuple[str, float, str]]


@dataclass(frozen=True, slots=True)
class WriteHealth:
    """How the state file takes writes: `failing` from a failed write transaction until one
    succeeds; `failures` counts failed ones since it was opened (a reader that sees it grow
    knows of a failure even if a write succeeded since)."""

    path: str
    failing: bool = False
    failures: int = 0
    error: str = ""  # the last failure's reason ("database or disk is full"), kept after it


class StateUnavailable(Exception):
    """The state file is fine but cannot be used now (locked by another recmon, read-only,
    unwritable directory). Never moved aside: it may hold undelivered pages."""


class StateStore:
    def __init__(
        self, connection: sqlite3.Connection, path: str, owner_lock: TextIO | None = None
    ) -> None:
        self.connection = connection
        self.path = path
        # One connection shared by the event loop thread and the saving thread.
        self.lock = threading.RLock()
        self._owner_lock = owner_lock
        self._write_health = WriteHealth(path)

    @classmethod
    def open(cls, path: str | Path) -> StateStore:
        """Open (or create) the state file for this process alone: a second process on the
        same file is refused with StateUnavailable, before either touches its contents."""
        path = str(path)
        owner_lock = _claim(path)
        try:
            store = cls._open_or_set_aside(path)
        except BaseException:
            if owner_lock is not None:
                owner_lock.close()
            raise
        store._owner_lock = owner_lock
        return store

    @classmethod
    def _open_or_set_aside(cls, path: str) -> StateStore:
        try:
            return cls._open_checked(path)
        except sqlite3.OperationalError as exc:
            # Locked, read-only, I/O: the file's contents are not at fault.
            raise StateUnavailable(f"state file {path} cannot be used: {exc}") from exc
        except (sqlite3.DatabaseError, _IncompatibleState) as exc:
            aside = f"{path}.bad-{time.strftime('%Y%m%dT%H%M%S')}"
            log.error(
                "state file unusable: kept aside, starting with a clean state",
                extra={"fields": {"path": path, "kept_as": aside, "error": str(exc)}},
            )
            try:
                Path(path).rename(aside)
            except OSError as move_error:
                log.error(
                    "cannot move the bad state file", extra={"fields": {"error": str(move_error)}}
                )
                Path(path).unlink(missing_ok=True)
            for suffix in ("-wal", "-shm", "-journal"):
                Path(path + suffix).unlink(missing_ok=True)
            return cls._open_checked(path)

    @classmethod
    def _open_checked(cls, path: str) -> StateStore:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=10
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            check = connection.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            tables = {
                r[0]
                for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if "meta" in tables:
                row = connection.execute(
                    "SELECT value FROM meta WHERE key='schema_version'"
                ).fetchone()
                version = int(row[0]) if row and str(row[0]).isdigit() else None
                if version not in _UPGRADABLE:
                    raise _IncompatibleState(
                        f"state schema version {version}, this recmon uses {SCHEMA_VERSION}"
                    )
            elif tables:
                raise _IncompatibleState(
                    f"not a recmon state file (tables: {', '.join(sorted(tables))})"
                )
            connection.executescript(
                """
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS series (
                    tenant TEXT NOT NULL, check_name TEXT NOT NULL, state TEXT NOT NULL,
                    detail TEXT, PRIMARY KEY (tenant, check_name)
                );
                CREATE TABLE IF NOT EXISTS series_items (
                    tenant TEXT NOT NULL, check_name TEXT NOT NULL, at REAL NOT NULL,
                    item TEXT NOT NULL, PRIMARY KEY (tenant, check_name, at)
                ) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS series_details (
                    tenant TEXT NOT NULL, check_name TEXT NOT NULL, detail TEXT NOT NULL,
                    PRIMARY KEY (tenant, check_name)
                ) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS kv (name TEXT PRIMARY KEY, value TEXT NOT NULL);
                -- Keyed by hour first: a save's rows (the current hour's) share pages, so
                -- it writes a few pages, not one per series; pruning deletes a prefix.
                CREATE TABLE IF NOT EXISTS history_hours (
                    hour INTEGER NOT NULL, tenant TEXT NOT NULL, check_name TEXT NOT NULL,
                    row TEXT NOT NULL, PRIMARY KEY (hour, tenant, check_name)
                ) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS history_events (
                    kind TEXT NOT NULL, id TEXT NOT NULL, at REAL NOT NULL,
                    event TEXT NOT NULL, PRIMARY KEY (kind, id)
                );
                CREATE INDEX IF NOT EXISTS history_events_by_at ON history_events (at);
                """
            )
            columns = {r[1] for r in connection.execute("PRAGMA table_info(series)")}
            if "detail" not in columns:  # a version 1 file
                connection.execute("ALTER TABLE series ADD COLUMN detail TEXT")
            stamp = {"schema_version": str(SCHEMA_VERSION), "written_by": f"recmon {__version__}"}
            known = dict(connection.execute("SELECT key, value FROM meta").fetchall())
            for key, value in stamp.items():
                # Written only when it changed: a file on a full volume still opens.
                if known.get(key) != value:
                    connection.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        except BaseException:
            connection.close()
            raise
        return cls(connection, path)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. A failed write (a full disk, a read-only file system, an I/O
        error) is rolled back, raised, and shown in write_health()."""
        with self.lock:
            try:
                self.connection.execute("BEGIN IMMEDIATE")
                try:
                    yield self.connection
                    self.connection.execute("COMMIT")
                except BaseException:
                    # SQLite may have rolled back already (SQLITE_FULL can); a COMMIT that
                    # failed leaves the transaction open, which would refuse every later BEGIN.
                    if self.connection.in_transaction:
                        self.connection.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                health = self._write_health
                self._write_health = replace(
                    health, failing=True, failures=health.failures + 1, error=str(exc)
                )
                raise
            if self._write_health.failing:
                self._write_health = replace(self._write_health, failing=False)

    def write_health(self) -> WriteHealth:
        return self._write_health

    def load_series(self, decode: Callable[[Any, Any, list[Any]], T]) -> dict[SeriesKey, T]:
        """Every stored series, decoded from its head, its detail (None if never written) and
        its items (oldest first); details and items JSON decoded, or bytes as stored. A series
        `decode` rejects (ValueError) is skipped."""
        items: dict[SeriesKey, list[Any]] = {}
        states: dict[SeriesKey, T] = {}
        skipped = 0
        with self.lock:
            heads = self.connection.execute(
                # A file before schema 4 holds details in the series rows (see SCHEMA_VERSION).
                "SELECT tenant, check_name, state, coalesce(d.detail, s.detail) FROM series s "
                "LEFT JOIN series_details d USING (tenant, check_name)"
            ).fetchall()
            rows = self.connection.execute(
                "SELECT tenant, check_name, item FROM series_items ORDER BY tenant, check_name, at"
            ).fetchall()
        try:
            for tenant, check, text in rows:
                items.setdefault((tenant, check), []).append(
                    text if isinstance(text, bytes) else json.loads(text)
                )
        except ValueError:
            log.warning("unreadable series items: series loaded without them")
            items = {}
        for tenant, check, text, detail in heads:
            try:
                states[(tenant, check)] = decode(
                    json.loads(text),
                    detail if detail is None or isinstance(detail, bytes) else json.loads(detail),
                    items.get((tenant, check), []),
                )
            except ValueError:
                skipped += 1
        if skipped:
            log.warning("skipped unreadable series states", extra={"fields": {"count": skipped}})
        return states

    def write_series(self, write: SeriesWrite) -> None:
        """Apply what changed since the last save (safe to call from a worker thread)."""
        with self.transaction() as db:
            db.executemany("DELETE FROM series WHERE tenant=? AND check_name=?", write.removed)
            db.executemany(
                "DELETE FROM series_details WHERE tenant=? AND check_name=?", write.removed
            )
            db.executemany(
                "DELETE FROM series_items WHERE tenant=? AND check_name=?", write.removed
            )
            db.executemany(
                "DELETE FROM series_items WHERE tenant=? AND check_name=? AND at<?",
                write.keep_from,
            )
            db.executemany(
                "INSERT INTO series (tenant, check_name, state) VALUES (?, ?, ?) "
                "ON CONFLICT (tenant, check_name) DO UPDATE SET state=excluded.state",
                write.heads,
            )
            db.executemany("INSERT OR REPLACE INTO series_details VALUES (?, ?, ?)", write.details)
            db.executemany("INSERT OR REPLACE INTO series_items VALUES (?, ?, ?, ?)", write.items)

    def write_history(self, write: HistoryWrite) -> None:
        """Upsert the changed history rows and events, prune what is past retention (safe to
        call from a worker thread)."""
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO history_hours (tenant, check_name, hour, row) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (hour, tenant, check_name) DO UPDATE SET row=excluded.row",
                write.hours,
            )
            db.executemany(
                "INSERT INTO history_events VALUES (?, ?, ?, ?) ON CONFLICT (kind, id) "
                "DO UPDATE SET at=excluded.at, event=excluded.event",
                write.events,
            )
            if write.prune_before is not None:
                db.execute("DELETE FROM history_hours WHERE hour < ?", (write.prune_before,))
                db.execute("DELETE FROM history_events WHERE at < ?", (write.prune_before,))

    def read_history(
        self, since: float, until: float, *, events_since: float | None = None
    ) -> HistoryRead:
        """Hour rows starting in [since, until) and events that began before `until` (and
        at or after `events_since`, default: every one kept)."""
        return read_history(self.connection, since, until, events_since, self.lock)

    def history_events(self, kind: str, since: float, limit: int = 200) -> list[str]:
        """The newest events of one kind that began at or after `since`, newest first."""
        with self.lock:
            rows = self.connection.execute(
                "SELECT event FROM history_events WHERE kind=? AND at >= ? ORDER BY at DESC "
                "LIMIT ?",
                (kind, since, limit),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def history_rows(self, tenant: str, check: str, hours: Sequence[int]) -> list[tuple[int, str]]:
        """One series' (hour, row) at the given hours (a point lookup each, however much
        history the file holds)."""
        with self.lock:
            rows = self.connection.execute(
                "SELECT hour, row FROM history_hours WHERE hour IN "
                "(SELECT value FROM json_each(?)) AND tenant=? AND check_name=?",
                (json.dumps(list(hours)), tenant, check),
            ).fetchall()
        return [(int(r[0]), str(r[1])) for r in rows]

    def get(self, name: str) -> Any | None:
        with self.lock:
            row = self.connection.execute("SELECT value FROM kv WHERE name=?", (name,)).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except ValueError:
            log.warning("unreadable state entry ignored", extra={"fields": {"name": name}})
            return None

    def put(self, name: str, value: Any) -> None:
        with self.transaction() as db:
            put_entry(db, name, value)

    def get_meta(self, key: str) -> str | None:
        """A property of the file itself (schema_version, written_by, owner)."""
        with self.lock:
            row = self.connection.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def close(self) -> None:
        with self.lock:
            self.connection.close()
            if self._owner_lock is not None:
                # A clean exit leaves no `.lock` behind: removed while still held (a process
                # that opened it meanwhile finds it unlinked and claims a fresh one), then
                # closed, which releases the flock.
                # On a read-only or failing volume it stays: the flock is released all the same.
                with contextlib.suppress(OSError):
                    Path(self.path + ".lock").unlink(missing_ok=True)
                self._owner_lock.close()
                self._owner_lock = None


def _claim(path: str) -> TextIO | None:
    """An exclusive flock on `<path>.lock`, held while the store is open, released by the
    kernel if the process dies (no stale lock to clean up). A separate file: SQLite's own
    fcntl locks on the database must not meet ours (on NFS flock is emulated with fcntl)."""
    if path == ":memory:":
        return None
    lock_path = Path(path + ".lock")
    while True:
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            handle = lock_path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise StateUnavailable(f"state file {path} cannot be used: {exc}") from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StateUnavailable(
                f"state file {path} is in use by another recmon process (pid {holder}): a "
                "state file belongs to one process; give each process its own state.path"
            ) from None
        if _same_file(handle, lock_path):
            break
        # Its owner removed it on a clean exit between our open and our flock: the lock we
        # hold is on a file nobody else will find. Claim the one at the path instead.
        handle.close()
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _same_file(handle: TextIO, path: Path) -> bool:
    try:
        return os.fstat(handle.fileno()).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False


def read_history(
    connection: sqlite3.Connection,
    since: float,
    until: float,
    events_since: float | None = None,
    lock: threading.RLock | None = None,
) -> HistoryRead:
    with lock or threading.RLock():
        hours = connection.execute(
            "SELECT tenant, check_name, hour, row FROM history_hours "
            "WHERE hour >= ? AND hour < ? ORDER BY hour, tenant, check_name",
            (since, until),
        ).fetchall()
        events = connection.execute(
            "SELECT kind, at, event FROM history_events WHERE at < ? AND at >= ? ORDER BY at",
            (until, -1e18 if events_since is None else events_since),
        ).fetchall()
    return HistoryRead(hours, events)


def read_history_file(
    path: str | Path, since: float, until: float, events_since: float | None = None
) -> HistoryRead:
    """History from a state file without claiming it: `recmon report` reads while `recmon
    run` owns and writes the file (WAL: readers never block the writer). A file without
    history (an older version, never written) reads as empty."""
    if not Path(path).exists():
        raise StateUnavailable(f"state file {path} does not exist")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        tables = {
            r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if "history_hours" not in tables:
            return HistoryRead((), ())
        return read_history(connection, since, until, events_since)
    except sqlite3.DatabaseError as exc:
        raise StateUnavailable(f"state file {path} cannot be read: {exc}") from exc
    finally:
        connection.close()


def put_entry(db: sqlite3.Connection, name: str, value: Any) -> None:
    """A named entry, written within a transaction the caller holds."""
    db.execute(
        "INSERT OR REPLACE INTO kv VALUES (?, ?)", (name, json.dumps(value, separators=(",", ":")))
    )


class _IncompatibleState(Exception):
    pass
