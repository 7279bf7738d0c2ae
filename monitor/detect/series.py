"""What the detector remembers per tenant × check. Frozen: a snapshot is a reference copy."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from monitor.core.notifications import Severity
from monitor.detect.stats import DecayingHistogram


class Sample(NamedTuple):
    """One probe, as a window remembers it. A tuple of plain atoms (the outcome by its string
    value): CPython's garbage collector stops tracking such tuples, and tens of thousands of
    windows no longer lengthen every full collection."""

    at: float
    outcome: str  # an Outcome value; Outcome members compare equal to it
    latency: float | None  # None unless the probe got a complete answer, timed trustworthily
    reason: str = ""


class AlertStatus(enum.StrEnum):
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True, slots=True)
class AlertState:
    status: AlertStatus
    since: float  # condition true since
    fired_at: float | None = None
    clear_since: float | None = None  # while firing: condition clear since
    severity: Severity = Severity.WARNING
    summary: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SeriesState:
    samples: tuple[Sample, ...] = ()
    empty_streak: int = 0
    failure_streak: int = 0
    ok_streak: int = 0
    baseline: DecayingHistogram = DecayingHistogram()
    # Samples join the baseline only once they leave the short window, and only if drift was
    # not suspected meanwhile: a slowdown is judged before it can become the new normal.
    learned_until: float = 0.0
    # The slow-burn error-rate rule stays quiet until the outage a faster rule paged for has
    # left its (longer) window, so recovering from one outage does not page a second time.
    slow_burn_quiet_until: float = 0.0
    # p95 of the short window as of the last probe (the recmon_latency_p95_seconds gauge).
    window_p95: float | None = None
    # rule id ("empty_results", "error_rate:timeout", ...) → state; absent = inactive.
    alerts: Mapping[str, AlertState] = field(default_factory=dict)

    @property
    def last(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def firing(self) -> dict[str, AlertState]:
        return {k: a for k, a in self.alerts.items() if a.status is AlertStatus.FIRING}

    def latencies(self, since: float) -> list[float]:
        """Trusted ok latencies of samples after `since` (a window is (now - length, now])."""
        return [s.latency for s in self.samples if s.at > since and s.latency is not None]

    def window(self, since: float) -> list[Sample]:
        return [s for s in self.samples if s.at > since]


class EventKind(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A detector's verdict: an alert of one series started or stopped firing."""

    kind: EventKind
    rule: str  # empty_results, failures, error_rate, latency_drift, latency_slo, tls_*
    tenant: str | None
    check: str | None
    severity: Severity
    started_at: float  # when it fired
    at: float
    summary: str
    variant: str = ""  # error_rate: the outcome; tls: the host
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Stable identity of the alert: the PagerDuty dedup_key, the outbox's grouping."""
        parts = ["recmon", self.rule, self.check or "-", self.tenant or "-"]
        if self.variant:
            parts.append(self.variant)
        return "/".join(parts)
