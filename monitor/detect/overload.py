"""recmon's own overload, as a rule like any other: (state, load reading, now) → (state, events).
Pure.

An overloaded monitor cannot tell a slow tenant from its own slowness: latencies measured
while its event loop lagged are withheld, and so are timeouts of probes its loop stood still
for. Rather than let tenants page for its own sickness, recmon pages this: it fires when
timeouts were withheld or the loop ran `lag` late, for `for`; resolves after `resolve_for`
without either.

A monitor that probes less often than configured detects later than promised, and that is
overload too, even when its loop keeps time: it fires as well when more than `skipped` of the
runs due were skipped (the previous run still going), when most runs started more than `late`
of their interval after their slot, or when most latencies were withheld as untrusted. The
page says by how much: "probing each tenant every 2.3 s on average, configured 1 s".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    # The largest lag and the timeouts withheld in the last LAG_SPAN_S (None: the window's),
    # what the rule judges: one pause or one withheld timeout would otherwise keep the
    # minute's reading overloaded for `for` and page for nothing.
    recent_lag_s: float | None = None
    recent_withheld: int | None = None
    untrusted: int = 0  # latencies withheld as untrusted (the loop ran late during the probe)
    paces: tuple[Pace, ...] = ()  # how each scheduled check kept its interval


@dataclass(frozen=True, slots=True)
class Pace:
    """One check's runs in the reading window: what its schedule asked of recmon, and what ran."""

    check: str
    interval_s: float  # configured
    started: int  # runs that started
    skipped: int  # runs skipped: the previous one still going, or the slot long past
    late: int  # runs that started more than the rule's `late` share of the interval late

    @property
    def due(self) -> int:
        return self.started + self.skipped

    @property
    def achieved_s(self) -> float:
        """The interval each tenant was probed at, on average (inf: no run started)."""
        return self.interval_s * self.due / self.started if self.started else float("inf")


@dataclass(frozen=True, slots=True)
class Tally:
    """Counts since start, read once a reading; two of them make a reading's window."""

    at: float  # monotonic
    finished: int = 0  # probes that finished (results)
    withheld: int = 0  # timeouts withheld
    untrusted: int = 0  # results whose latency is untrusted
    started: Mapping[str, int] = field(default_factory=dict)  # by check
    skipped: Mapping[str, int] = field(default_factory=dict)
    late: Mapping[str, int] = field(default_factory=dict)


def reading_between(
    earlier: Tally,
    later: Tally,
    *,
    intervals: Mapping[str, float],
    loop_lag_s: float,
    recent_lag_s: float | None = None,
    recent: Tally | None = None,
) -> LoadReading:
    """`recent`: the tally LAG_SPAN_S ago, for the withheld timeouts the rule judges."""
    """What happened between two tallies (`intervals`: each scheduled check's, configured)."""

    def runs(counts: Mapping[str, int], before: Mapping[str, int], check: str) -> int:
        return counts.get(check, 0) - before.get(check, 0)

    paces = tuple(
        Pace(
            check,
            interval,
            runs(later.started, earlier.started, check),
            runs(later.skipped, earlier.skipped, check),
            runs(later.late, earlier.late, check),
        )
        for check, interval in sorted(intervals.items())
    )
    return LoadReading(
        window_s=max(later.at - earlier.at, 0.0),
        withheld_timeouts=later.withheld - earlier.withheld,
        probes=later.finished - earlier.finished,
        loop_lag_s=loop_lag_s,
        recent_lag_s=recent_lag_s,
        recent_withheld=None if recent is None else later.withheld - recent.withheld,
        untrusted=later.untrusted - earlier.untrusted,
        paces=tuple(p for p in paces if p.due),
    )


# Shares are judged on at least this many runs (or probes) in the window: one skipped run of
# two is no schedule falling behind.
MIN_RUNS = 10
# The loop-lag and withheld-timeout conditions hold while a lag of `lag`, or a withheld
# timeout, was seen this recently: `for` then means sustained.
LAG_SPAN_S = 10.0
MOST = 0.5  # "most runs started late", "most latencies withheld"
SLOWER = 1.05  # the achieved interval is worth a mention from 5% over the configured one


def _share(part: int, whole: int) -> float:
    return part / whole if whole >= MIN_RUNS else 0.0


def skipped_share(reading: LoadReading) -> float:
    return _share(sum(p.skipped for p in reading.paces), sum(p.due for p in reading.paces))


def late_share(reading: LoadReading) -> float:
    return _share(sum(p.late for p in reading.paces), sum(p.started for p in reading.paces))


def untrusted_share(reading: LoadReading) -> float:
    return _share(reading.untrusted, reading.probes)


def slowest(paces: Sequence[Pace]) -> Pace | None:
    """The check furthest behind its interval."""
    return max(paces, key=lambda p: p.due / p.started if p.started else float("inf"), default=None)


@dataclass(frozen=True, slots=True)
class OverloadState:
    alerts: Mapping[str, AlertState] = field(default_factory=dict)


def behind(reading: LoadReading, rule: OverloadRule) -> bool:
    """Falling behind the schedule: runs skipped, most started late, or most latencies withheld."""
    return (
        skipped_share(reading) > rule.skipped
        or late_share(reading) > MOST
        or untrusted_share(reading) > MOST
    )


def overloaded(reading: LoadReading, rule: OverloadRule) -> bool:
    lag = reading.loop_lag_s if reading.recent_lag_s is None else reading.recent_lag_s
    withheld = (
        reading.withheld_timeouts if reading.recent_withheld is None else reading.recent_withheld
    )
    return withheld > 0 or lag >= rule.lag or behind(reading, rule)


def _seconds(value: float) -> str:
    """0.25 s, 2.3 s, 1 s, 15 s: a tenth where it tells something, two figures under a second
    (a tenth would print a 0.25 s interval as 0.2 s)."""
    if value < 1:
        text = f"{value:.2g}"
    else:
        text = f"{value:.1f}".removesuffix(".0") if value < 10 else f"{value:.0f}"
    return f"{text} s"


def _pace(reading: LoadReading) -> str | None:
    """ "probing each tenant every 2.3 s on average, configured 1 s" (the check named when the
    checks' intervals differ); None when every check keeps its interval."""
    pace = slowest(reading.paces)
    if pace is None or pace.due < SLOWER * pace.started:
        return None
    whose = (
        "each tenant"
        if len({p.interval_s for p in reading.paces}) == 1
        else (f"each tenant's {pace.check}")
    )
    if not pace.started:
        return (
            f"no run of {pace.check} started in the last {reading.window_s:.0f}s "
            f"(configured every {_seconds(pace.interval_s)})"
        )
    return (
        f"probing {whose} every {_seconds(pace.achieved_s)} on average, "
        f"configured {_seconds(pace.interval_s)}"
    )


def describe(reading: LoadReading, rule: OverloadRule) -> Description:
    finished = reading.probes + reading.withheld_timeouts
    behind_by = [
        text
        for text in (
            _pace(reading),
            f"{skipped_share(reading):.0%} of runs skipped" if skipped_share(reading) else None,
            (
                f"{late_share(reading):.0%} of runs started over {rule.late:.0%} of their "
                "interval late"
            )
            if late_share(reading) > MOST
            else None,
            (
                f"{untrusted_share(reading):.0%} of latencies withheld as untrusted"
                if untrusted_share(reading) > MOST
                else None
            ),
        )
        if text
    ]
    lagging = f"its event loop ran up to {reading.loop_lag_s:.2f}s late"
    if reading.withheld_timeouts or not behind_by:
        lagging += (
            f" and {reading.withheld_timeouts} probe timeouts of {finished} in the last "
            f"{reading.window_s:.0f}s were withheld (not counted against tenants)"
        )
    if behind_by:
        behind_by[-1] += f" in the last {reading.window_s:.0f}s"
    summary = (
        f"recmon is overloaded: {'; '.join([*behind_by, lagging])}, so tenant alerts may be "
        f"missing or late; {WHAT_TO_DO}"
    )
    pace = slowest(reading.paces)
    details: dict[str, object] = {
        "loop_lag_s": round(reading.loop_lag_s, 4),
        "withheld_timeouts": reading.withheld_timeouts,
        "probes": reading.probes,
        "window_s": reading.window_s,
        "runs_due": sum(p.due for p in reading.paces),
        "runs_skipped": sum(p.skipped for p in reading.paces),
        "runs_late": sum(p.late for p in reading.paces),
        "latencies_untrusted": reading.untrusted,
    }
    if pace is not None:
        details["configured_interval_s"] = pace.interval_s
        details["achieved_interval_s"] = round(pace.achieved_s, 3) if pace.started else None
    return summary, details


def observe_overload(
    state: OverloadState, reading: LoadReading, now: float, rule: OverloadRule
) -> tuple[OverloadState, list[AlertEvent]]:
    active = overloaded(reading, rule)
    alerts = dict(state.alerts)
    event = advance(
        alerts,
        RULE,
        Verdict(active, not active, lambda: describe(reading, rule)),
        severity=rule.severity,
        now=now,
        subject=Subject(None, None),
        thresholds=Thresholds(rule.for_, rule.resolve_for),
    )
    return OverloadState(alerts), [] if event is None else [event]
