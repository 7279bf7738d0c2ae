"""A state file whose writes fail for real, in SQLite: `PRAGMA query_only` makes every write
of the connection fail as on a read-only file system ("attempt to write a readonly
database"). The full disk itself is tests/integration/test_state_volume_full.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from monitor.state.store import StateStore


@contextmanager
def read_only(store: StateStore) -> Iterator[None]:
    with store.lock:
        store.connection.execute("PRAGMA query_only = 1")
    try:
        yield
    finally:
        with store.lock:
            store.connection.execute("PRAGMA query_only = 0")
