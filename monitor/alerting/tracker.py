"""Holds the detector's state for every series and the certificate rules' state per host; no
I/O. The pure functions (detector.observe, tls.rules.observe_host) do the thinking; this keeps
their states between calls and answers questions about them (what fires, what p95, what
baseline). The planner's state is the hub's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from monitor.alerting.planner import PlannerState
from monitor.config.model import AlertsSpec, FallbackRule, TlsSpec
from monitor.core.certinfo import CertificateInfo
from monitor.core.results import Outcome, ProbeResult
from monitor.detect import content
from monitor.detect.content import ContentSpec, ContentState
from monitor.detect.detector import Parent, baseline_p95, observe
from monitor.detect.lifecycle import Subject, forgotten
from monitor.detect.rules import Rulebook
from monitor.detect.series import AlertEvent, AlertState, AlertStatus, SeriesState
from monitor.probing.checks import HttpCheck
from monitor.tls.prober import TlsResult
from monitor.tls.rules import (
    CLIENT_PREFIX,
    TLS_CHECK,
    HostState,
    observe_client_certificate,
    observe_host,
)

SeriesKey = tuple[str, str]  # (tenant, check)


def content_specs(checks: Mapping[str, HttpCheck], rule: FallbackRule) -> dict[str, ContentSpec]:
    """The checks whose answers are judged across requests and tenants."""
    specs = {}
    for name, check in checks.items():
        if not check.judged_across:
            continue
        specs[name] = ContentSpec(
            check=name,
            interval=check.interval,
            fallback=rule if check.fallback and rule.enabled else None,
            tenant_pattern=check.tenant_pattern,
            disjoint=check.items_disjoint,
            changes_within=check.changes_within,
        )
    return specs


class AlertTracker:
    def __init__(
        self,
        spec: AlertsSpec,
        *,
        counting_checks: Iterable[str],
        parents: Mapping[str, str],
        tls: TlsSpec | None = None,
        content_specs: Mapping[str, ContentSpec] | None = None,
    ) -> None:
        self.spec = spec
        self.rulebook = Rulebook(spec, frozenset(counting_checks))
        # check → the check it runs after (recommendations → search), for correlation.
        self.parents = dict(parents)
        self.series: dict[SeriesKey, SeriesState] = {}
        self.tls_hosts: dict[str, HostState] = {}
        # Without it (no certificate watch), certificate results raise no alerts.
        self.tls_spec = tls
        # Answers judged across requests and tenants (detect/content.py), one state per check.
        self.content_specs = dict(content_specs or {})
        self.content: dict[str, ContentState] = {}
        self._tenants = 0  # probed, for the fleet's share

    def observe_tls(self, host: str, results: Sequence[TlsResult], now: float) -> list[AlertEvent]:
        if self.tls_spec is None:
            return []
        state = self.tls_hosts.get(host) or HostState()
        state, events = observe_host(state, host, results, now, self.tls_spec)
        self.tls_hosts[host] = state
        return events

    def observe_client_certificate(
        self, target: str, cert: CertificateInfo | None, now: float
    ) -> list[AlertEvent]:
        if self.tls_spec is None:
            return []
        key = CLIENT_PREFIX + target
        state = self.tls_hosts.get(key) or HostState()
        state, events = observe_client_certificate(state, target, cert, now, self.tls_spec)
        self.tls_hosts[key] = state
        return events

    def observe(self, result: ProbeResult, now: float) -> list[AlertEvent]:
        return self.observe_probe(result, now)[0]

    def observe_probe(
        self, result: ProbeResult, now: float
    ) -> tuple[list[AlertEvent], float | None, float | None]:
        """observe(), with the series' (window p95, baseline p95) after it for the gauges
        (what latency() answers, from the state and rules in hand)."""
        key = (result.tenant, result.check)
        state = self.series.get(key) or SeriesState()
        parent_check = self.parents.get(result.check)
        parent = None
        if parent_check is not None:
            parent_state = self.series.get((result.tenant, parent_check))
            if parent_state is not None:
                parent = Parent(parent_check, parent_state)
        rules = self.rulebook.for_series(*key)
        judged_events: list[AlertEvent] = []
        spec = self.content_specs.get(result.check)
        if spec is not None:
            judged = self.content.get(result.check) or ContentState()
            judged, judged_events = content.observe(judged, result, now, spec, self._tenants)
            self.content[result.check] = judged
            if result.outcome is Outcome.WRONG_CONTENT and content.covers(judged, result):
                # A fallback list or another tenant's items: paged by its own alert, not
                # again as each tenant's failures (the metrics keep wrong_content).
                result = replace(result, outcome=Outcome.OK, reason="", condition="")
        state, events = observe(state, result, now, rules, parent)
        self.series[key] = state
        if judged_events:
            events = judged_events + events
        return events, state.window_p95, baseline_p95(state, rules, now)

    def restore_content(self, states: Mapping[str, ContentState]) -> None:
        """Saved judgements of the checks still judged (a check since changed starts clean)."""
        self.content.update({c: s for c, s in states.items() if c in self.content_specs})

    def set_tenant_count(self, tenants: int) -> None:
        """How many tenants are probed (the fleet a fallback's share is of)."""
        self._tenants = tenants

    def forget_tenant(self, tenant: str, now: float) -> list[AlertEvent]:
        """A tenant is no longer probed: its firing alerts resolve, its state goes."""
        events: list[AlertEvent] = []
        for key in [k for k in self.series if k[0] == tenant]:
            state = self.series.pop(key)
            for rule_id, alert in state.alerts.items():
                event = forgotten(rule_id, alert, Subject(tenant, key[1]), now)
                if event is not None:
                    events.append(event)
        self.rulebook.forget_tenant(tenant)
        for check, judged in list(self.content.items()):
            judged, more = content.forget_tenant(judged, tenant, now, self.content_specs[check])
            self.content[check] = judged
            events += more
        return events

    def adopt_paged_alerts(self, planner: PlannerState) -> int:
        """After a restore: every alert the planner paged is firing in the detector too.

        The planner is saved with each page it decides, the detector's windows only every so
        often; after a crash the detector may not know an alert it paged for. Without this,
        recovery would never emit the resolve, and the incident would stay open for good.
        Returns how many alerts were adopted."""
        adopted = 0
        for event in planner.firing.values():
            if event.check == TLS_CHECK:
                host = self.tls_hosts.get(event.variant) or HostState()
                if event.rule not in host.alerts:
                    alerts = {**host.alerts, event.rule: adopted_alert(event)}
                    self.tls_hosts[event.variant] = replace(host, alerts=alerts)
                    adopted += 1
                continue
            if event.rule in content.RULES and event.check in self.content_specs:
                judged = self.content.get(event.check) or ContentState()
                self.content[event.check] = content.adopt(judged, event, adopted_alert(event))
                adopted += 1
                continue
            if event.tenant is None or event.check is None:
                continue
            key = (event.tenant, event.check)
            state = self.series.get(key) or SeriesState()
            rule_id = f"{event.rule}:{event.variant}" if event.variant else event.rule
            known = state.alerts.get(rule_id)
            if known is None or known.status is not AlertStatus.FIRING:
                alerts = {**state.alerts, rule_id: adopted_alert(event)}
                self.series[key] = replace(state, alerts=alerts)
                adopted += 1
        return adopted

    def firing(self) -> list[tuple[SeriesKey, str, AlertState]]:
        """Every firing alert: ((tenant, check), rule id, state); certificate alerts as
        ((host, "tls"), rule, state)."""
        return self._alerts(AlertStatus.FIRING)

    def pending(self) -> list[tuple[SeriesKey, str, AlertState]]:
        """Alerts whose condition holds but has not held long enough to fire."""
        return self._alerts(AlertStatus.PENDING)

    def _alerts(self, status: AlertStatus) -> list[tuple[SeriesKey, str, AlertState]]:
        series = [
            (key, rule_id, alert)
            for key, state in self.series.items()
            for rule_id, alert in state.alerts.items()
            if alert.status is status
        ]
        judged = [
            ((tenant, check), rule, alert)
            for check, state in self.content.items()
            for rule, tenant, alert in content.alerts_of(state)
            if alert.status is status
        ]
        return (
            series
            + judged
            + [
                ((host, TLS_CHECK), rule_id, alert)
                for host, state in self.tls_hosts.items()
                for rule_id, alert in state.alerts.items()
                if alert.status is status
            ]
        )

    def building(self) -> list[tuple[SeriesKey, str, int, int]]:
        """Streaks on their way to an alert: ((tenant, check), rule, probes so far, probes
        needed) for empty_results and failures not active yet — what a first CronJob round
        has seen but cannot page for."""
        building: list[tuple[SeriesKey, str, int, int]] = []
        for key, state in self.series.items():
            rules = self.rulebook.for_series(*key)
            for rule, streak, threshold in (
                (
                    "empty_results",
                    state.empty_streak,
                    rules.empty_results.failure_threshold if rules.empty_results else 0,
                ),
                (
                    "failures",
                    state.failure_streak,
                    rules.failures.failure_threshold if rules.failures else 0,
                ),
            ):
                if 0 < streak < threshold and rule not in state.alerts:
                    building.append((key, rule, streak, threshold))
        return building

    def latency(self, tenant: str, check: str, now: float) -> tuple[float | None, float | None]:
        """(window p95, baseline p95) of a series, for the gauges."""
        state = self.series.get((tenant, check))
        if state is None:
            return None, None
        rules = self.rulebook.for_series(tenant, check)
        return state.window_p95, baseline_p95(state, rules, now)


def adopted_alert(event: AlertEvent) -> AlertState:
    """The firing state a paged event stands for (a restart adopting what was paged)."""
    return AlertState(
        AlertStatus.FIRING,
        since=event.started_at,
        fired_at=event.started_at,
        severity=event.severity,
        summary=event.summary,
        details=dict(event.details),
    )
