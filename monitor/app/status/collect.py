"""Reads what the running monitor knows into a status Snapshot (no I/O beyond counting the
outbox; the pure model does the rest). Taken on the event loop; what it holds is either
copied or immutable (series states), so rendering can run in a worker thread."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from monitor import __version__
from monitor.alerting.pipeline import NotificationPipeline
from monitor.app.persist import Persistence
from monitor.app.service import Monitor
from monitor.app.status.model import RECENT_PROBES, ReloadRecord, SelfHealth, SeriesView, Snapshot


@dataclass(frozen=True)
class StatusSource:
    """One generation's parts, and what outlives generations (reloads, start time)."""

    monitor: Monitor
    pipeline: NotificationPipeline | None
    persistence: Persistence | None
    state_path: str
    started_at: float
    config_source: str


def _series_view(monitor: Monitor, tenant: str, check: str) -> SeriesView | None:
    state = monitor.hub.series(tenant, check)
    if state is None:
        return None
    p95, baseline = monitor.hub.latency(tenant, check)
    samples = state.samples
    # The share the empty_results rule judges (its window, 5 minutes unless configured),
    # not every stored sample: those reach back as far as the longest rule (error_rate's 15).
    window = monitor.hub.empty_window(tenant, check)
    recent = state.window(monitor.clock.time() - window)
    empty = sum(1 for s in recent if s.outcome == "empty")
    return SeriesView(
        p95_s=p95,
        baseline_s=baseline,
        empty_share=empty / len(recent) if recent else None,
        empty_window_s=window,
        window_s=(samples[-1].at - samples[0].at) if samples else 0.0,
        samples=tuple((s.at, s.outcome, s.latency, s.reason) for s in samples[-RECENT_PROBES:]),
    )


def snapshot(source: StatusSource, reload: ReloadRecord | None) -> Snapshot:
    monitor = source.monitor
    unwritable = monitor.hub.storage_alert()
    persistence = source.persistence
    sinks, depth = source.pipeline.health() if source.pipeline is not None else ([], 0)
    intervals = [c.interval for c in monitor.checks.values()]
    return Snapshot(
        now=monitor.clock.time(),
        version=__version__,
        shard=str(monitor.shard),
        config_source=source.config_source,
        tenants=monitor.tenants,
        checks=tuple(monitor.checks),
        interval_s=min(intervals, default=60.0),
        # Copies: the page is rendered off the event loop while probes keep landing.
        latest=dict(monitor.latest),
        skips=dict(monitor.skips),
        paged=monitor.hub.active_triggers(),
        sinks=sinks,
        outbox_depth=depth,
        reload=reload,
        health=SelfHealth(
            probes_per_s=monitor.probe_rate.rate(monitor.clock.monotonic()),
            loop_lag_s=monitor.loop_lag.recent_max,
            skipped_runs=monitor.skipped_runs,
            probes_running=monitor.scheduler.running,
            healthy=monitor.healthy(),
            ready=monitor.ready.is_set(),
            state_path=source.state_path,
            state_saved_at=persistence.saved_at if persistence else None,
            state_error=persistence.last_error if persistence else None,
            tenant_source_error=monitor.tenant_source.last_error,
            started_at=source.started_at,
            state_unwritable=unwritable.summary if unwritable else None,
            state_unwritable_since=unwritable.since if unwritable else None,
        ),
        certificates=monitor.tls.latest(),
        series=lambda tenant, check: _series_view(monitor, tenant, check),
        history=monitor.hub.history,
        tenant_skips=dict(monitor.tenant_skips),
        statuses={name: tuple(sorted(c.expected_status)) for name, c in monitor.checks.items()},
        alert_source=functools.partial(monitor.hub.alerts, monitor.hub.memory()),
    )
