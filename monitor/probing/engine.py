"""Runs probes: throttle per host, bound in-flight probes, chain dependent checks, hand results on.

The engine decides *how* a probe is sent; the scheduler decides *when*.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import httpx

from monitor.core.clock import Clock
from monitor.core.results import ProbeResult
from monitor.core.templating import MissingVariable
from monitor.probing.checks import HttpCheck, RenderedRequest
from monitor.probing.http import probe_http
from monitor.probing.throttle import HostThrottle
from monitor.telemetry.metrics import Metrics

log = logging.getLogger("recmon.engine")

ResultSink = Callable[[ProbeResult], None]


@dataclass(frozen=True, slots=True)
class Job:
    """One tenant's run of a root check and, after it, the checks that depend on it."""

    tenant: str
    check: str


_UNBOUNDED = contextlib.nullcontext()


class Engine:
    def __init__(
        self,
        checks: Mapping[str, HttpCheck],
        clients: Mapping[str, httpx.AsyncClient],
        *,
        clock: Clock,
        metrics: Metrics,
        sink: ResultSink,
        tenant_vars: Callable[[str], Mapping[str, str]],
        throttles: Mapping[str, HostThrottle] | None = None,
        max_in_flight: int = 256,
        target_connections: Mapping[str, int] | None = None,
        latency_guard: Callable[[float, float], bool] | None = None,
        lag_sink: Callable[[float], None] | None = None,
        skip_sink: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.checks = dict(checks)
        self.clients = clients
        self.clock = clock
        self.metrics = metrics
        self.sink = sink
        self.tenant_vars = tenant_vars
        self.throttles = throttles or {}
        self.in_flight = asyncio.Semaphore(max_in_flight)
        self.max_in_flight = max_in_flight
        # A probe that waits for a pooled connection inside httpx would be timed while it
        # waits; bounding each target's probes by its pool size keeps that wait out here.
        self.target_slots = {
            name: asyncio.Semaphore(size) for name, size in (target_connections or {}).items()
        }
        # (start, end) monotonic → True when the monitor ran on time during that span.
        self.latency_guard = latency_guard
        self.lag_sink = lag_sink
        self.skip_sink = skip_sink
        # A missing captured variable is routine (the earlier check failed) and counted; any
        # other missing variable is a configuration gap for that tenant, said once.
        self._told_missing: set[tuple[str, str, str]] = set()
        self.dependents: dict[str, list[str]] = {name: [] for name in self.checks}
        for name, check in self.checks.items():
            if check.after is not None and check.after in self.dependents:
                self.dependents[check.after].append(name)

    @property
    def roots(self) -> list[str]:
        return [name for name, check in self.checks.items() if check.after is None]

    def jobs(self, tenants: Iterable[str]) -> list[Job]:
        roots = self.roots
        return [Job(tenant, root) for tenant in tenants for root in roots]

    async def run_job(self, job: Job, due: float | None = None) -> None:
        """Probe the job's root check, then its dependents with the root's captures."""
        values = dict(self.tenant_vars(job.tenant))
        values["tenant"] = job.tenant
        try:
            await self._run_check(job.tenant, job.check, values, due)
        except Exception:  # a bug, never the target's doing: log it and keep the scheduler alive
            self.metrics.internal_errors.labels("engine").inc()
            log.exception(
                "probe failed inside recmon",
                extra={"fields": {"tenant": job.tenant, "check": job.check}},
            )

    async def run_round(self, tenants: Iterable[str]) -> None:
        """Probe every job once, as fast as the in-flight bound and throttles allow."""
        queue = iter(self.jobs(tenants))

        async def worker() -> None:
            for job in queue:
                await self.run_job(job)

        workers = [asyncio.create_task(worker()) for _ in range(self.max_in_flight)]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()

    async def _run_check(
        self, tenant: str, name: str, values: dict[str, str], due: float | None
    ) -> None:
        check = self.checks[name]
        try:
            request = check.render(values)
        except MissingVariable as exc:
            self.metrics.probes_skipped.labels(name, "missing_variable").inc()
            if self.skip_sink is not None:
                why = (
                    f"{check.after} did not succeed, so captured nothing"
                    if exc.name in check.captured_before and check.after
                    else "not set for this tenant in tenants.vars or tenants.default_vars"
                )
                self.skip_sink(tenant, name, f"no {{{exc.name}}}: {why}")
            fields = {"tenant": tenant, "check": name, "variable": exc.name}
            told = (tenant, name, exc.name)
            if exc.name not in check.captured_before and told not in self._told_missing:
                self._told_missing.add(told)
                log.warning(
                    "tenant never probed by this check: template variable not set for it "
                    "(tenants.vars or tenants.default_vars)",
                    extra={"fields": fields},
                )
            else:
                # Debug only: when search fails for every tenant this happens for every
                # tenant, and recmon_probes_skipped_total already counts it.
                log.debug("probe skipped: missing template variable", extra={"fields": fields})
            result = None
        else:
            result = await self._probe(check, tenant, request, due)
            self.sink(result)
        if not self.dependents[name]:
            return
        child_values = (
            {**values, **result.captures} if result is not None and result.captures else values
        )
        for child in self.dependents[name]:
            await self._run_check(tenant, child, child_values, None)

    async def _probe(
        self, check: HttpCheck, tenant: str, request: RenderedRequest, due: float | None
    ) -> ProbeResult:
        throttle = self.throttles.get(check.target)
        if throttle is not None:
            await throttle.acquire()
        target_slot = self.target_slots.get(check.target) or _UNBOUNDED
        async with self.in_flight, target_slot:
            start = self.clock.monotonic()
            if due is not None:
                lag = max(0.0, start - due)
                self.metrics.schedule_lag.observe(lag)
                if self.lag_sink is not None:
                    self.lag_sink(lag)
            client = self.clients[check.target]
            result = await probe_http(check, tenant, request, client, self.clock)
        if self.latency_guard is not None and not self.latency_guard(start, self.clock.monotonic()):
            result = replace(result, latency_trusted=False)
        return result
