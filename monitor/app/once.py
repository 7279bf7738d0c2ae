"""`recmon once`: one round for a CronJob — probe, evaluate, notify, persist, export."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TextIO

from prometheus_client import CollectorRegistry

from monitor.app.assembly import assemble, state_path
from monitor.app.exitcodes import EXIT_ALERTS, EXIT_ERROR, EXIT_HEALTHY
from monitor.app.history import HistoryRecorder
from monitor.app.ownership import open_for_shard
from monitor.app.persist import Persistence
from monitor.app.report import firing_summary, round_summary
from monitor.config.loader import LoadedConfig
from monitor.core.clock import SystemClock
from monitor.core.secrets import Redactor
from monitor.core.tenancy import Shard
from monitor.probing.tenant_source import TenantSourceError
from monitor.state.store import StateStore
from monitor.telemetry.polltime import TimedSelector
from monitor.telemetry.push import push, write_textfile

log = logging.getLogger("recmon")

# Firing alerts reach Alertmanager again only at the next run; until a second run shows the
# schedule, assume runs at most this far apart.
LAST_RUN_KEY = "once_last_run_at"
FIRST_RUN_GAP_S = 3600.0


@dataclass(frozen=True, slots=True)
class OnceOptions:
    shard: Shard = Shard()
    pushgateway: str | None = None
    metrics_file: str | None = None
    quiet: bool = False
    # How long the run may spend delivering notifications before it exits (a CronJob has
    # a deadline); whatever is left is delivered by the next run.
    flush_within: float = 30.0
    alerts_exit_code: int = EXIT_ALERTS


async def one_round(
    loaded: LoadedConfig,
    options: OnceOptions,
    out: TextIO = sys.stdout,
    redactor: Redactor | None = None,
    polls: TimedSelector | None = None,
) -> int:
    """Probe every tenant once, evaluate, notify, persist, export. `polls`: the selector of
    the loop it runs on, when that one times its polls.

    Exit 0 when no alert fires, 1 when alerts fire, 2 on configuration or internal errors.
    """
    store = open_for_shard(state_path(loaded), options.shard)
    clock = SystemClock()
    history = HistoryRecorder(clock, loaded.config.alerts.maintenance)
    # Firing alerts reach Alertmanager again only at the next run: their endsAt must reach
    # past it, or Alertmanager resolves them in between.
    monitor, pipeline = assemble(
        loaded,
        store,
        clock=clock,
        shard=options.shard,
        refresh_every=_gap_since_last_run(store, clock.time()),
        redactor=redactor,
        history=history,
        polls=polls,
    )
    registry = monitor.registry
    persistence = Persistence(store, monitor.hub, monitor.metrics, monitor.tenant_source, history)
    try:
        persistence.restore(counters=True)
        store.put(LAST_RUN_KEY, clock.time())
        try:
            results = await monitor.probe_round()
        except TenantSourceError as exc:
            log.error("no tenants to probe", extra={"fields": {"error": str(exc)}})
            return EXIT_ERROR
        # Deliver now what can be delivered; the rest waits in the outbox for the next run.
        await pipeline.flush(options.flush_within)
        await pipeline.refresh_firing(monitor.hub.active_triggers())
        persistence.save(counters=True)
        if pipeline.heartbeat is not None:
            await pipeline.heartbeat.ping()
        if not options.quiet:
            print(round_summary(results, list(monitor.checks), monitor.skips), file=out)
            print(
                firing_summary(
                    monitor.hub, sinks_configured=bool(pipeline.sinks), latest=monitor.latest
                ),
                file=out,
            )
        exported = _export(registry, loaded, options)
        firing = monitor.hub.firing
        log.info(
            "round complete",
            extra={
                "fields": {
                    "tenants": len(monitor.tenants),
                    "probes": len(results),
                    "alerts_firing": firing,
                }
            },
        )
        if not exported:
            return EXIT_ERROR
        return options.alerts_exit_code if firing else EXIT_HEALTHY
    finally:
        await pipeline.aclose()
        await monitor.aclose()
        store.close()


def _gap_since_last_run(store: StateStore, now: float) -> float:
    previous = store.get(LAST_RUN_KEY)
    if isinstance(previous, int | float) and now > previous:
        return now - float(previous)
    return FIRST_RUN_GAP_S


def _export(registry: CollectorRegistry, loaded: LoadedConfig, options: OnceOptions) -> bool:
    ok = True
    location = loaded.config.location
    labels = {"location": location} if location else None
    if options.metrics_file:
        try:
            write_textfile(registry, options.metrics_file, labels)
        except OSError as exc:
            log.error(
                "cannot write metrics file",
                extra={"fields": {"path": options.metrics_file, "error": str(exc)}},
            )
            ok = False
    gateway = options.pushgateway or loaded.config.metrics.pushgateway
    if gateway:
        grouping = {"shard": str(options.shard).replace("/", "-of-")}
        if location:
            # Each location's CronJob replaces its own group, never another location's.
            grouping["location"] = location
        try:
            push(
                registry,
                gateway,
                job=loaded.config.metrics.job,
                grouping_key=grouping,
                labels=labels,
            )
            log.info(
                "pushed metrics", extra={"fields": {"pushgateway": gateway, "group": grouping}}
            )
        except OSError as exc:
            log.error(
                "push to Pushgateway failed",
                extra={"fields": {"pushgateway": gateway, "error": str(exc)}},
            )
            ok = False
    return ok
