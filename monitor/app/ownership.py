"""Which shard a state file belongs to.

A state file holds the windows, baselines and alerts of one shard's tenants, and saving
replaces the stored series with the shard's own: a second shard on the same file would delete
the first one's state at every save. The file records its shard index on first use and refuses
any other. A new shard count with the same index is a reshard (a StatefulSet scaled up or
down keeps each pod's volume): accepted, with a warning, and the tenants that moved to another
pod start afresh there.
"""

from __future__ import annotations

import logging
from pathlib import Path

from monitor.core.tenancy import Shard
from monitor.state.store import StateStore, StateUnavailable

log = logging.getLogger("recmon.state")

OWNER_KEY = "shard"


def claim_for_shard(store: StateStore, shard: Shard) -> None:
    """Record `shard` as the file's owner, or raise StateUnavailable (nothing written) when
    another shard's state is in it."""
    recorded = store.get_meta(OWNER_KEY)
    if recorded is not None:
        try:
            previous = Shard.parse(recorded)
        except ValueError:
            previous = None
        if previous is None or previous.index != shard.index:
            raise StateUnavailable(
                f"state file {store.path} belongs to shard {recorded}, this is shard {shard}: "
                "each shard needs its own state.path (state written by another shard is "
                "never overwritten)"
            )
        if previous == shard:
            return
        log.warning(
            "shard count changed: tenants that moved to another shard start afresh there",
            extra={"fields": {"path": store.path, "was": recorded, "now": str(shard)}},
        )
    store.set_meta(OWNER_KEY, str(shard))


def open_for_shard(path: str | Path, shard: Shard) -> StateStore:
    """The state file, held by this process and claimed for `shard` (StateUnavailable if
    another process holds it or another shard's state is in it)."""
    store = StateStore.open(path)
    try:
        claim_for_shard(store, shard)
    except BaseException:
        store.close()
        raise
    return store
