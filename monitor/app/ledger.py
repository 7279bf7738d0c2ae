"""What the engine and the scheduler report, kept by one owner: each tenant × check's latest
result (or why it was skipped), the runs recmon skipped, and the tallies recmon's load
readings are taken from. Built before the engine, which reports through its methods."""

from __future__ import annotations

import logging
import operator
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace

from monitor.alerting.hub import AlertHub
from monitor.core.clock import Clock
from monitor.core.frozen import builder
from monitor.core.results import Outcome, ProbeResult
from monitor.core.secrets import Redactor
from monitor.detect.overload import Tally
from monitor.probing.checks import HttpCheck
from monitor.probing.engine import Job
from monitor.telemetry.metrics import Metrics
from monitor.telemetry.rate import RateMeter

# The service's logger, as before the ledger had a module of its own (log pipelines match it).
log = logging.getLogger("recmon.service")

# A timeout judged while recmon's loop ran late: the skip the status page shows instead.
WITHHELD = "timeout withheld: recmon's event loop ran late"

# A result's fields, in order: its copy without item_ids is built positionally through the
# frozen builder (~1.4 us; ~3.3 through the slots' descriptors one by one, the frozen
# __init__ by name ~3.5, dataclasses.replace ~5.8), paid on every probe whose result carries
# ids.
_NAMES = [f.name for f in fields(ProbeResult)]
_FIELDS = operator.attrgetter(*_NAMES)
_IDS_AT = _NAMES.index("item_ids")
_new_result = builder(ProbeResult)


def _without_ids(result: ProbeResult) -> ProbeResult:
    values = _FIELDS(result)
    return _new_result(*values[:_IDS_AT], (), *values[_IDS_AT + 1 :])


@dataclass
class Progress:
    """Counts since the last progress report, for a log line a person can follow."""

    outcomes: Counter[Outcome] = field(default_factory=Counter)
    lags: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))

    def take(self) -> tuple[Counter[Outcome], list[float]]:
        # Cleared in place: the ledger appends to these between reports.
        outcomes, lags = Counter(self.outcomes), sorted(self.lags)
        self.outcomes.clear()
        self.lags.clear()
        return outcomes, lags


class ProbeLedger:
    def __init__(
        self,
        checks: Mapping[str, HttpCheck],
        *,
        clock: Clock,
        metrics: Metrics,
        hub: AlertHub,
        redactor: Redactor,
        late: float,
        result_listeners: Sequence[Callable[[ProbeResult], None]] = (),
    ) -> None:
        """`late`: the share of its interval after which a run counts as started late (the
        overload rule's). `result_listeners`: also called with every result (the results log)."""
        self.checks = checks
        self.clock = clock
        self.metrics = metrics
        self.hub = hub
        self.redactor = redactor
        self.late = late
        self.result_listeners: list[Callable[[ProbeResult], None]] = list(result_listeners)
        self.latest: dict[tuple[str, str], ProbeResult] = {}
        self.skips: dict[tuple[str, str], str] = {}
        self.last_result_at: float | None = None
        self.probe_rate = RateMeter()
        self.progress = Progress()
        # Runs recmon itself skipped since start (overruns, timeouts withheld while its loop
        # ran late); a tenant's own skips (a missing variable or credential) are counted per
        # tenant × check in tenant_skips, and shown on the tenant's row.
        self.skipped_runs = 0
        self.tenant_skips: dict[tuple[str, str], int] = {}
        self._overruns = 0
        self._overrun_logged_at = float("-inf")
        # Load readings' tallies, since start.
        self._finished = 0
        self._withheld_count = 0
        self._untrusted = 0
        self._runs_started: Counter[str] = Counter()  # by check
        self._runs_skipped: Counter[str] = Counter()
        self._runs_late: Counter[str] = Counter()

    def started(self, check: str, lag: float) -> None:
        """A scheduled run started `lag` seconds after its slot."""
        self.progress.lags.append(lag)
        self._runs_started[check] += 1
        if lag > self.late * self.checks[check].interval:
            self._runs_late[check] += 1
            self.metrics.runs_late.labels(check).inc()

    def overrun(self, job: Job, runs: int = 1) -> None:
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

    def not_probed(self, tenant: str, check: str, why: str) -> None:
        """The engine skipped a tenant (no credential, a variable unset): shown, and not among
        the tenants the check probes when a fleet's scope is counted."""
        self._skipped(tenant, check, why)
        self.hub.not_probed(tenant, check, why)

    def withheld(self, result: ProbeResult) -> None:
        """A timeout judged while recmon's own loop ran late: counted, never the tenant's."""
        self.metrics.timeouts_withheld.labels(result.check).inc()
        self._withheld_count += 1
        self.skipped_runs += 1
        self.last_result_at = self.clock.monotonic()
        self._show_skip(result.tenant, result.check, WITHHELD)

    def tally(self) -> Tally:
        return Tally(
            self.clock.monotonic(),
            finished=self._finished,
            withheld=self._withheld_count,
            untrusted=self._untrusted,
            started=dict(self._runs_started),
            skipped=dict(self._runs_skipped),
            late=dict(self._runs_late),
        )

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
        key = (result.tenant, result.check)
        if self.skips:  # usually none shown: no pop to try on every probe
            self.skips.pop(key, None)
        latency = self.hub.observe(result)
        # The one place a result's metrics are written: outcome, latency and the gauges the
        # detector's windows give (window and baseline p95).
        self.metrics.record(result, p95=latency.p95, baseline=latency.baseline)
        # Kept without its item ids: the content judgement keeps them, packed (its Answer),
        # and nothing shown from the latest result reads them (~1 KB a tenant's list).
        self.latest[key] = _without_ids(result) if result.item_ids else result
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

    def forget_tenant(self, tenant: str) -> None:
        """An offboarded tenant: its latest results, the skips shown for it and its skip
        counts go (a skip left behind kept an offboarded tenant's row on the status page)."""
        for key in [k for k in self.latest if k[0] == tenant]:
            del self.latest[key]
        for key in [k for k in self.skips if k[0] == tenant]:
            del self.skips[key]
        for key in [k for k in self.tenant_skips if k[0] == tenant]:
            del self.tenant_skips[key]
