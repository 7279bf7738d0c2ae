"""recmon's own state file, as a rule like any other: (state, write health, now) → (state,
events). Pure.

The outbox stores every page before it is sent, so that an outage of a sink or a crash loses
none. When the state file takes no writes (a full volume, a read-only file system, an I/O
error) pages are sent from memory instead, and that is not crash-safe: recmon pages this at
once, critical. It resolves once writes have succeeded, with no failure, for `RELEASE_S`: a
nearly full volume where some writes pass and others fail is one incident, not a page a
minute. (Measured on a full 300 KB tmpfs: the outbox's small writes pass, reusing the WAL
space a failed save left, while the state save every 60 s fails; a one-minute release
resolved and fired again at each save.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from monitor.core.notifications import Severity
from monitor.detect.lifecycle import Description, Subject, Thresholds, Verdict, advance
from monitor.detect.series import AlertEvent, AlertState
from monitor.state.store import WriteHealth

RULE = "state_unwritable"
RELEASE_S = 300.0  # five state saves (app.persist.SAVE_EVERY_S), as the Prometheus rule's 5m
WHAT_TO_DO = (
    "free space on the state volume or make it writable again (state.path); pages are sent "
    "from memory meanwhile, and a restart now could lose or repeat them"
)


@dataclass(frozen=True, slots=True)
class StorageState:
    alerts: Mapping[str, AlertState] = field(default_factory=dict)
    failures_seen: int = 0  # the write health's failure count at the last reading


def unwritable(state: StorageState, health: WriteHealth) -> bool:
    """The last write failed, or one failed since the last reading."""
    return health.failing or health.failures > state.failures_seen


def describe(health: WriteHealth) -> Description:
    reason = health.error or "write failed"
    summary = f"state file unwritable: {reason} ({health.path}); {WHAT_TO_DO}"
    return summary, {"path": health.path, "reason": reason, "failed_writes": health.failures}


def observe_storage(
    state: StorageState, health: WriteHealth, now: float
) -> tuple[StorageState, list[AlertEvent]]:
    active = unwritable(state, health)
    alerts = dict(state.alerts)
    event = advance(
        alerts,
        RULE,
        Verdict(active, not active, lambda: describe(health)),
        severity=Severity.CRITICAL,
        now=now,
        subject=Subject(None, None),
        thresholds=Thresholds(0.0, RELEASE_S),
    )
    return StorageState(alerts, health.failures), [] if event is None else [event]
