"""The monitor assembled: configuration → tenants → engine/scheduler → metrics (and alerts)."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.alerting.hub import AlertHub, Decision, Route
from monitor.config.loader import LoadedConfig
from monitor.config.model import Config
from monitor.core.clock import Clock
from monitor.core.results import Outcome, ProbeResult
from monitor.core.secrets import Redactor
from monitor.core.tenancy import Shard
from monitor.detect.overload import LAG_SPAN_S, LoadReading, Tally, overloaded, reading_between
from monitor.detect.overload import describe as describe_overload
from monitor.probing.checks import HttpCheck
from monitor.probing.engine import Engine, Job
from monitor.probing.httpclient import ClientFactory
from monitor.probing.parts import build_probing
from monitor.probing.scheduler import Scheduler
from monitor.probing.tenant_source import TenantSourceError
from monitor.state.store import WriteHealth
from monitor.telemetry.looplag import LoopLagMonitor
from monitor.telemetry.metrics import Metrics
from monitor.telemetry.rate import RateMeter
from monitor.tls.watch import TlsWatch

log = logging.getLogger("recmon.service")

GC_THRESHOLDS = (20_000, 20, 50)
# recmon reads its own load this often, over this window (withheld timeouts, loop lag).
LOAD_READING_S = 1.0
# A timeout judged while recmon's loop ran late: the skip the status page shows instead.
WITHHELD = "timeout withheld: recmon's event loop ran late"
LOAD_WINDOW_S = 60.0


@dataclass
class Progress:
    """Counts since the last progress report, for a log line a person can follow."""

    outcomes: Counter[Outcome] = field(default_factory=Counter)
    lags: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))

    def take(self) -> tuple[Counter[Outcome], list[float]]:
        # Cleared in place: the engine holds a reference to `lags.append`.
        outcomes, lags = Counter(self.outcomes), sorted(self.lags)
        self.outcomes.clear()
        self.lags.clear()
        return outcomes, lags


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _log_only(decision: Decision) -> None:
    """Without a notifier configured, notifications end in the log."""
    for notification in decision.notifications:
        log.warning(
            f"page ({notification.action.value}): {notification.summary}",
            extra={"fields": {"key": notification.key, "severity": notification.severity.value}},
        )


def metrics_for(config: Config, registry: CollectorRegistry) -> Metrics:
    return Metrics(
        registry,
        max_timeout=config.max_timeout,
        per_tenant_histograms=config.metrics.per_tenant_histograms,
        const_labels={"location": config.location} if config.location else None,
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


class Monitor:
    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        clock: Clock,
        registry: CollectorRegistry,
        client_factory: ClientFactory | None = None,
        shard: Shard = Shard(),
        base_dir: Path | None = None,
        route: Route | None = None,
        metrics: Metrics | None = None,
        redactor: Redactor | None = None,
        result_listeners: Sequence[Callable[[ProbeResult], None]] = (),
        storage: Callable[[], WriteHealth] | None = None,
    ) -> None:
        """`route`: where decided notifications go (the notification pipeline; without one,
        the log). `metrics`: built on `registry` unless given (the assembler builds them
        first when the pipeline, which counts deliveries, needs them too).
        `result_listeners`: also called with every result (the results log). `storage`: how
        the state file takes writes (recmon's own state_unwritable alert)."""
        self.loaded = loaded
        # Secrets read while running (tenant credentials, tokens) join the ones loaded.
        self.redactor = redactor or Redactor(loaded.secrets)
        config = self.config = loaded.config
        self.clock = clock
        self.registry = registry
        self.shard = shard
        self.metrics = metrics or metrics_for(config, registry)
        self.probing = probing = build_probing(
            config,
            clock=clock,
            metrics=self.metrics,
            on_secret=self.redactor.add,
            shard=shard,
            base_dir=base_dir,
            client_factory=client_factory,
        )
        self.checks: dict[str, HttpCheck] = probing.checks
        self.client_certificates = probing.client_certificates
        self.credentials = probing.credentials
        self.tenant_source = probing.tenant_source
        self.loop_lag = LoopLagMonitor(clock)
        self.progress = Progress()
        self.engine = Engine(
            self.checks,
            probing.clients,
            clock=clock,
            metrics=self.metrics,
            sink=self.observe,
            tenant_vars=probing.tenant_vars,
            throttles=probing.throttles,
            max_in_flight=config.engine.max_in_flight,
            target_connections={n: t.max_connections for n, t in config.targets.items()},
            latency_guard=self.loop_lag.trusted,
            deadline_guard=self.loop_lag.deadline_trusted,
            withheld_sink=self._withheld,
            lag_sink=self._started,
            skip_sink=self._not_probed,
            credential_names=config.tenant_credential_names,
            token_sources=probing.token_sources,
        )
        self.scheduler = Scheduler(
            self.engine.run_job,
            self._interval_of,
            clock=clock,
            on_overrun=self._overrun,
        )
        self.hub = AlertHub(
            config.alerts,
            self.checks,
            metrics=self.metrics,
            clock=clock,
            route=route or _log_only,
            tls=config.tls,
            location=config.location or "",
            tenant_pages=config.notify.tenant_pages == "direct",
            shard=shard,
            storage=storage,
        )
        self.tls = TlsWatch(
            config.tls,
            config.targets,
            clock=clock,
            metrics=self.metrics,
            emit=self.hub.observe_tls,
            emit_client=self.hub.observe_client_certificate,
        )
        self.tenants: tuple[str, ...] = ()
        self.latest: dict[tuple[str, str], ProbeResult] = {}
        self.skips: dict[tuple[str, str], str] = {}
        self.last_result_at: float | None = None
        self._overruns = 0
        self._overrun_logged_at = float("-inf")
        self.probe_rate = RateMeter()
        # Runs recmon itself skipped since start (overruns, timeouts withheld while its loop
        # ran late); a tenant's own skips (a missing variable or credential) are counted per
        # tenant × check in tenant_skips, and shown on the tenant's row.
        self.skipped_runs = 0
        self.tenant_skips: dict[tuple[str, str], int] = {}
        # Load readings: tallies so far, one a reading, over a minute.
        self._finished = 0
        self._withheld_count = 0
        self._untrusted = 0
        self._runs_started: Counter[str] = Counter()  # by check, since start
        self._runs_skipped: Counter[str] = Counter()
        self._runs_late: Counter[str] = Counter()
        self._load_marks: deque[Tally] = deque()
        self._overload_logged_at = float("-inf")
        self.ready = asyncio.Event()
        self.result_listeners: list[Callable[[ProbeResult], None]] = list(result_listeners)

    # --- wiring -------------------------------------------------------------------------------

    def _interval_of(self, job: Job) -> float:
        return self.checks[job.check].interval

    # --- results ------------------------------------------------------------------------------

    def _started(self, check: str, lag: float) -> None:
        """A scheduled run started `lag` seconds after its slot."""
        self.progress.lags.append(lag)
        self._runs_started[check] += 1
        if lag > self.config.alerts.overload.late * self.checks[check].interval:
            self._runs_late[check] += 1
            self.metrics.runs_late.labels(check).inc()

    def _overrun(self, job: Job, runs: int = 1) -> None:
        """A job still running when it is due again (or its slots long past): skip `runs`,
        count them, and say so (once a minute) — recmon cannot keep the schedule."""
        self.metrics.probes_skipped.labels(job.check, "overrun").inc(runs)
        self._runs_skipped[job.check] += runs
        self._overruns += runs
        self.skipped_runs += runs
        now = self.clock.monotonic()
        if now - self._overrun_logged_at >= 60.0:
            log.warning(
                "probes take longer than their interval: runs skipped",
                extra={
                    "fields": {
                        "skipped": self._overruns,
                        "example_tenant": job.tenant,
                        "check": job.check,
                    }
                },
            )
            self._overrun_logged_at = now
            self._overruns = 0

    def healthy(self) -> bool:
        """Probing on schedule: tenants loaded, results arriving, the event loop on time."""
        if not self.ready.is_set() or self.loop_lag.recent_max >= 1.0:
            return False
        longest = max((c.interval for c in self.checks.values()), default=60.0)
        return (
            self.last_result_at is not None
            and self.clock.monotonic() - self.last_result_at < 2 * longest
        )

    def _skipped(self, tenant: str, check: str, why: str) -> None:
        """The tenant's own skip (no variable or credential for it): its row's, not recmon's.
        Unless the check it runs after was withheld (recmon's loop ran late): then the capture
        it lacks is recmon's doing, and so is the skip."""
        parent = self.checks[check].after if check in self.checks else None
        if parent and self.skips.get((tenant, parent)) == WITHHELD:
            self.skipped_runs += 1
            why = f"{parent}'s timeout was withheld (recmon's event loop ran late): no capture"
            self._show_skip(tenant, check, why)
            return
        self.tenant_skips[(tenant, check)] = self.tenant_skips.get((tenant, check), 0) + 1
        self._show_skip(tenant, check, why)

    def _show_skip(self, tenant: str, check: str, why: str) -> None:
        # The last result would be stale: show the skip instead.
        self.latest.pop((tenant, check), None)
        self.skips[(tenant, check)] = why

    def _not_probed(self, tenant: str, check: str, why: str) -> None:
        """The engine skipped a tenant (no credential, a variable unset): shown, and not among
        the tenants the check probes when a fleet's scope is counted."""
        self._skipped(tenant, check, why)
        self.hub.not_probed(tenant, check, why)

    def _withheld(self, result: ProbeResult) -> None:
        """A timeout judged while recmon's own loop ran late: counted, never the tenant's."""
        self.metrics.timeouts_withheld.labels(result.check).inc()
        self._withheld_count += 1
        self.skipped_runs += 1
        self.last_result_at = self.clock.monotonic()
        self._show_skip(result.tenant, result.check, WITHHELD)

    def _tally(self) -> Tally:
        return Tally(
            self.clock.monotonic(),
            finished=self._finished,
            withheld=self._withheld_count,
            untrusted=self._untrusted,
            started=dict(self._runs_started),
            skipped=dict(self._runs_skipped),
            late=dict(self._runs_late),
        )

    def load_reading(self) -> LoadReading:
        """What recmon saw of itself over the last minute (or since it started)."""
        latest = self._tally()
        self._load_marks.append(latest)
        while len(self._load_marks) > 1 and latest.at - self._load_marks[1].at >= LOAD_WINDOW_S:
            self._load_marks.popleft()
        since = self._load_marks[0].at
        recent = next(m for m in self._load_marks if m.at >= latest.at - LAG_SPAN_S)
        return reading_between(
            self._load_marks[0],
            latest,
            intervals={root: self.checks[root].interval for root in self.engine.roots},
            loop_lag_s=max(
                self.loop_lag.max_lag_between(since, latest.at), self.loop_lag.current_lag()
            ),
            recent_lag_s=max(
                self.loop_lag.max_lag_between(latest.at - LAG_SPAN_S, latest.at),
                self.loop_lag.current_lag(),
            ),
            recent=recent,
        )

    async def _watch_load(self, stop: asyncio.Event) -> None:
        """recmon's own overload: an alert of its own (never the tenants'), and once a minute
        a log line saying what to do."""
        self._load_marks.append(self._tally())
        while not stop.is_set():
            await self.clock.sleep(LOAD_READING_S)
            try:
                reading = self.load_reading()
                self.hub.observe_load(reading)
                now = self.clock.monotonic()
                if overloaded(reading, self.config.alerts.overload) and (
                    now - self._overload_logged_at >= 60.0
                ):
                    self._overload_logged_at = now
                    summary, details = describe_overload(reading, self.config.alerts.overload)
                    log.warning(summary, extra={"fields": details})
            except Exception:  # a bug: count it, keep watching
                self.metrics.internal_errors.labels("load").inc()
                log.exception("load reading failed")

    def observe(self, result: ProbeResult) -> None:
        if result.reason:
            # A reason may quote what the target or a token endpoint answered: it is kept (the
            # state file), paged, logged and shown, so never with a secret recmon holds in it.
            reason = self.redactor.redact(result.reason)
            if reason != result.reason:
                result = replace(result, reason=reason)
        self._finished += 1
        self._untrusted += not result.latency_trusted and result.attempts > 0
        self.last_result_at = now = self.clock.monotonic()
        self.probe_rate.add(now)
        self.skips.pop((result.tenant, result.check), None)
        latency = self.hub.observe(result)
        # The one place a result's metrics are written: outcome, latency and the gauges the
        # detector's windows give (window and baseline p95).
        self.metrics.record(result, p95=latency.p95, baseline=latency.baseline)
        self.latest[(result.tenant, result.check)] = result
        self.progress.outcomes[result.outcome] += 1
        for listener in self.result_listeners:
            listener(result)
        if not result.ok:
            log.debug(
                "probe failed",
                extra={
                    "fields": {
                        "tenant": result.tenant,
                        "check": result.check,
                        "outcome": result.outcome.value,
                        "reason": result.reason,
                    }
                },
            )

    # --- tenants ------------------------------------------------------------------------------

    async def refresh_tenants(self) -> tuple[str, ...]:
        try:
            tenants = await self.tenant_source.refresh()
        except TenantSourceError:
            self.metrics.tenant_source_errors.inc()
            raise
        if self.tenant_source.last_error is not None:
            self.metrics.tenant_source_errors.inc()
        self._apply_tenants(tenants)
        return tenants

    def _apply_tenants(self, tenants: tuple[str, ...]) -> None:
        # Known tenants include those remembered from the state file and restored counters:
        # a tenant offboarded between two CronJob runs must vanish from metrics and resolve.
        known = set(self.tenants) | self.hub.tenants_known() | self.metrics.tenants_seen()
        removed = known - set(tenants)
        for tenant in removed:
            self.metrics.forget_tenant(tenant)
            for key in [k for k in self.latest if k[0] == tenant]:
                del self.latest[key]
            for key in [k for k in self.tenant_skips if k[0] == tenant]:
                del self.tenant_skips[key]
        if removed or len(tenants) != len(self.tenants):
            log.info(
                "tenants updated",
                extra={
                    "fields": {
                        "tenants": len(tenants),
                        "removed": len(removed),
                        "shard": str(self.shard),
                    }
                },
            )
        self.tenants = tenants
        self.hub.set_tenants(tenants, removed)
        self.metrics.size_for(len(tenants))
        self.metrics.tenants.set(len(tenants))
        self.scheduler.set_jobs(self.engine.jobs(tenants))

    # --- running ------------------------------------------------------------------------------

    async def probe_round(self) -> list[ProbeResult]:
        """Probe every tenant × check once. Raises TenantSourceError when there are no tenants."""
        if self.credentials is not None:
            self.credentials.refresh()  # a rotation since the last round
        tenants = await self.refresh_tenants()
        collected: list[ProbeResult] = []
        self.result_listeners.append(collected.append)
        try:
            await self.engine.run_round(tenants)
        finally:
            self.result_listeners.remove(collected.append)
        if self.tls.watching:
            await self.tls.round()
        # The whole fleet was just probed: storms are complete, nothing needs to wait.
        self.hub.tick(flush=True)
        return collected

    async def run(self, stop: asyncio.Event, *, progress_every: float | None = None) -> None:
        """Probe on schedule until `stop` is set; then let in-flight probes finish."""
        background = [
            asyncio.create_task(self.loop_lag.run(stop), name="loop-lag"),
            *(
                [asyncio.create_task(self.credentials.run(stop), name="credentials")]
                if self.credentials is not None
                else []
            ),
            asyncio.create_task(self.client_certificates.run(stop), name="client-certificates"),
            asyncio.create_task(self._watch_load(stop), name="load"),
            asyncio.create_task(self._refresh_tenants_forever(stop), name="tenants"),
            asyncio.create_task(self._report_progress(stop, progress_every), name="progress"),
            asyncio.create_task(self.hub.run(stop), name="alerts"),
            asyncio.create_task(self.tls.run(stop), name="tls"),
        ]
        scheduler = asyncio.create_task(self.scheduler.run(stop), name="scheduler")
        try:
            await stop.wait()
        finally:
            await scheduler
            await self.scheduler.drain(within=self.config.max_timeout * 2 + 1)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)

    async def _refresh_tenants_forever(self, stop: asyncio.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            if self.tenant_source.due():
                try:
                    await self.refresh_tenants()
                    backoff = 1.0
                    if not self.ready.is_set():
                        self.ready.set()
                        # Everything built so far (modules, configuration, the tenant list)
                        # lives as long as the process: keep it out of garbage-collector scans,
                        # which otherwise pause the loop for longer with every tenant.
                        gc.collect()
                        gc.freeze()
                        # Every probe allocates and frees a few hundred objects, nearly none
                        # in cycles: collect less often (measured with 10,000 tenants: about
                        # 4% less CPU; the defaults are 700, 10, 10).
                        gc.set_threshold(*GC_THRESHOLDS)
                except TenantSourceError as exc:
                    log.error(
                        "no tenants yet: tenant source failed",
                        extra={"fields": {"error": str(exc), "retry_in_s": backoff}},
                    )
                    await self.clock.sleep(backoff)
                    backoff = min(backoff * 2, 60.0)
                    self.tenant_source.retry_soon()
                    continue
            await self.clock.sleep(1.0)

    async def _report_progress(self, stop: asyncio.Event, every: float | None) -> None:
        every = every or min((c.interval for c in self.checks.values()), default=60.0)
        while not stop.is_set():
            await self.clock.sleep(every)
            self.metrics.event_loop_lag.set(self.loop_lag.recent_max)
            outcomes, lags = self.progress.take()
            failing = sorted({t for (t, _), r in self.latest.items() if not r.ok})
            log.info(
                "progress",
                extra={
                    "fields": {
                        "tenants": len(self.tenants),
                        "probes": sum(outcomes.values()),
                        **{o.value: n for o, n in sorted(outcomes.items())},
                        "failing_tenants": len(failing),
                        "failing_sample": failing[:5],
                        "loop_lag_ms": round(self.loop_lag.recent_max * 1000, 1),
                        "schedule_lag_p99_ms": _ms(percentile(lags, 0.99)),
                    }
                },
            )

    async def aclose(self) -> None:
        await self.probing.aclose()
