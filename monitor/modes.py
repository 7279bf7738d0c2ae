"""`recmon run` (long-running) and `recmon once` (one round for a CronJob)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from prometheus_client import CollectorRegistry

from monitor import __version__
from monitor.alerting.pipeline import NotificationPipeline
from monitor.asgiserve import serve_asgi
from monitor.clock import SystemClock
from monitor.config.loader import LoadedConfig
from monitor.httpapi import MonitorApi
from monitor.push import push, write_textfile
from monitor.report import firing_summary, round_summary
from monitor.resultslog import ResultsLog
from monitor.service import Monitor
from monitor.state.codec import planner_to_json
from monitor.state.persist import Persistence
from monitor.state.store import StateStore
from monitor.tenancy import Shard
from monitor.tenants import TenantSourceError

log = logging.getLogger("recmon")

EXIT_HEALTHY = 0
EXIT_ALERTS = 1
EXIT_ERROR = 2
SHUTDOWN_FLUSH_S = 10.0


@dataclass(frozen=True, slots=True)
class OnceOptions:
    shard: Shard = Shard()
    pushgateway: str | None = None
    metrics_file: str | None = None
    quiet: bool = False
    # How long the run may spend delivering notifications before it exits (a CronJob has
    # a deadline); whatever is left is delivered by the next run.
    flush_within: float = 30.0


def base_dir(loaded: LoadedConfig) -> Path:
    """Relative paths in a configuration file are relative to that file."""
    if loaded.source and not loaded.source.startswith("<"):
        return Path(loaded.source).resolve().parent
    return Path.cwd()


def state_path(loaded: LoadedConfig) -> Path:
    # Absolute already when loaded from a file (see config.loader); relative to the working
    # directory for configurations built in code.
    return base_dir(loaded) / loaded.config.state.path


async def run_once(loaded: LoadedConfig, options: OnceOptions, out: TextIO = sys.stdout) -> int:
    """Probe every tenant once, evaluate, notify, persist, export.

    Exit 0 when no alert fires, 1 when alerts fire, 2 on configuration or internal errors.
    """
    registry = CollectorRegistry()
    store = StateStore.open(state_path(loaded))
    monitor = Monitor(
        loaded,
        clock=SystemClock(),
        registry=registry,
        shard=options.shard,
        base_dir=base_dir(loaded),
    )
    pipeline = _pipeline(loaded, store, monitor)
    persistence = Persistence(store, monitor.hub, monitor.metrics, monitor.tenant_source)
    try:
        persistence.restore(counters=True)
        try:
            results = await monitor.run_once()
        except TenantSourceError as exc:
            log.error("no tenants to probe", extra={"fields": {"error": str(exc)}})
            return EXIT_ERROR
        # Deliver now what can be delivered; the rest waits in the outbox for the next run.
        await pipeline.flush(options.flush_within)
        persistence.save(counters=True)
        if pipeline.heartbeat is not None:
            await pipeline.heartbeat.ping()
        if not options.quiet:
            print(round_summary(results, list(monitor.checks)), file=out)
            print(firing_summary(monitor.hub), file=out)
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
        return EXIT_ALERTS if firing else EXIT_HEALTHY
    finally:
        await pipeline.aclose()
        await monitor.aclose()
        store.close()


def _pipeline(loaded: LoadedConfig, store: StateStore, monitor: Monitor) -> NotificationPipeline:
    pipeline = NotificationPipeline(
        loaded.config.notify, store, clock=monitor.clock, metrics=monitor.metrics
    )
    monitor.hub.route = pipeline.route
    pipeline.planner_state = lambda: planner_to_json(monitor.hub.tracker.planner)
    return pipeline


def _export(registry: CollectorRegistry, loaded: LoadedConfig, options: OnceOptions) -> bool:
    ok = True
    if options.metrics_file:
        try:
            write_textfile(registry, options.metrics_file)
        except OSError as exc:
            log.error(
                "cannot write metrics file",
                extra={"fields": {"path": options.metrics_file, "error": str(exc)}},
            )
            ok = False
    gateway = options.pushgateway or loaded.config.metrics.pushgateway
    if gateway:
        grouping = {"shard": str(options.shard).replace("/", "-of-")}
        try:
            push(registry, gateway, job=loaded.config.metrics.job, grouping_key=grouping)
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


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


async def run_forever(
    loaded: LoadedConfig,
    *,
    shard: Shard = Shard(),
    listen: str | None = None,
    results_log: str | None = None,
) -> int:
    registry = CollectorRegistry()
    store = StateStore.open(state_path(loaded))
    monitor = Monitor(
        loaded, clock=SystemClock(), registry=registry, shard=shard, base_dir=base_dir(loaded)
    )
    pipeline = _pipeline(loaded, store, monitor)
    persistence = Persistence(store, monitor.hub, monitor.metrics, monitor.tenant_source)
    persistence.restore(counters=False)
    log_file = ResultsLog(results_log) if results_log else None
    if log_file is not None:
        monitor.result_listeners.append(log_file.write)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _request_stop, stop, sig)

    def status() -> dict[str, Any]:
        failing = sorted({t for (t, _), r in monitor.latest.items() if not r.ok})
        return {
            "version": __version__,
            "shard": str(shard),
            "tenants": len(monitor.tenants),
            "checks": list(monitor.checks),
            "probes_running": monitor.scheduler.running,
            "failing_tenants": len(failing),
            "failing_sample": failing[:100],
            "alerts_firing": monitor.hub.firing,
            "event_loop_lag_seconds": monitor.loop_lag.recent_max,
            "tenant_source_error": monitor.tenant_source.last_error,
        }

    api = MonitorApi(
        registry,
        is_alive=lambda: monitor.loop_lag.recent_max < 10.0,
        is_ready=monitor.ready.is_set,
        status=status,
    )
    host, port = _split_listen(listen or loaded.config.metrics.listen)
    try:
        async with serve_asgi(api, host, port) as served:
            log.info(
                "recmon running",
                extra={
                    "fields": {
                        "version": __version__,
                        "metrics": f"{served.url}/metrics",
                        "shard": str(shard),
                        "checks": list(monitor.checks),
                    }
                },
            )
            saver = asyncio.create_task(persistence.run(stop), name="state")
            notifier = asyncio.create_task(
                pipeline.run(
                    stop,
                    firing=lambda: monitor.hub.tracker.planner.active_triggers(),
                    healthy=monitor.healthy,
                ),
                name="notify",
            )
            await monitor.run(stop)
            await saver
            await notifier
            await pipeline.flush(SHUTDOWN_FLUSH_S)
    except OSError as exc:
        log.error(
            "cannot serve metrics",
            extra={"fields": {"listen": f"{host}:{port}", "error": str(exc)}},
        )
        return EXIT_ERROR
    finally:
        if log_file is not None:
            log_file.close()
        persistence.save(counters=False)
        await pipeline.aclose()
        await monitor.aclose()
        store.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("recmon stopped")
    return EXIT_HEALTHY


def _request_stop(stop: asyncio.Event, sig: signal.Signals) -> None:
    log.info("stopping", extra={"fields": {"signal": sig.name}})
    stop.set()
