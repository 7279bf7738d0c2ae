"""Drive the real detector, planner and (optionally) notifiers through a scenario in virtual
time. No sockets, no sleeps: seven days replay in seconds."""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import json
import logging
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from monitor.alerting.hub import AlertHub, Decision
from monitor.alerting.pipeline import NotificationPipeline
from monitor.app.history import HistoryRecorder
from monitor.config.loader import load_config_text
from monitor.config.model import AlertsSpec, NotifySpec, PagerDutySpec, TlsSpec
from monitor.core.certinfo import CertificateInfo
from monitor.core.clock import ManualClock
from monitor.core.notifications import Action, Notification
from monitor.core.results import Outcome, ProbeResult
from monitor.probing.checks import compile_checks
from monitor.probing.engine import Job
from monitor.probing.scheduler import phase
from monitor.replay.scenarios import DAY, HOUR, Rotation, Scenario, Signal
from monitor.state.store import StateStore
from monitor.telemetry.metrics import Metrics
from monitor.tls.prober import TlsResult

REPLAY_START = 1_760_000_000.0  # any fixed moment: replays are reproducible
CONFIG = """
targets: {{sim: {{base_url: "http://sim.invalid"}}}}
tenants: {{static: [sim]}}
defaults: {{interval: {interval}s, timeout: 5s}}
checks:
  search:
    target: sim
    request: {{path: "/v1/{{tenant}}/search"}}
    expect: {{items: "$.results"}}
    capture: {{product: {{path: "$.results[*].id", pick: rotate}}}}
  recommendations:
    target: sim
    after: search
    request: {{path: "/v1/{{tenant}}/recommendations", params: {{product: "{{product}}"}}}}
    expect: {{items: "$.recommendations"}}
"""


@dataclass(frozen=True, slots=True)
class SignalReport:
    signal: Signal
    first_page: float | None  # seconds since scenario start
    resolved: float | None
    pages: int
    first_text: str = ""  # the summary of that first page, as PagerDuty received it


@dataclass(frozen=True, slots=True)
class Received:
    """One event as the (fake) PagerDuty received it, and which incident it belongs to."""

    at: float  # seconds since scenario start, on the same clock as the signal rows
    action: str  # trigger, resolve
    incident: str  # the rule, and for a storm "grouped" or "fleet-wide": pairs told apart
    summary: str


@dataclass(frozen=True, slots=True)
class ReplayReport:
    scenario: Scenario
    probes: int
    # (seconds since start, notification) as the planner decided them; the signal rows count
    # what the (fake) PagerDuty received through the real sink and outbox.
    notifications: tuple[tuple[float, Notification], ...]
    signals: tuple[SignalReport, ...]
    # What PagerDuty received, when: delivery is paced (about one event a second), so it can
    # be a second or two after the planner decided it. The report lists these.
    received: tuple[Received, ...] = ()

    @property
    def pages(self) -> int:
        return sum(1 for _, n in self.notifications if n.action is Action.TRIGGER)


class _Simulator:
    """Turns the scenario's scripted behaviour into probe results."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.scenario = scenario
        self.random = random.Random(seed)
        # Which backend answered (its own sequence: the outcomes' stays as it was). With a
        # rotation, a TLS failure comes from a backend still on the old certificate.
        self._addresses = random.Random(seed + 1)

    def _address(self, at: float, failing: bool) -> str:
        rotation = self.scenario.rotation
        if rotation is None:
            return ""
        stale = [a for a in rotation.addresses if rotation.rotated_at.get(a, math.inf) > at]
        fresh = [a for a in rotation.addresses if a not in stale]
        pool = (stale if failing else fresh) or fresh or stale
        return f"{self._addresses.choice(pool)}:{rotation.host.rpartition(':')[2]}"

    def result(self, tenant: str, check: str, at: float) -> ProbeResult:
        scenario, noise, rng = self.scenario, self.scenario.noise, self.random
        behaviour = scenario.behaviour(tenant, check, at)
        daily = 1 + noise.daily_amplitude * math.sin(2 * math.pi * at / DAY)
        latency = scenario.base_latency[check] * behaviour.latency_factor * daily
        latency *= rng.lognormvariate(0, noise.jitter_sigma)
        if rng.random() < noise.outlier_rate:
            latency *= rng.uniform(3, 10)
        wall = REPLAY_START + at
        if behaviour.tls_error_share and rng.random() < behaviour.tls_error_share:
            return ProbeResult(
                tenant,
                check,
                Outcome.TLS_ERROR,
                latency,
                wall,
                reason="certificate verify failed: certificate has expired",
                tls_reason="expired",
                target="sim",
                address=self._address(at, failing=True),
            )
        address = self._address(at, failing=False)
        if behaviour.status is not None or rng.random() < noise.blip_rate:
            status = behaviour.status or 503
            return ProbeResult(
                tenant,
                check,
                Outcome.HTTP_ERROR,
                latency,
                wall,
                status=status,
                reason=f"unexpected status {status}",
                target="sim",
                address=address,
            )
        if behaviour.empty:
            return ProbeResult(
                tenant,
                check,
                Outcome.EMPTY,
                latency,
                wall,
                status=200,
                items=0,
                reason="0 items",
                target="sim",
                address=address,
            )
        ids, asked = self.items(tenant, check, at, behaviour.fallback)
        return ProbeResult(
            tenant,
            check,
            Outcome.OK,
            latency,
            wall,
            status=200,
            items=len(ids),
            item_ids=ids,
            asked=asked,
            target="sim",
            address=address,
        )

    def items(
        self, tenant: str, check: str, at: float, fallback: bool
    ) -> tuple[tuple[str, ...], str]:
        """The answer's item ids and what was asked: search finds the tenant's first ten
        products; recommendations are asked about each in turn (a capture with pick: rotate)
        and answer five of the tenant's others, different for each product."""
        product = int((REPLAY_START + at) // self.scenario.interval) % 10
        asked = "search" if check == "search" else f"product-{product}"
        if fallback:
            return tuple(f"popular-{i:02d}" for i in range(1, 6)), asked
        if check == "search":
            return tuple(f"{tenant}-p{i:02d}" for i in range(1, 11)), asked
        return tuple(f"{tenant}-p{(product + k + 1) % 20 + 1:02d}" for k in range(5)), asked


def replay(
    scenario: Scenario,
    *,
    seed: int = 1,
    alerts: AlertsSpec | None = None,
    history: StateStore | None = None,
) -> ReplayReport:
    """Run the scenario; every probe of every tenant at its scheduled phase, in time order.
    With `history`, the results and notifications are recorded in that state file's history
    as `recmon run` does (saved every virtual hour and at the end).

    recmon's logs are muted meanwhile: the report says what happened.
    """
    alerts_log = logging.getLogger("recmon")
    level = alerts_log.level
    alerts_log.setLevel(logging.ERROR)
    try:
        return asyncio.run(_replay(scenario, seed=seed, alerts=alerts, history=history))
    finally:
        alerts_log.setLevel(level)


def _certificate(label: str, expires: float) -> CertificateInfo:
    return CertificateInfo(
        subject="CN=api.example.com",
        common_name="api.example.com",
        dns_names=("api.example.com",),
        ip_addresses=(),
        issuer="CN=Example CA",
        serial=label,
        not_before=REPLAY_START - 365 * DAY,
        not_after=REPLAY_START + expires,
        fingerprint_sha256=hashlib.sha256(label.encode()).hexdigest(),
        self_signed=False,
    )


def _tls_results(rotation: Rotation, at: float) -> list[TlsResult]:
    """What each backend address serves at `at`, judged as the TLS prober would."""
    old = _certificate("old", rotation.old_expires)
    new = _certificate("new", rotation.new_expires)
    host, _, port = rotation.host.rpartition(":")
    results = []
    for address in rotation.addresses:
        cert = new if rotation.rotated_at.get(address, float("inf")) <= at else old
        expired = REPLAY_START + at > cert.not_after
        reason = "expired" if expired else ""
        message = "certificate has expired" if expired else ""
        results.append(
            TlsResult(
                host,
                int(port),
                address,
                host,
                not expired,
                reason,
                message,
                cert,
                0.01,
                REPLAY_START + at,
            )
        )
    return results


class _FakePagerDuty:
    """Stands in for events.pagerduty.com: accepts every event, remembers when."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.received: list[tuple[float, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append((self.clock.monotonic(), json.loads(request.content)))
        return httpx.Response(202, json={"status": "success"})


class _Replayer:
    """The real hub, planner, outbox, dispatcher and PagerDuty sink on a manual clock, driven
    one scheduled probe at a time."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int,
        alerts: AlertsSpec | None,
        history: StateStore | None = None,
    ) -> None:
        config = load_config_text(
            CONFIG.format(interval=scenario.interval), source="<replay>"
        ).config
        if alerts is not None:
            config = config.model_copy(update={"alerts": alerts})
        self.scenario = scenario
        self.clock = clock = ManualClock(start=REPLAY_START)
        metrics = Metrics(CollectorRegistry())
        # (seconds since start, notification) as the planner decided them.
        self.planned: list[tuple[float, Notification]] = []
        self.pagerduty = _FakePagerDuty(clock)
        self.store = StateStore.open(":memory:")
        self.pipeline = NotificationPipeline(
            NotifySpec(
                pagerduty=PagerDutySpec(
                    routing_key="replay", url="http://pagerduty.replay/v2/enqueue"
                )
            ),
            self.store,
            clock=clock,
            metrics=metrics,
            transport=httpx.MockTransport(self.pagerduty),
        )
        self.history_store = history
        self.history = (
            None if history is None else HistoryRecorder(clock, config.alerts.maintenance)
        )
        self.history_saved_at = clock.monotonic()
        rotation = scenario.rotation
        self.hub = AlertHub(
            config.alerts,
            compile_checks(config),
            metrics=metrics,
            clock=clock,
            route=self._route,
            tls=None if rotation is None else TlsSpec(hosts=[rotation.host]),
        )
        self.tenants = [f"tenant-{i:03d}" for i in range(1, scenario.tenants + 1)]
        self.hub.set_tenants(self.tenants, ())
        self.simulator = _Simulator(scenario, seed)
        self.probes = 0

    def _route(self, decision: Decision) -> None:
        self.planned.extend((self.clock.monotonic(), n) for n in decision.notifications)
        self.pipeline.route(decision)
        if self.history is not None:
            self.history.record(decision.notifications)

    def _observe(self, result: ProbeResult) -> None:
        self.hub.observe(result)
        if self.history is not None:
            self.history.observe(result)

    def save_history(self, *, every: float = HOUR) -> None:
        """What `recmon run`'s saves write of history (hourly here: the same rows, fewer
        transactions)."""
        if self.history is None or self.history_store is None:
            return
        if self.clock.monotonic() - self.history_saved_at < every:
            return
        snapshot = self.history.changes()
        self.history_store.write_history(snapshot.write)
        self.history.written(snapshot)
        self.history_saved_at = self.clock.monotonic()

    # --- the timeline ------------------------------------------------------------------------

    def timeline(self) -> Iterator[tuple[float, str]]:
        """(seconds since start, tenant) of every probe chain, "" for a certificate round,
        in time order."""
        return heapq.merge(self._tls_rounds(), self._http_rounds())

    def _http_rounds(self) -> Iterator[tuple[float, str]]:
        # The scheduler's phases: each tenant probes search, then recommendations, at a
        # stable offset inside every interval, exactly as `recmon run` does.
        scenario = self.scenario
        order = sorted(self.tenants, key=lambda t: phase(Job(t, "search"), scenario.interval))
        offsets = [phase(Job(t, "search"), scenario.interval) for t in order]
        start = scenario.http_start - scenario.http_start % scenario.interval
        while start < scenario.duration:
            for tenant, offset in zip(order, offsets, strict=True):
                if scenario.http_start <= start + offset < scenario.duration:
                    yield start + offset, tenant
            start += scenario.interval

    def _tls_rounds(self) -> Iterator[tuple[float, str]]:
        rotation = self.scenario.rotation
        if rotation is None:
            return
        at = 0.0
        while at < self.scenario.duration:
            yield at, ""
            at += rotation.interval

    # --- the phases of one step --------------------------------------------------------------

    async def deliver_until(self, moment: float) -> None:
        """What the dispatcher's loop would do between two events: wake when due."""
        dispatcher = self.pipeline.dispatcher
        while (wake := dispatcher.next_wakeup()) is not None and wake <= REPLAY_START + moment:
            self.clock.advance(max(0.0, wake - self.clock.time()))
            await dispatcher.deliver_due()

    def probe(self, at: float, tenant: str) -> None:
        """One certificate round (tenant "") or one tenant's search → recommendations chain,
        then the hub's tick."""
        clock, hub = self.clock, self.hub
        clock.advance(at - clock.monotonic())
        if not tenant:
            rotation = self.scenario.rotation
            assert rotation is not None
            hub.observe_tls(rotation.host, _tls_results(rotation, at))
        else:
            search = self.simulator.result(tenant, "search", at)
            self._observe(search)
            follow = at + search.duration_s
            clock.advance(follow - clock.monotonic())
            self._observe(self.simulator.result(tenant, "recommendations", follow))
            self.probes += 2
        hub.tick()

    async def deliver_planned(self) -> None:
        if self.planned and self.pipeline.outbox.pending():
            await self.pipeline.dispatcher.deliver_due()

    async def finish(self) -> None:
        """The scenario's end: release what waits, deliver what is due within a minute."""
        self.clock.advance(max(0.0, self.scenario.duration - self.clock.monotonic()))
        self.hub.tick()
        await self.pipeline.dispatcher.deliver_due()
        await self.deliver_until(self.scenario.duration + 60)

    async def aclose(self) -> None:
        await self.pipeline.aclose()
        self.store.close()

    def report(self) -> ReplayReport:
        pages = [
            (
                at,
                str(body["dedup_key"]),
                str(body["event_action"]),
                str(body.get("payload", {}).get("summary", "")),
            )
            for at, body in self.pagerduty.received
        ]
        incidents = {n.key: _incident(n) for _, n in self.planned}
        # A resolve event carries no summary to PagerDuty: its text is the one decided.
        decided = {(n.key, n.action.value): n.summary for _, n in self.planned}
        return ReplayReport(
            self.scenario,
            self.probes,
            tuple(self.planned),
            tuple(_signal_reports(self.scenario, self.planned, pages)),
            tuple(
                Received(at, action, incidents.get(key, ""), text or decided.get((key, action), ""))
                for at, key, action, text in pages
            ),
        )


def _incident(notification: Notification) -> str:
    if notification.labels.get("scope") == "fleet-wide":
        return f"{notification.rule} (fleet-wide)"
    if notification.labels.get("grouped") == "true":
        return f"{notification.rule} (grouped)"
    return notification.rule


async def _replay(
    scenario: Scenario, *, seed: int, alerts: AlertsSpec | None, history: StateStore | None
) -> ReplayReport:
    replayer = _Replayer(scenario, seed=seed, alerts=alerts, history=history)
    try:
        for at, tenant in replayer.timeline():
            await replayer.deliver_until(at)
            replayer.probe(at, tenant)
            await replayer.deliver_planned()
            replayer.save_history()
        await replayer.finish()
        replayer.save_history(every=0.0)
    finally:
        await replayer.aclose()
    return replayer.report()


def _signal_reports(
    scenario: Scenario,
    planned: list[tuple[float, Notification]],
    pages: list[tuple[float, str, str, str]],
) -> list[SignalReport]:
    """Per signal, from what PagerDuty actually received: first trigger after the fault (and
    its text), the last resolve after it, and how many triggers arrived in all."""
    what = {n.key: (n.rule, n.check, n.labels.get("scope", "")) for _, n in planned}
    reports = []
    for signal in scenario.signals:
        mine = [
            (at, action, text)
            for at, key, action, text in pages
            if what.get(key) == (signal.rule, signal.check, signal.scope)
        ]
        triggers = [
            (at, text)
            for at, action, text in mine
            if action == "trigger" and at >= signal.fault_start
        ]
        first, first_text = min(triggers) if triggers else (None, "")
        resolves = [
            at
            for at, action, _ in mine
            if action == "resolve" and first is not None and at >= first
        ]
        pages_sent = sum(1 for _, action, _ in mine if action == "trigger")
        reports.append(
            SignalReport(signal, first, max(resolves) if resolves else None, pages_sent, first_text)
        )
    return reports


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    days, rest = divmod(seconds, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}d {text}" if days else text


# Report lines fit a terminal; what is cut says so.
MAX_LINE = 120


def _clip(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def verdict(report: ReplayReport) -> str:
    """One line: did recmon page for what it should, and only for that?"""
    signals = report.signals
    if not signals:
        if report.pages == 0:
            return f"verdict: ok, no page in {_clock(report.scenario.duration)}, none expected"
        return f"verdict: FAILED, {report.pages} page(s) where none was expected"
    missed = [row.signal.name for row in signals if row.first_page is None]
    open_ = [row.signal.name for row in signals if row.first_page is not None and not row.resolved]
    delays = [
        row.first_page - row.signal.fault_start for row in signals if row.first_page is not None
    ]
    extra = report.pages - len(signals)
    if not missed and not open_:
        text = (
            f"verdict: ok, all {len(signals)} faults paged (the slowest {max(delays):.0f}s "
            f"after its fault began) and resolved, {report.pages} page(s) in all"
        )
        return text if extra <= 0 else f"{text} ({extra} more than the faults)"
    problems = []
    if missed:
        problems.append(f"never paged: {', '.join(missed)}")
    if open_:
        problems.append(f"never resolved: {', '.join(open_)}")
    return f"verdict: FAILED, {'; '.join(problems)}"


def format_report(report: ReplayReport) -> str:
    scenario = report.scenario
    lines = [
        _clip(f"replay {scenario.name}: {scenario.description}"),
        f"{scenario.tenants} tenants, probe interval {scenario.interval:g}s, "
        f"{report.probes} probes over {_clock(scenario.duration)}",
        "",
    ]
    if report.signals:
        lines.append(
            f"{'signal':<30}{'fault start':>13}{'first page':>13}{'after':>9}"
            f"{'resolve':>13}{'pages sent':>12}"
        )
    else:
        lines.append("no faults in this scenario: every page would be a false alarm")
    for row in report.signals:
        after = "-" if row.first_page is None else f"{row.first_page - row.signal.fault_start:.0f}s"
        lines.append(
            f"{row.signal.name:<30}{_clock(row.signal.fault_start):>13}{_clock(row.first_page):>13}"
            f"{after:>9}{_clock(row.resolved):>13}{row.pages:>12}"
        )
    rotation = scenario.rotation
    rotation_row = next((r for r in report.signals if r.signal.rule == "tls_inconsistent"), None)
    if rotation is not None and rotation_row is not None and rotation_row.first_page is not None:
        lead = rotation.old_expires - rotation_row.first_page
        lines.append("")
        lines.append(
            f"the half-finished rotation was paged {_clock(lead)} before the old certificate "
            "expired"
        )
    lines.append("")
    lines.append("first page per signal, as PagerDuty received it:")
    for row in report.signals:
        if row.first_text:
            lines.append(f"  {row.signal.name.strip()}: {row.first_text}")
    lines.append("")
    # What PagerDuty received, on the table's clock (the planner's decisions otherwise).
    shown = report.received or tuple(
        Received(at, n.action.value, _incident(n), n.summary) for at, n in report.notifications
    )
    lines.append(f"notifications as PagerDuty received them: {len(shown)} ({report.pages} pages)")
    width = max((len(r.incident) for r in shown), default=0) + 2
    for event in shown[:20]:
        lines.append(
            _clip(
                f"  {_clock(event.at):>12}  {event.action:<8} {event.incident:<{width}}"
                f"{event.summary}"
            )
        )
    if len(shown) > 20:
        lines.append(f"  ... and {len(shown) - 20} more")
    lines.append("")
    lines.append(verdict(report))
    return "\n".join(lines)
