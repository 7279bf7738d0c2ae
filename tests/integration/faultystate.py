"""`python -m tests.integration.faultystate ARGS...`: recmon's command line, with writes to
its state file failing at the SQLite layer while a trigger file beside the state file exists
(RECMON_FAULTY_STATE names the state file). For where a real full or read-only file system
cannot be mounted:

- `<state>.full`: every write transaction fails with SQLite's "database or disk is full"
  (SQLITE_FULL, what ENOSPC gives), raised in the transaction so it is rolled back;
- `<state>.readonly`: the connection is switched to `PRAGMA query_only`, so SQLite itself
  refuses every write ("attempt to write a readonly database", as on a read-only mount).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from monitor.cli import main
from monitor.state.store import StateStore


def install(state: Path) -> None:
    original = StateStore.transaction

    @contextmanager
    def transaction(self: StateStore) -> Iterator[sqlite3.Connection]:
        with self.lock:
            readonly = Path(f"{state}.readonly").exists()
            self.connection.execute(f"PRAGMA query_only = {int(readonly)}")
            with original(self) as db:
                if Path(f"{state}.full").exists():
                    raise sqlite3.OperationalError("database or disk is full")
                yield db

    StateStore.transaction = transaction  # type: ignore[method-assign]


if __name__ == "__main__":
    install(Path(os.environ["RECMON_FAULTY_STATE"]))
    sys.exit(main())
