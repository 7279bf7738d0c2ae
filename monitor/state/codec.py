"""Detector and planner states to JSON and back. Unknown or broken entries raise ValueError."""

from __future__ import annotations

from typing import Any

from monitor.alerting.planner import Group, PlannerState
from monitor.core.notifications import Notification, Severity
from monitor.core.results import Outcome
from monitor.detect.state import AlertEvent, AlertState, AlertStatus, EventKind, Sample, SeriesState
from monitor.detect.stats import DecayingHistogram
from monitor.tls.rules import HostState


def series_to_json(state: SeriesState) -> dict[str, Any]:
    return {
        "s": [[s.at, s.outcome, s.latency, s.reason] for s in state.samples],
        "streaks": [state.empty_streak, state.failure_streak, state.ok_streak],
        "b": [state.baseline.updated_at, [[i, w] for i, w in state.baseline.buckets]],
        "learned_until": state.learned_until,
        "quiet_until": state.slow_burn_quiet_until,
        "p95": state.window_p95,
        "alerts": {k: alert_to_json(a) for k, a in state.alerts.items()},
    }


def series_from_json(data: dict[str, Any]) -> SeriesState:
    try:
        empty, failure, ok = (int(v) for v in data["streaks"])
        updated_at, buckets = data["b"]
        return SeriesState(
            samples=tuple(
                Sample(
                    float(at),
                    Outcome(outcome).value,
                    None if latency is None else float(latency),
                    str(reason),
                )
                for at, outcome, latency, reason in data["s"]
            ),
            empty_streak=empty,
            failure_streak=failure,
            ok_streak=ok,
            baseline=DecayingHistogram.restore(
                tuple((int(i), float(w)) for i, w in buckets), float(updated_at)
            ),
            learned_until=float(data.get("learned_until", 0.0)),
            slow_burn_quiet_until=float(data.get("quiet_until", 0.0)),
            window_p95=None if data.get("p95") is None else float(data["p95"]),
            alerts={str(k): alert_from_json(v) for k, v in data["alerts"].items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"unreadable series state: {exc}") from None


def alert_to_json(alert: AlertState) -> dict[str, Any]:
    return {
        "status": alert.status.value,
        "since": alert.since,
        "fired_at": alert.fired_at,
        "clear_since": alert.clear_since,
        "severity": alert.severity.value,
        "summary": alert.summary,
        "details": dict(alert.details),
    }


def alert_from_json(data: dict[str, Any]) -> AlertState:
    return AlertState(
        status=AlertStatus(data["status"]),
        since=float(data["since"]),
        fired_at=None if data.get("fired_at") is None else float(data["fired_at"]),
        clear_since=None if data.get("clear_since") is None else float(data["clear_since"]),
        severity=Severity(data.get("severity", "warning")),
        summary=str(data.get("summary", "")),
        details=dict(data.get("details") or {}),
    )


def event_to_json(event: AlertEvent) -> dict[str, Any]:
    return {
        "kind": event.kind.value,
        "rule": event.rule,
        "tenant": event.tenant,
        "check": event.check,
        "severity": event.severity.value,
        "started_at": event.started_at,
        "at": event.at,
        "summary": event.summary,
        "variant": event.variant,
        "details": dict(event.details),
    }


def event_from_json(data: dict[str, Any]) -> AlertEvent:
    return AlertEvent(
        kind=EventKind(data["kind"]),
        rule=str(data["rule"]),
        tenant=data.get("tenant"),
        check=data.get("check"),
        severity=Severity(data["severity"]),
        started_at=float(data["started_at"]),
        at=float(data["at"]),
        summary=str(data["summary"]),
        variant=str(data.get("variant", "")),
        details=dict(data.get("details") or {}),
    )


def planner_to_json(state: PlannerState) -> dict[str, Any]:
    return {
        "firing": {k: event_to_json(e) for k, e in state.firing.items()},
        "held": dict(state.held),
        "notified": {k: n.to_json() for k, n in state.notified.items()},
        "groups": {
            k: {"started_at": g.started_at, "trigger": g.trigger.to_json()}
            for k, g in state.groups.items()
        },
    }


def planner_from_json(data: dict[str, Any]) -> PlannerState:
    try:
        return PlannerState(
            firing={str(k): event_from_json(v) for k, v in data["firing"].items()},
            held={str(k): float(v) for k, v in data["held"].items()},
            notified={str(k): Notification.from_json(v) for k, v in data["notified"].items()},
            groups={
                str(k): Group(str(k), float(v["started_at"]), Notification.from_json(v["trigger"]))
                for k, v in data["groups"].items()
            },
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"unreadable planner state: {exc}") from None


def tls_hosts_to_json(hosts: dict[str, HostState]) -> dict[str, Any]:
    return {
        host: {
            "inconsistent_since": state.inconsistent_since,
            "alerts": {k: alert_to_json(a) for k, a in state.alerts.items()},
        }
        for host, state in hosts.items()
    }


def tls_hosts_from_json(data: dict[str, Any]) -> dict[str, HostState]:
    try:
        return {
            str(host): HostState(
                None if v.get("inconsistent_since") is None else float(v["inconsistent_since"]),
                {str(k): alert_from_json(a) for k, a in v["alerts"].items()},
            )
            for host, v in data.items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"unreadable certificate state: {exc}") from None
