"""Between probes and pages: runs the detector on each result, keeps the alert gauges, plans
notifications and hands them to the router (the outbox).

The hub is the one owner of the planner's state. A decision reaches the router together with
the planner state it leads to (`Decision`), and the hub adopts that state only once the router
has stored both: a page decided is a page stored, or decided again. (A state file that takes
no writes does not stop the router: the outbox holds both in memory and delivers from there,
and the hub's tick pages recmon's own state_unwritable alert.)
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from monitor.alerting.planner import PlannerState, Policy, group_key, located_key, plan
from monitor.alerting.tracker import AlertTracker, SeriesKey, adopted_alert, content_specs
from monitor.config.model import AlertsSpec, TlsSpec
from monitor.core.certinfo import CertificateInfo
from monitor.core.clock import Clock
from monitor.core.notifications import Notification, Severity
from monitor.core.results import ProbeResult
from monitor.core.tenancy import Shard
from monitor.detect.backends import BackendFinding, BackendTally
from monitor.detect.content import ContentState
from monitor.detect.fleet import FOLDS, FleetWatch
from monitor.detect.overload import RULE as OVERLOAD
from monitor.detect.overload import LoadReading, OverloadState, observe_overload
from monitor.detect.series import AlertEvent, AlertState, AlertStatus, EventKind, SeriesState
from monitor.detect.slo import RULES as SLO_RULES
from monitor.detect.slo import SloSnapshot, SloWatch
from monitor.detect.storage import RULE as STATE_UNWRITABLE
from monitor.detect.storage import StorageState, observe_storage, unwritable
from monitor.probing.checks import HttpCheck
from monitor.state.store import WriteHealth
from monitor.telemetry.metrics import Metrics
from monitor.tls.prober import TlsResult
from monitor.tls.rules import TLS_CHECK, HostState

log = logging.getLogger("recmon.alerts")

# The hub ticks (releases held alerts, reads the state file's write health) every second, or
# twice per interval where a check is probed more often than every 2 s: a group wait then
# ends within half an interval, not a second, of when it is due.
TICK_S = 1.0


def tick_seconds(intervals: Iterable[float]) -> float:
    """How often the hub ticks, for checks probed at these intervals."""
    return min([TICK_S, *(interval / 2 for interval in intervals)])


# Alert events remembered for the status page's tenant history: bounded, newest last.
HISTORY_EVENTS = 2_000


@dataclass(frozen=True, slots=True)
class AlertView:
    """One pending or firing alert as a reader sees it (the status page, /status)."""

    key: str  # the alert's identity (its PagerDuty dedup_key when paged alone)
    rule: str
    variant: str  # error_rate: the outcome; certificate alerts: the host
    tenant: str | None  # None for certificate alerts
    check: str
    status: AlertStatus
    severity: Severity
    since: float  # condition true since (pending) or fired at (firing)
    summary: str
    # Paged: alone (its own key) or inside an open storm (the storm's key); None while held
    # back (group wait, maintenance) or still pending.
    paged_as: str | None
    # Firing, not paged: why ("group_wait", "maintenance", "rules": notify.tenant_pages is
    # rules, "unstored": the state file could not store its page yet) and until when.
    held_by: str = ""
    held_until: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """Notifications the planner decided, and the planner state that follows from them. The
    router stores both in one transaction, so a crash can neither lose a decided page nor
    decide it twice; the hub adopts `planner` only when the router returns."""

    notifications: tuple[Notification, ...]
    planner: PlannerState


Route = Callable[[Decision], None]


@dataclass(frozen=True, slots=True)
class AlertMemory:
    """What the hub remembers between runs (the state file keeps it): the detector's series,
    the planner, the certificate rules' hosts."""

    series: Mapping[SeriesKey, SeriesState] = field(default_factory=dict)
    planner: PlannerState = field(default_factory=PlannerState)
    tls_hosts: Mapping[str, HostState] = field(default_factory=dict)
    # Answers judged across tenants, per check (detect/content.py).
    content: Mapping[str, ContentState] = field(default_factory=dict)


class Latency(NamedTuple):
    """A series' window p95 and its baseline's p95, for the gauges (None: not known yet). A
    NamedTuple: one is built per probe, and a frozen dataclass' __init__ costs more."""

    p95: float | None
    baseline: float | None


# A NamedTuple's own __new__ is a Python function: tuple.__new__ builds one in C.
_new_tuple = tuple.__new__


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
        shard: Shard = Shard(),
        storage: Callable[[], WriteHealth] | None = None,
    ) -> None:
        """`storage`: how the state file takes writes (read every tick: recmon's own
        state_unwritable alert); None without a state file."""
        self.spec = spec
        self.metrics = metrics
        self.clock = clock
        self.route = route
        # A replica's storms are its own incidents (labelled with its shard): one replica's
        # recovery never resolves another's.
        self._shard = str(shard) if shard.count > 1 else ""
        self._location = location
        self._tenant_pages = tenant_pages
        # check → probe interval: how long a fleet-wide storm may grow before it escalates.
        self._intervals = {name: check.interval for name, check in checks.items()}
        self.tick_s = tick_seconds(self._intervals.values())
        self._targets = {name: check.target for name, check in checks.items()}
        # Which addresses behind each target answer, and which fail: named on failure pages.
        self._backends = BackendTally()
        # Every tenant's probes of a check pooled: a partial outage is one fleet incident.
        self._fleet = FleetWatch(
            spec.fleet,
            self._intervals,
            counting_checks=frozenset(n for n, c in checks.items() if c.items is not None),
            fleet_share=spec.storm.fleet_share,
        )
        # Each check's objective (checks.<name>.slo) and its error budget's burn rate.
        self._slo = SloWatch(
            spec.slo,
            {name: check.slo for name, check in checks.items() if check.slo is not None},
            self._intervals,
        )
        self._total_tenants = 0
        # check → {tenant: why} for the tenants the check skips right now: not "probed".
        self._not_probed: dict[str, dict[str, str]] = {}
        self._planner = PlannerState()
        self._overload = OverloadState()
        self._storage_health = storage
        # A new generation (a reload) counts only the failures from now on.
        self._storage = StorageState(failures_seen=storage().failures if storage else 0)
        self._tracker = AlertTracker(
            spec,
            counting_checks=[name for name, check in checks.items() if check.items is not None],
            parents={name: check.after for name, check in checks.items() if check.after},
            tls=tls,
            content_specs=content_specs(checks, spec.fallback),
        )
        # Events whose notifications the router refused (raised: a bug; a state file that
        # takes no writes does not raise, the outbox holds them in memory): planned again at
        # the next tick, so a page is delayed instead of lost.
        self._unstored: list[AlertEvent] = []
        self._history: deque[AlertEvent] = deque(maxlen=HISTORY_EVENTS)

    # --- events in -----------------------------------------------------------------------------

    def observe(self, result: ProbeResult) -> Latency:
        """Run the detector on a result; returns the series' latency for the gauges."""
        now = self.clock.time()
        skipped = self._not_probed.get(result.check)
        if skipped:
            skipped.pop(result.tenant, None)
        self._backends.observe(result, now)
        events = self._fleet.observe(result, now) + self._slo.observe(result, now)
        tracked, p95, baseline = self._tracker.observe_probe(result, now)
        events += tracked
        latency = _new_tuple(Latency, (p95, baseline))  # Latency(p95, baseline), in C
        if events:
            self.handle(events, now)
        return latency

    def not_probed(self, tenant: str, check: str, why: str) -> None:
        """`check` skipped `tenant` (no credential, a variable unset): until a result of it
        arrives, the tenant is not among those the check probes (a fleet's scope)."""
        self._not_probed.setdefault(check, {})[tenant] = why

    def observe_load(self, reading: LoadReading) -> None:
        """recmon's own load: the overload rule, through the same lifecycle and planner."""
        if not self.spec.overload.enabled:
            return
        now = self.clock.time()
        self._overload, events = observe_overload(self._overload, reading, now, self.spec.overload)
        if events:
            self.handle(events, now)

    def observe_tls(self, host: str, results: Sequence[TlsResult]) -> None:
        now = self.clock.time()
        events = self._tracker.observe_tls(host, results, now)
        if events:
            self.handle(events, now)

    def observe_client_certificate(self, target: str, cert: CertificateInfo | None) -> None:
        now = self.clock.time()
        events = self._tracker.observe_client_certificate(target, cert, now)
        if events:
            self.handle(events, now)

    def handle(self, events: Iterable[AlertEvent], now: float, *, flush: bool = False) -> None:
        events = list(events)
        self._history.extend(events)
        for event in events:
            firing = event.kind is EventKind.FIRING
            self._gauge(
                event.rule, event.variant, event.tenant, event.check, event.severity.value, firing
            )
            (log.warning if firing else log.info)(
                # A resolve's text says "resolved: …" already.
                f"alert {event.kind.value}: {event.summary.removeprefix('resolved: ')}",
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
        planner, notifications = plan(self._planner, events, now, self._policy(), flush=flush)
        if notifications:
            try:
                self.route(Decision(tuple(notifications), planner))
            except Exception:
                # Nothing was routed: forget the decision, decide again next tick.
                self._unstored = events
                self.metrics.internal_errors.labels("outbox").inc()
                log.exception(
                    "notifications could not be routed; they are planned again in a second",
                    extra={"fields": {"notifications": len(notifications)}},
                )
                return
        self._planner = planner
        self._unstored = []
        for notification in notifications:
            log.info(
                f"notification planned: {notification.action.value} {notification.key}",
                extra={"fields": {"id": notification.id, "severity": notification.severity.value}},
            )

    def tick(self, *, flush: bool = False) -> None:
        """Release alerts whose group wait is over (or all of them, with flush); read how the
        state file takes writes."""
        now = self.clock.time()
        self.handle(self._observe_storage(now), now, flush=flush)

    def _observe_storage(self, now: float) -> list[AlertEvent]:
        if self._storage_health is None:
            return []
        health = self._storage_health()
        self.metrics.state_writable.set(0 if unwritable(self._storage, health) else 1)
        if health.failures > self._storage.failures_seen:
            self.metrics.state_write_errors.inc(health.failures - self._storage.failures_seen)
        self._storage, events = observe_storage(self._storage, health, now)
        return events

    def storage_alert(self) -> AlertState | None:
        """recmon's own state_unwritable alert, while it is pending or firing."""
        return self._storage.alerts.get(STATE_UNWRITABLE)

    def set_tenants(self, tenants: Sequence[str], removed: Iterable[str]) -> None:
        self._total_tenants = len(tenants)
        self._fleet.set_total_tenants(len(tenants))
        self._tracker.set_tenant_count(len(tenants))
        current = set(tenants)
        for skipped in self._not_probed.values():
            for tenant in [t for t in skipped if t not in current]:
                del skipped[tenant]
        now = self.clock.time()
        events: list[AlertEvent] = []
        for tenant in removed:
            events += self._tracker.forget_tenant(tenant, now)
            events += self._slo.forget_tenant(tenant, now)
        if events:
            self.handle(events, now)

    def _policy(self) -> Policy:
        return Policy(
            self.spec.storm,
            self._total_tenants,
            tuple(self.spec.maintenance),
            self._shard,
            location=self._location,
            tenant_pages=self._tenant_pages,
            intervals=self._intervals,
            flapping=self.spec.flapping,
            not_probed=self._not_probed,
            backends=self._backend_findings(),
        )

    def _backend_findings(self) -> dict[str, BackendFinding]:
        """check → its failures concentrated on some addresses of its target (only such)."""
        now = self.clock.time()
        return {
            check: finding
            for check, target in self._targets.items()
            if (finding := self._backends.finding(target, check, now)) is not None
        }

    # --- what the hub knows ----------------------------------------------------------------

    @property
    def firing(self) -> int:
        return (
            len(self._tracker.firing())
            + (OVERLOAD in self._overload.alerts)
            + (STATE_UNWRITABLE in self._storage.alerts)
            + sum(a.status is AlertStatus.FIRING for a in self._fleet.alerts.values())
            + len(self._slo.firing())
        )

    def firing_alerts(self) -> list[tuple[SeriesKey, str, AlertState]]:
        """Every firing alert: ((tenant, check), rule id, state); certificate alerts as
        ((host, "tls"), rule, state)."""
        return self._tracker.firing()

    def pending_alerts(self) -> list[tuple[SeriesKey, str, AlertState]]:
        """Alerts whose condition holds, not yet long enough to fire (same shape as above)."""
        return self._tracker.pending()

    def building_alerts(self) -> list[tuple[SeriesKey, str, int, int]]:
        """Streaks short of their rule's threshold: (series, rule, probes so far, needed)."""
        return self._tracker.building()

    def active_triggers(self) -> list[Notification]:
        """What is paged right now (for Alertmanager's periodic re-send)."""
        return self._planner.active_triggers()

    def tenants_known(self) -> set[str]:
        """Tenants the detector holds a series for (also restored from the state file)."""
        return {tenant for tenant, _ in self._tracker.series}

    # --- the state file ----------------------------------------------------------------------

    def memory(self) -> AlertMemory:
        """A consistent snapshot (the states are immutable; the mappings are copies)."""
        return AlertMemory(
            dict(self._tracker.series),
            self._planner,
            dict(self._tracker.tls_hosts),
            dict(self._tracker.content),
        )

    def restore(self, memory: AlertMemory) -> int:
        """Take over a saved memory (at start, before any result) and show what fires;
        returns how many paged alerts the saved detector state missed (see
        AlertTracker.adopt_paged_alerts)."""
        self._tracker.series.update(memory.series)
        self._tracker.tls_hosts.update(memory.tls_hosts)
        self._tracker.restore_content(memory.content)
        self._planner = memory.planner
        # SLO alerts (a tenant's too) resolve only through the SLO watch: adopted there.
        adopted = self._tracker.adopt_paged_alerts(
            replace(
                self._planner,
                firing={k: e for k, e in self._planner.firing.items() if e.rule not in SLO_RULES},
            )
        )
        # A paged overload alert resolves only through its rule: the rule must know it fires.
        for event in self._planner.firing.values():
            if event.rule == OVERLOAD and event.tenant is None:
                self._overload = OverloadState({OVERLOAD: adopted_alert(event)})
                self._gauge(OVERLOAD, "", None, None, event.severity.value, True)
                adopted += 1
            elif event.rule in FOLDS and event.tenant is None:
                # A paged fleet incident resolves only through its rule, as overload does.
                self._fleet.adopt(event.rule, event.check or "", adopted_alert(event))
                self._gauge(event.rule, "", None, event.check, event.severity.value, True)
            elif event.rule == STATE_UNWRITABLE and event.tenant is None:
                self._storage = StorageState(
                    {STATE_UNWRITABLE: adopted_alert(event)}, self._storage.failures_seen
                )
                self._gauge(STATE_UNWRITABLE, "", None, None, event.severity.value, True)
                adopted += 1
            elif event.rule in SLO_RULES and self._slo.adopt(event, adopted_alert(event)):
                adopted += 1
        for tenant, check, rule, alert in self._slo.firing():
            self._gauge(rule, "", tenant, check, alert.severity.value, True)
        self._restore_gauges()
        return adopted

    def _restore_gauges(self) -> None:
        for (subject, check), rule_id, alert in self._tracker.firing():
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

    def slo_snapshot(self, *, tenant_windows: bool = True) -> SloSnapshot:
        """The SLO watch's windows and alerts now (copies: encode them anywhere); without
        `tenant_windows`, per-tenant budgets keep only their alerts (see SloWatch.snapshot)."""
        return self._slo.snapshot(tenant_windows=tenant_windows)

    def restore_slo(self, data: Mapping[str, Any]) -> None:
        """Take over saved SLO windows and alerts (at start, before restore() and any
        result). Raises ValueError on a broken document."""
        self._slo.restore(data)

    # --- read-only views (status page, /status) ----------------------------------------------

    def alerts(self, memory: AlertMemory | None = None) -> list[AlertView]:
        """Every pending and firing alert, with whether (and under which key) it is paged.
        From `memory` (a snapshot from memory()) this reads nothing else that changes but the
        clock and the list of pages waiting for the state file (replaced, never mutated), so it
        can run in a worker thread: at 10,000 tenants the walk takes ~10 ms. A firing alert
        not paged says why it is held and until when (AlertView.held_by, held_until)."""
        memory = memory or self.memory()
        planner = memory.planner
        policy, now = self._policy(), self.clock.time()
        unstored = {e.key for e in self._unstored}
        found: list[tuple[str | None, str, Mapping[str, AlertState]]] = [
            (tenant, check, state.alerts) for (tenant, check), state in memory.series.items()
        ]
        found += [(None, host, state.alerts) for host, state in memory.tls_hosts.items()]
        views: list[AlertView] = []
        for tenant, subject, alerts in found:
            for rule_id, alert in alerts.items():
                rule, _, variant = rule_id.partition(":")
                check = subject
                if tenant is None:  # a certificate alert: the host is its variant
                    check, variant = TLS_CHECK, subject
                event = AlertEvent(
                    EventKind.FIRING, rule, tenant, check, alert.severity, 0.0, 0.0, "", variant
                )
                paged_as: str | None = None
                held: tuple[str, float | None] = ("", None)
                if alert.status is AlertStatus.FIRING:
                    alone = planner.notified.get(event.key)
                    group = planner.groups.get(group_key(event, self._shard, self._location) or "")
                    folded_under = planner.folded.get(event.key)
                    if alone is not None:
                        paged_as = alone.key
                    elif group is not None:
                        paged_as = group.trigger.key
                    elif folded_under is not None:
                        # Explained by a fleet incident, paged as part of it.
                        paged_as = located_key(folded_under, self._location)
                    else:
                        held = _held(event, planner, policy, now, unstored)
                views.append(
                    AlertView(
                        key=event.key,
                        rule=rule,
                        variant=variant,
                        tenant=tenant,
                        check=check,
                        status=alert.status,
                        severity=alert.severity,
                        since=alert.fired_at if alert.fired_at is not None else alert.since,
                        summary=alert.summary,
                        paged_as=paged_as,
                        held_by=held[0],
                        held_until=held[1],
                    )
                )
        return views

    def series(self, tenant: str, check: str) -> SeriesState | None:
        """What the detector remembers of one tenant × check (its window of samples)."""
        return self._tracker.series.get((tenant, check))

    def latency(self, tenant: str, check: str) -> tuple[float | None, float | None]:
        """(window p95, baseline p95) of one tenant × check."""
        return self._tracker.latency(tenant, check, self.clock.time())

    def empty_window(self, tenant: str, check: str) -> float:
        """The window the empty_results rule judges for one tenant × check (the status page's
        empty share is over it)."""
        rule = self._tracker.rulebook.for_series(tenant, check).empty_results
        return (rule or self.spec.empty_results).window

    def history(self, tenant: str) -> list[AlertEvent]:
        """The recent alert events of one tenant, oldest first (bounded)."""
        return [e for e in self._history if e.tenant == tenant]

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.clock.sleep(self.tick_s)
            try:
                self.tick()
            except Exception:  # a bug: count it, keep releasing held alerts
                self.metrics.internal_errors.labels("alerts").inc()
                log.exception("alert tick failed")


def _held(
    event: AlertEvent, planner: PlannerState, policy: Policy, now: float, unstored: set[str]
) -> tuple[str, float | None]:
    """Why a firing alert is not paged, and until when: the one reason the planner has."""
    if event.tenant is not None and not policy.tenant_pages:
        return "rules", None
    if event.key in unstored:
        return "unstored", None
    release = planner.held.get(event.key)
    silenced = policy.silenced(event.tenant, event.check, now)
    if silenced is not None and (release is None or silenced >= release):
        return "maintenance", silenced
    if release is not None:
        return "group_wait", release
    return "", None
