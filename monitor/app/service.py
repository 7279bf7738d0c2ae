"""The monitor assembled: configuration → tenants → engine/scheduler → metrics (and alerts)."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from monitor.alerting.hub import AlertHub
from monitor.app.ledger import ProbeLedger
from monitor.app.loadwatch import LoadWatch
from monitor.config.model import Config
from monitor.core.clock import Clock
from monitor.core.results import ProbeResult
from monitor.core.tenancy import Shard
from monitor.detect.overload import LoadReading
from monitor.probing.engine import Engine
from monitor.probing.parts import ProbingParts
from monitor.probing.scheduler import Scheduler
from monitor.probing.tenant_source import TenantSourceError
from monitor.telemetry.looplag import LoopLagMonitor
from monitor.telemetry.metrics import Metrics
from monitor.telemetry.rate import RateMeter
from monitor.tls.watch import TlsWatch

log = logging.getLogger("recmon.service")

# The young generation's threshold counts allocations net of frees; at 10,000 tenants x 2 every
# 60 s it still creeps up ~20,000 a minute, and each young collection walks every young object
# still alive (~11 a probe: the series' new states, tallies, results; ~220,000 after a minute,
# 130-260 ms of CPU) however long it waited. At 20,000 that was a collection every 30-60 s;
# at 100,000 one every ~5 minutes (each as long as before; the cyclic garbage it frees, mostly
# closed connections, ~2,400 objects).
GC_THRESHOLDS = (100_000, 20, 50)


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


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
    """The running monitor: puts the tenants on the schedule, and runs its long-lived parts
    together (`run`) or probes every tenant once (`probe_round`). It receives its parts, built
    by app.assembly.build_monitor: the engine reports to `ledger`, which passes each result on
    to `hub`."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock,
        registry: CollectorRegistry,
        metrics: Metrics,
        shard: Shard,
        probing: ProbingParts,
        loop_lag: LoopLagMonitor,
        ledger: ProbeLedger,
        engine: Engine,
        scheduler: Scheduler,
        hub: AlertHub,
        tls: TlsWatch,
        load_watch: LoadWatch,
    ) -> None:
        self.config = config
        self.clock = clock
        self.registry = registry
        self.metrics = metrics
        self.shard = shard
        self.probing = probing
        self.checks = probing.checks
        self.credentials = probing.credentials
        self.client_certificates = probing.client_certificates
        self.tenant_source = probing.tenant_source
        self.loop_lag = loop_lag
        self.ledger = ledger
        self.engine = engine
        self.scheduler = scheduler
        self.hub = hub
        self.tls = tls
        self.load_watch = load_watch
        self.tenants: tuple[str, ...] = ()
        self.ready = asyncio.Event()

    # --- the ledger's, read here (status page, reports, tests) ---------------------------------

    @property
    def latest(self) -> dict[tuple[str, str], ProbeResult]:
        return self.ledger.latest

    @property
    def skips(self) -> dict[tuple[str, str], str]:
        return self.ledger.skips

    @property
    def tenant_skips(self) -> dict[tuple[str, str], int]:
        return self.ledger.tenant_skips

    @property
    def skipped_runs(self) -> int:
        return self.ledger.skipped_runs

    @property
    def probe_rate(self) -> RateMeter:
        return self.ledger.probe_rate

    @property
    def result_listeners(self) -> list[Callable[[ProbeResult], None]]:
        return self.ledger.result_listeners

    def observe(self, result: ProbeResult) -> None:
        self.ledger.observe(result)

    def load_reading(self) -> LoadReading:
        return self.load_watch.reading()

    def healthy(self) -> bool:
        """Probing on schedule: tenants loaded, results arriving, the event loop on time."""
        if not self.ready.is_set() or self.loop_lag.recent_max >= 1.0:
            return False
        longest = max((c.interval for c in self.checks.values()), default=60.0)
        last = self.ledger.last_result_at
        return last is not None and self.clock.monotonic() - last < 2 * longest

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
            self.ledger.forget_tenant(tenant)
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
            asyncio.create_task(self.load_watch.run(stop), name="load"),
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
                        # in cycles: collect less often (see GC_THRESHOLDS; the defaults are
                        # 700, 10, 10).
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
            outcomes, lags = self.ledger.progress.take()
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
