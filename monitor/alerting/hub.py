"""Between probes and pages: runs the detector on each result, keeps the alert gauges, plans
notifications and hands them to the router (the outbox)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

from monitor.alerting.tracker import AlertTracker
from monitor.config.model import AlertsSpec, TlsSpec
from monitor.core.clock import Clock
from monitor.core.notifications import Notification
from monitor.core.results import ProbeResult
from monitor.detect.state import AlertEvent, EventKind
from monitor.probing.checks import HttpCheck
from monitor.telemetry.metrics import Metrics
from monitor.tls.prober import TlsResult
from monitor.tls.rules import TLS_CHECK

log = logging.getLogger("recmon.alerts")

Route = Callable[[Sequence[Notification]], None]
TICK_S = 1.0


class AlertHub:
    def __init__(
        self,
        spec: AlertsSpec,
        checks: Mapping[str, HttpCheck],
        *,
        metrics: Metrics,
        clock: Clock,
        route: Route,
        tls: TlsSpec | None = None,
        location: str = "",
        tenant_pages: bool = True,
    ) -> None:
        self.metrics = metrics
        self.clock = clock
        self.route = route
        self.tracker = AlertTracker(
            spec,
            counting_checks=[name for name, check in checks.items() if check.items is not None],
            parents={name: check.after for name, check in checks.items() if check.after},
            tls=tls,
            location=location,
            tenant_pages=tenant_pages,
        )
        # Events whose notifications could not be stored (the state file failed): planned
        # again at the next tick, so a failing disk delays a page instead of losing it.
        self._unstored: list[AlertEvent] = []

    def observe(self, result: ProbeResult) -> None:
        now = self.clock.time()
        events = self.tracker.observe(result, now)
        p95, baseline = self.tracker.latency(result.tenant, result.check, now)
        self.metrics.set_latency(result.tenant, result.check, p95, baseline)
        if events:
            self.handle(events, now)

    def observe_tls(self, host: str, results: Sequence[TlsResult]) -> None:
        now = self.clock.time()
        events = self.tracker.observe_tls(host, results, now)
        if events:
            self.handle(events, now)

    def handle(self, events: Iterable[AlertEvent], now: float, *, flush: bool = False) -> None:
        events = list(events)
        for event in events:
            firing = event.kind is EventKind.FIRING
            self._gauge(
                event.rule, event.variant, event.tenant, event.check, event.severity.value, firing
            )
            (log.warning if firing else log.info)(
                f"alert {event.kind.value}: {event.summary}",
                extra={
                    "fields": {
                        "alert": event.rule,
                        "tenant": event.tenant,
                        "check": event.check,
                        "severity": event.severity.value,
                        "key": event.key,
                    }
                },
            )
        events = self._unstored + events
        before = self.tracker.planner
        notifications = self.tracker.plan(events, now, flush=flush)
        if notifications:
            try:
                self.route(notifications)
            except Exception:
                # Nothing was stored: forget the decision, decide again next tick.
                self.tracker.planner = before
                self._unstored = events
                self.metrics.internal_errors.labels("outbox").inc()
                log.exception(
                    "notifications could not be stored; they are planned again in a second",
                    extra={"fields": {"notifications": len(notifications)}},
                )
                return
        self._unstored = []
        for notification in notifications:
            log.info(
                f"notification planned: {notification.action.value} {notification.key}",
                extra={"fields": {"id": notification.id, "severity": notification.severity.value}},
            )

    def tick(self, *, flush: bool = False) -> None:
        """Release alerts whose group wait is over (or all of them, with flush)."""
        self.handle((), self.clock.time(), flush=flush)

    def set_tenants(self, tenants: Sequence[str], removed: Iterable[str]) -> None:
        self.tracker.total_tenants = len(tenants)
        now = self.clock.time()
        events: list[AlertEvent] = []
        for tenant in removed:
            events += self.tracker.forget_tenant(tenant, now)
        if events:
            self.handle(events, now)

    def restore_gauges(self) -> None:
        """After loading saved state: show what fires."""
        for (subject, check), rule_id, alert in self.tracker.firing():
            rule, _, variant = rule_id.partition(":")
            if check == TLS_CHECK:
                self._gauge(rule, subject, None, check, alert.severity.value, True)
            else:
                self._gauge(rule, variant, subject, check, alert.severity.value, True)

    def _gauge(
        self,
        rule: str,
        variant: str,
        tenant: str | None,
        check: str | None,
        severity: str,
        firing: bool,
    ) -> None:
        """recmon_alerts_firing: error-rate alerts name their outcome (alert="error_rate:timeout");
        certificate alerts put their host where tenant alerts put the check."""
        if check == TLS_CHECK:
            self.metrics.set_alert(rule, "", variant, severity, firing)
        else:
            alert = f"{rule}:{variant}" if variant else rule
            self.metrics.set_alert(alert, tenant or "", check or "", severity, firing)

    @property
    def firing(self) -> int:
        return len(self.tracker.firing())

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.clock.sleep(TICK_S)
            try:
                self.tick()
            except Exception:  # a bug: count it, keep releasing held alerts
                self.metrics.internal_errors.labels("alerts").inc()
                log.exception("alert tick failed")
