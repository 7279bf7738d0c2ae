"""Runs probes: throttle per host, bound in-flight probes, chain dependent checks, hand results on.

The engine decides *how* a probe is sent; the scheduler decides *when*.
"""

from __future__ import annotations

import asyncio
import logging
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import httpx

from monitor.core.clock import Clock
from monitor.core.results import CREDENTIAL_SHARED, Outcome, ProbeResult
from monitor.core.templating import MissingVariable
from monitor.probing.checks import HttpCheck
from monitor.probing.http import PreparedRequest, prepare, prepared, probe_http
from monitor.probing.oauth2 import TokenSource, TokenUnavailable
from monitor.probing.slots import ProbeSlots
from monitor.probing.throttle import HostThrottle
from monitor.telemetry.metrics import Metrics

log = logging.getLogger("recmon.engine")

ResultSink = Callable[[ProbeResult], None]

# Prepared requests kept per check (http.prepared keeps twice as many per target's client).
PREPARED_PER_CHECK = 32768


@dataclass(frozen=True, slots=True)
class Job:
    """One tenant's run of a root check and, after it, the checks that depend on it."""

    tenant: str
    check: str


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
        deadline_guard: Callable[[float, float, float], bool] | None = None,
        withheld_sink: ResultSink | None = None,
        lag_sink: Callable[[str, float], None] | None = None,  # (check, seconds late)
        flight_sink: Callable[[int], None] | None = None,  # +1 as a probe starts, -1 as it ends
        skip_sink: Callable[[str, str, str], None] | None = None,
        credential_names: frozenset[str] = frozenset(),
        token_sources: Mapping[str, TokenSource] | None = None,
    ) -> None:
        self.checks = dict(checks)
        self.clients = clients
        self.clock = clock
        self.metrics = metrics
        self.sink = sink
        self.tenant_vars = tenant_vars
        self.throttles = throttles or {}
        self.max_in_flight = max_in_flight
        # A probe that waits for a pooled connection inside httpx would be timed while it
        # waits; bounding each target's probes by its pool size keeps that wait out here.
        self.slots = ProbeSlots(max_in_flight, target_connections)
        # (start, end) monotonic → True when the monitor ran on time during that span.
        self.latency_guard = latency_guard
        # (start, deadline, end) monotonic → True when the monitor ran on time during a probe;
        # a timeout it may have caused itself goes to `withheld_sink`, not `sink`.
        self.deadline_guard = deadline_guard
        self.withheld_sink = withheld_sink
        self.lag_sink = lag_sink
        # The loop-lag monitor ticks fast only while probes are in flight.
        self.flight_sink = flight_sink
        self.skip_sink = skip_sink
        # A missing captured variable is routine (the earlier check failed) and counted; any
        # other missing variable is a configuration gap for that tenant, said once.
        self._told_missing: set[tuple[str, str, str]] = set()
        # Variables that are tenants' credentials: without one the tenant is skipped, never
        # probed anonymously, and that is said once per tenant (until its credential returns).
        self.credential_names = credential_names
        self.token_sources = token_sources or {}
        self._told_credential: set[str] = set()
        self._uses_credential = {
            name for name, check in self.checks.items() if check.variables & credential_names
        }
        # The request a tenant's values render to, prepared for its target's client and kept
        # per check: the same every interval, rendered and prepared once (rendering was about
        # 4% of recmon's CPU at 1,000 probes/s, preparing 7% on the 10k-tenant fleet), and
        # only what a probe sends kept, not the rendered request (~0.3 KB a series). Not for
        # checks that use what an earlier check captured (new values every run: http.prepared
        # keeps those by their rendered request).
        self._request_keys = {
            name: _values_key(check.variables)
            for name, check in self.checks.items()
            if not check.variables & check.captured_before
        }
        self._prepared: dict[str, dict[object, PreparedRequest]] = {
            name: {} for name in self._request_keys
        }
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
        result: ProbeResult | None
        try:
            request = self._request(check, values)
        except MissingVariable as exc:
            if exc.name in self.credential_names:
                self._skip_for_credential(tenant, name, exc.name)
                result = None
            else:
                self._skip_for_variable(tenant, check, exc)
                result = None
        else:
            if self._told_credential and name in self._uses_credential:
                self._told_credential.discard(tenant)  # it has one again: say so if it goes
            # Straight to _send without token sources: one coroutine fewer a probe.
            result = await (
                self._probe(check, tenant, request, due, values)
                if self.token_sources
                else self._send(check, tenant, request, due, values)
            )
            if result is not None:  # None: withheld, the monitor's lag and not the tenant's
                self.sink(result)
        if not self.dependents[name]:
            return
        child_values = (
            {**values, **result.captures} if result is not None and result.captures else values
        )
        for child in self.dependents[name]:
            await self._run_check(tenant, child, child_values, None)

    def _request(self, check: HttpCheck, values: Mapping[str, str]) -> PreparedRequest:
        """The tenant's request, prepared for the check's target. Raises MissingVariable."""
        client = self.clients[check.target]
        key_of = self._request_keys.get(check.name)
        if key_of is None:
            return prepared(client, check.render(values))
        try:
            key = key_of(values)
        except KeyError:
            return prepare(client, check.render(values))  # raises MissingVariable, naming it
        kept = self._prepared[check.name]
        request = kept.get(key)
        if request is None:
            if len(kept) >= PREPARED_PER_CHECK:
                kept.clear()  # offboarded tenants, changed variables: start again
            request = kept[key] = prepare(client, check.render(values))
        return request

    def _skip_for_credential(self, tenant: str, check: str, variable: str) -> None:
        self.metrics.probes_skipped.labels(check, "missing_credential").inc()
        if self.skip_sink is not None:
            self.skip_sink(tenant, check, f"no credential {{{variable}}}")
        if tenant not in self._told_credential:
            self._told_credential.add(tenant)
            log.warning(
                "tenant not probed: no credential for it in tenants.credentials",
                extra={"fields": {"tenant": tenant, "variable": variable}},
            )

    def _skip_for_variable(self, tenant: str, check: HttpCheck, exc: MissingVariable) -> None:
        name = check.name
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

    async def _probe(
        self,
        check: HttpCheck,
        tenant: str,
        request: PreparedRequest,
        due: float | None,
        values: Mapping[str, str],
    ) -> ProbeResult | None:
        """The probe's result; None when it timed out while the monitor itself stood still long
        enough to cause it, handed to `withheld_sink` instead."""
        tokens = self.token_sources.get(check.target)
        if tokens is None:
            return await self._send(check, tenant, request, due, values)
        # The token is had before the probe is timed: fetching it is never latency.
        token = await tokens.token()
        if isinstance(token, TokenUnavailable):
            return self._without_token(check, tenant, token)
        result = await self._send(check, tenant, request.with_bearer(token.value), due, values)
        if result is not None and result.outcome is Outcome.AUTH_ERROR and result.status == 401:
            fresh = await tokens.refused(token)
            if fresh is not None:
                result = await self._send(
                    check, tenant, request.with_bearer(fresh.value), None, values
                )
        return result

    def _without_token(self, check: HttpCheck, tenant: str, token: TokenUnavailable) -> ProbeResult:
        """No request without the token: refused client credentials are recmon's, an
        unreachable token endpoint is the platform's."""
        outcome = Outcome.AUTH_ERROR if token.refused else Outcome.CONNECT_ERROR
        what = "refused the client credentials" if token.refused else "unavailable"
        return ProbeResult(
            tenant,
            check.name,
            outcome,
            0.0,
            self.clock.time(),
            reason=f"OAuth2 token endpoint {what}: {token.reason}",
            attempts=0,
            credential=CREDENTIAL_SHARED if token.refused else "",
        )

    async def _send(
        self,
        check: HttpCheck,
        tenant: str,
        request: PreparedRequest,
        due: float | None,
        values: Mapping[str, str],
    ) -> ProbeResult | None:
        throttle = self.throttles.get(check.target)
        if throttle is not None:
            await throttle.acquire()
        slots, target, flight = self.slots, check.target, self.flight_sink
        if not slots.try_take(target):
            await slots.take(target)
        if flight is not None:
            flight(1)
        try:
            start = self.clock.monotonic()
            if due is not None:
                lag = max(0.0, start - due)
                self.metrics.observe_schedule_lag(lag)
                if self.lag_sink is not None:
                    self.lag_sink(check.name, lag)
            client = self.clients[check.target]
            # The latency guard is asked as the result is built (once, not copied untrusted).
            result = await probe_http(
                check, tenant, request, client, self.clock, values, self.latency_guard, start
            )
        finally:
            slots.give(target)
            if flight is not None:
                flight(-1)  # the deadline's guard below runs before the tick can idle
        if (
            result.outcome is Outcome.TIMEOUT
            and self.deadline_guard is not None
            and not self.deadline_guard(start, start + check.timeout, self.clock.monotonic())
        ):
            if self.withheld_sink is not None:
                self.withheld_sink(result)
            return None
        return result


def _values_key(names: frozenset[str]) -> Callable[[Mapping[str, str]], object]:
    """What tells one tenant's request from another's: the values of the check's variables
    (KeyError when one is missing)."""
    if not names:
        return _no_values
    return operator.itemgetter(*sorted(names))


def _no_values(values: Mapping[str, str]) -> object:
    return ()
