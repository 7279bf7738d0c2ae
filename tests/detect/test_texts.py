"""What a page's text says is true: a tenant named once ("for tenant-002", not "for tenant
tenant-002"), and a resolve that says what holds now, not the numbers it fired with."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from monitor.alerting.hub import AlertHub
from monitor.alerting.tracker import AlertTracker
from monitor.config.model import AlertsSpec
from monitor.core.clock import ManualClock
from monitor.core.notifications import Severity
from monitor.core.results import Outcome, ProbeResult
from monitor.core.tenancy import tenant_named
from monitor.detect.series import AlertEvent, EventKind
from monitor.telemetry.metrics import Metrics

T0 = 1_700_000_000.0
E, O, X = Outcome.EMPTY, Outcome.OK, Outcome.TIMEOUT  # noqa: E741


def events_for(
    tenant: str, outcomes: list[Outcome], *, latency: list[float] | None = None, **alerts: object
) -> list[AlertEvent]:
    tracker = AlertTracker(
        AlertsSpec.model_validate(alerts),
        counting_checks={"search", "recommendations"},
        parents={"recommendations": "search"},
    )
    found = []
    for i, outcome in enumerate(outcomes):
        result = ProbeResult(
            tenant,
            "recommendations",
            outcome,
            latency[i] if latency else 0.06,
            0.0,
            status=200,
            reason="" if outcome is O else f"{outcome.value} happened",
        )
        found += tracker.observe(result, T0 + 60 * i)
    return found


def test_a_tenant_id_that_says_tenant_is_not_named_tenant_twice() -> None:
    assert tenant_named("tenant-002") == "tenant-002"
    assert tenant_named("Tenant_7") == "Tenant_7"
    assert tenant_named("acme") == "tenant acme"
    (firing, _) = events_for("tenant-002", [O, E, E, O, O, O])
    assert firing.summary.startswith("recommendations returned no items for tenant-002: 2 of")
    (firing, _) = events_for("acme", [O, E, E, O, O, O])
    assert firing.summary.startswith("recommendations returned no items for tenant acme: 2 of")


def test_an_empty_results_resolve_says_the_window_now_not_the_firing_numbers() -> None:
    firing, resolved = events_for("tenant-002", [O, O, E, E, O, O, O])
    assert (
        firing.summary
        == "recommendations returned no items for tenant-002: 2 of 4 probes in the last 5m"
    )
    assert resolved.kind is EventKind.RESOLVED
    assert resolved.summary == (
        "resolved: recommendations returned no items for tenant-002; "
        "now 2 of 5 probes empty in the last 5m"
    )


def test_a_failures_resolve_keeps_no_firing_counts_or_reasons() -> None:
    events = events_for("acme", [O, X, X, X, O, O, O, O, O, O])
    firing, resolved = [e for e in events if e.rule == "failures"]
    assert "3 of 4 probes failed" in firing.summary
    assert resolved.summary == (
        "resolved: recommendations failing for tenant acme; now 2 of 5 probes failed in the last 5m"
    )
    assert "mostly" not in resolved.summary and "3 of 4" not in resolved.summary


def test_a_latency_resolve_states_the_p95_now() -> None:
    latencies = [0.06] * 5 + [0.14] * 6 + [0.06] * 8
    events = events_for(
        "acme",
        [O] * len(latencies),
        latency=latencies,
        latency_drift={"baseline": "60ms", "for": "1s", "resolve_for": "1s"},
    )
    firing, resolved = [e for e in events if e.rule == "latency_drift"]
    assert "140ms is 2.3x its baseline 60ms" in firing.summary
    assert resolved.summary == (
        "resolved: recommendations p95 latency for tenant acme: the window's p95 is at least "
        "60ms, within 90ms now"
    )
    assert "140ms" not in resolved.summary


def test_the_log_line_of_a_resolve_says_resolved_once() -> None:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    hub = AlertHub(
        AlertsSpec.model_validate({}),
        {},
        metrics=Metrics(CollectorRegistry()),
        clock=ManualClock(start=T0),
        route=lambda decision: None,
    )
    resolve = AlertEvent(
        kind=EventKind.RESOLVED,
        rule="empty_results",
        tenant="acme",
        check="recommendations",
        severity=Severity.CRITICAL,
        started_at=T0,
        at=T0 + 60,
        summary="resolved: recommendations returned no items for tenant acme",
    )
    keep = Keep()
    logger = logging.getLogger("recmon.alerts")
    level = logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    try:
        hub.handle([resolve], T0 + 60)
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)
    assert "alert resolved: recommendations returned no items for tenant acme" in lines
    assert not [line for line in lines if "resolved: resolved" in line]
