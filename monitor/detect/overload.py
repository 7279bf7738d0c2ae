"""recmon's own overload, as a rule like any other: (state, load reading, now) → (state, events).
Pure.

An overloaded monitor cannot tell a slow tenant from its own slowness: latencies measured
while its event loop lagged are withheld, and so are timeouts of probes its loop stood still
for. Rather than let tenants page for its own sickness, recmon pages this: it fires when
timeouts were withheld or the loop ran `lag` late, for `for`; resolves after `resolve_for`
without either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from monitor.config.model import OverloadRule
from monitor.detect.lifecycle import Description, Subject, Thresholds, Verdict, advance
from monitor.detect.series import AlertEvent, AlertState

RULE = "overload"
WHAT_TO_DO = (
    "shard the tenants across replicas (--shard i/n), lengthen the probe interval, or use "
    "engine.transport: asyncio (the least CPU per probe)"
)


@dataclass(frozen=True, slots=True)
class LoadReading:
    """What recmon saw of itself over the last reading window."""

    window_s: float
    withheld_timeouts: int  # probe timeouts withheld because the loop ran late
    probes: int  # probes that finished
    loop_lag_s: float  # the largest event-loop lag seen


@dataclass(frozen=True, slots=True)
class OverloadState:
    alerts: Mapping[str, AlertState] = field(default_factory=dict)


def overloaded(reading: LoadReading, rule: OverloadRule) -> bool:
    return reading.withheld_timeouts > 0 or reading.loop_lag_s >= rule.lag


def describe(reading: LoadReading) -> Description:
    finished = reading.probes + reading.withheld_timeouts
    summary = (
        f"recmon is overloaded: its event loop ran up to {reading.loop_lag_s:.2f}s late and "
        f"{reading.withheld_timeouts} probe timeouts of {finished} in the last "
        f"{reading.window_s:.0f}s were withheld (not counted against tenants), so tenant "
        f"alerts may be missing; {WHAT_TO_DO}"
    )
    details = {
        "loop_lag_s": round(reading.loop_lag_s, 4),
        "withheld_timeouts": reading.withheld_timeouts,
        "probes": reading.probes,
        "window_s": reading.window_s,
    }
    return summary, details


def observe_overload(
    state: OverloadState, reading: LoadReading, now: float, rule: OverloadRule
) -> tuple[OverloadState, list[AlertEvent]]:
    active = overloaded(reading, rule)
    alerts = dict(state.alerts)
    event = advance(
        alerts,
        RULE,
        Verdict(active, not active, lambda: describe(reading)),
        severity=rule.severity,
        now=now,
        subject=Subject(None, None),
        thresholds=Thresholds(rule.for_, rule.resolve_for),
    )
    return OverloadState(alerts), [] if event is None else [event]
