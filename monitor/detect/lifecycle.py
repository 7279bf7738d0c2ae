"""The one alert lifecycle every rule shares — tenant rules and certificate rules alike. Pure.

A rule reads its evidence into a `Verdict` (is the condition active, is the recovery condition
clear); `advance` moves the rule's alert through

    (absent) → pending → firing → resolving → (absent)

pending: active, not yet long enough (`hold`); firing: paged; resolving: firing, clear, not
yet long enough (`release`). A pending alert that stops being active is dropped without a
word; a resolving alert that stops being clear is firing again. Failure and success thresholds
counted in probes or rounds live in the verdicts (a streak is evidence); thresholds in time
live here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from monitor.config.units import format_duration
from monitor.core.notifications import Severity
from monitor.core.tenancy import tenant_named
from monitor.detect.series import AlertEvent, AlertState, AlertStatus, EventKind

Description = tuple[str, dict[str, Any]]  # what a page says: summary, details


@dataclass(frozen=True, slots=True)
class Verdict:
    """One rule's reading of its evidence."""

    active: bool  # the alert condition holds
    clear: bool  # the recovery condition holds (hysteresis: not simply "not active")
    # The page's text, built only for an alert that is pending or firing: nearly every probe
    # of nearly every series finds nothing, and writing each rule's text anyway was a fifth
    # of a probe's CPU.
    describe: Callable[[], Description] | None = None


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Seconds a condition must hold before the alert fires (`hold`) and seconds the recovery
    condition must hold before it resolves (`release`)."""

    hold: float = 0.0
    release: float = 0.0


IMMEDIATE = Thresholds()


@dataclass(frozen=True, slots=True)
class Subject:
    """What an alert is about, as its events name it."""

    tenant: str | None
    check: str | None


def advance(
    alerts: dict[str, AlertState],
    rule_id: str,
    verdict: Verdict,
    *,
    severity: Severity,
    now: float,
    subject: Subject,
    thresholds: Thresholds = IMMEDIATE,
    variant: str | None = None,
) -> AlertEvent | None:
    """Apply one verdict to the alert `alerts[rule_id]` (updated in place); the event, if the
    alert started or stopped firing. `rule_id` is "rule" or "rule:variant"; `variant`, when
    given, overrides the part after the colon (certificate alerts: the host)."""
    previous = alerts.get(rule_id)
    current, kind = transition(previous, verdict, now, thresholds)
    if current is None:
        alerts.pop(rule_id, None)
    elif verdict.active or not current.summary:
        # What the page says is what was wrong while it was wrong, also on resolve.
        summary, details = verdict.describe() if verdict.describe else ("", None)
        alerts[rule_id] = replace(
            current,
            severity=severity,
            summary=summary or current.summary,
            details=details if details is not None else current.details,
        )
    else:
        alerts[rule_id] = current
    if kind is None:
        return None
    rule, _, suffix = rule_id.partition(":")
    latest = alerts.get(rule_id) or previous
    assert latest is not None
    if kind is EventKind.FIRING:
        summary = latest.summary
    else:
        summary = resolved_summary(latest.summary, verdict, subject)
    return AlertEvent(
        kind=kind,
        rule=rule,
        tenant=subject.tenant,
        check=subject.check,
        severity=severity,
        started_at=now if latest.fired_at is None else latest.fired_at,
        at=now,
        summary=summary,
        variant=suffix if variant is None else variant,
        details=dict(latest.details),
    )


# Evidence counts a tenant rule's page carries, and the word a resolve says them with.
_BAD_PROBES = {"empty_probes": "empty", "failed_probes": "failed", "refused_probes": "refused"}


def resolved_summary(fired: str, verdict: Verdict, subject: Subject) -> str:
    """A resolve says what is true now: what had fired, without the numbers it fired with
    ("3 of 5 probes failed"), and the figures of the window that cleared it."""
    if verdict.describe is not None and subject.tenant is None:
        current, details = verdict.describe()
        if details.get("scope") == "fleet" and details.keys() >= {"failed", "probes", "window_s"}:
            # A fleet incident: "search failing for 1 in 3 requests (33%) across …" → what
            # failed, and the share of the window that cleared it.
            what = fired.split(" for ", 1)[0]
            word = "empty" if "returned no items" in what else "failed"
            return (
                f"resolved: {what} across the fleet; now {details['failed']} of "
                f"{details['probes']} probes {word} in the last {details['window_s']}s"
            )
    if subject.tenant is None or verdict.describe is None:
        return f"resolved: {fired}"  # certificates: their text names what is still served
    current, details = verdict.describe()
    for key, word in _BAD_PROBES.items():
        if key in details and "probes" in details and "window_s" in details:
            # "search failing for tenant-002: 3 of 5 …" → "search failing for tenant-002"
            headline = fired.split(": ", 1)[0]
            if subject.tenant not in headline:
                headline = fired.split(" (", 1)[0]
            return (
                f"resolved: {headline}; now {details[key]} of {details['probes']} probes "
                f"{word} in the last {format_duration(details['window_s'])}"
            )
    bound = details.get("p95_lower_bound_s")
    limit = details.get("threshold_s", details.get("objective_s"))
    if bound is not None and limit is not None and subject.check is not None:
        # Latency resolves when the window's p95 is no longer surely above the limit: its
        # lower confidence bound (the point p95 may still show the slow probes).
        return (
            f"resolved: {subject.check} p95 latency for {tenant_named(subject.tenant)}: the "
            f"window's p95 is at least {bound * 1000:.0f}ms, within {limit * 1000:.0f}ms now"
        )
    # Error rates: their text read now is true now (a cause note after "; " is not).
    return f"resolved: now {current.split('; ', 1)[0]}"


def transition(
    previous: AlertState | None, verdict: Verdict, now: float, thresholds: Thresholds
) -> tuple[AlertState | None, EventKind | None]:
    """The alert's next state, and the event when it starts or stops firing."""
    hold, release = thresholds.hold, thresholds.release
    if previous is None:
        if not verdict.active:
            return None, None
        if hold <= 0:
            return AlertState(AlertStatus.FIRING, since=now, fired_at=now), EventKind.FIRING
        return AlertState(AlertStatus.PENDING, since=now), None
    if previous.status is AlertStatus.PENDING:
        if not verdict.active:
            return None, None
        if now - previous.since >= hold:
            return replace(previous, status=AlertStatus.FIRING, fired_at=now), EventKind.FIRING
        return previous, None
    # firing (resolving while clear_since is set)
    if not verdict.clear:
        return replace(previous, clear_since=None), None
    clear_since = previous.clear_since if previous.clear_since is not None else now
    if now - clear_since >= release:
        return None, EventKind.RESOLVED
    return replace(previous, clear_since=clear_since), None


def forgotten(rule_id: str, alert: AlertState, subject: Subject, now: float) -> AlertEvent | None:
    """The event of an alert whose series is dropped (its tenant no longer monitored): a
    firing one resolves, saying why; a pending one goes without a word."""
    if alert.status is not AlertStatus.FIRING:
        return None
    rule, _, variant = rule_id.partition(":")
    return AlertEvent(
        kind=EventKind.RESOLVED,
        rule=rule,
        tenant=subject.tenant,
        check=subject.check,
        severity=alert.severity,
        started_at=alert.fired_at or now,
        at=now,
        summary=f"resolved (tenant no longer monitored): {alert.summary}",
        variant=variant,
    )
