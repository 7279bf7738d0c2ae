"""The detector's state to JSON and back (the state file stores it opaque). Unknown or broken
entries raise ValueError."""

from __future__ import annotations

from typing import Any

from monitor.core.notifications import Severity
from monitor.core.results import Outcome
from monitor.detect.state import AlertEvent, AlertState, AlertStatus, EventKind, Sample, SeriesState
from monitor.detect.stats import DecayingHistogram


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
