"""Putting a monitor together: where its files are, and the order its parts are built in
(metrics, then the notification pipeline that counts deliveries in them, then the monitor
whose alert hub routes to that pipeline). `build_monitor` builds the monitor's own parts,
each from the ones it needs: nothing is assigned into a part after it is built."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.alerting.hub import AlertHub, Decision, Route
from monitor.alerting.pipeline import NotificationPipeline
from monitor.app.history import HistoryRecorder
from monitor.app.ledger import ProbeLedger
from monitor.app.loadwatch import LoadWatch
from monitor.app.service import Monitor, metrics_for
from monitor.config.loader import LoadedConfig
from monitor.core.clock import Clock
from monitor.core.results import ProbeResult
from monitor.core.secrets import Redactor
from monitor.core.tenancy import Shard
from monitor.probing.engine import Engine
from monitor.probing.httpclient import ClientFactory
from monitor.probing.parts import build_probing
from monitor.probing.scheduler import Scheduler
from monitor.state.store import StateStore, WriteHealth
from monitor.telemetry.looplag import LoopLagMonitor
from monitor.telemetry.metrics import Metrics
from monitor.telemetry.polltime import TimedSelector
from monitor.tls.watch import TlsWatch

# The service's logger, as when the monitor built its own parts (log pipelines match it).
log = logging.getLogger("recmon.service")


def base_dir(loaded: LoadedConfig) -> Path:
    """Relative paths in a configuration file are relative to that file."""
    if loaded.source and not loaded.source.startswith("<"):
        return Path(loaded.source).resolve().parent
    return Path.cwd()


def state_path(loaded: LoadedConfig) -> Path:
    # Absolute already when loaded from a file (see config.loader).
    return base_dir(loaded) / loaded.config.state.path


def _log_only(decision: Decision) -> None:
    """Without a notifier configured, notifications end in the log."""
    for notification in decision.notifications:
        log.warning(
            f"page ({notification.action.value}): {notification.summary}",
            extra={"fields": {"key": notification.key, "severity": notification.severity.value}},
        )


def build_monitor(
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
    polls: TimedSelector | None = None,
) -> Monitor:
    """A monitor and its parts, each built from those it needs: the probing parts, the alert
    hub, the ledger the engine reports to, the engine, the scheduler that runs its jobs, the
    TLS watch and the load watch. `route`: where decided notifications go (the notification
    pipeline; without one, the log). `metrics`: built on `registry` unless given (assemble
    builds them first when the pipeline, which counts deliveries, needs them too).
    `result_listeners`: also called with every result (the results log). `storage`: how the
    state file takes writes (recmon's own state_unwritable alert). `client_factory`: builds
    the targets' clients (tests). `polls`: the selector of the loop the monitor runs on, when
    it times its polls (cli builds that loop): answers are then trusted by when they were
    read (monitor.telemetry.polltime), not by when their probes were judged."""
    config = loaded.config
    metrics = metrics or metrics_for(config, registry)
    # Secrets read while running (tenant credentials, tokens) join the ones loaded.
    redactor = redactor or Redactor(loaded.secrets)
    probing = build_probing(
        config,
        clock=clock,
        metrics=metrics,
        on_secret=redactor.add,
        shard=shard,
        base_dir=base_dir,
        client_factory=client_factory,
        polls=polls,
    )
    checks = probing.checks
    hub = AlertHub(
        config.alerts,
        checks,
        metrics=metrics,
        clock=clock,
        route=route or _log_only,
        tls=config.tls,
        location=config.location or "",
        tenant_pages=config.notify.tenant_pages == "direct",
        shard=shard,
        storage=storage,
    )
    loop_lag = LoopLagMonitor(clock)
    ledger = ProbeLedger(
        checks,
        clock=clock,
        metrics=metrics,
        hub=hub,
        redactor=redactor,
        late=config.alerts.overload.late,
        result_listeners=result_listeners,
    )
    engine = Engine(
        checks,
        probing.clients,
        clock=clock,
        metrics=metrics,
        sink=ledger.observe,
        tenant_vars=probing.tenant_vars,
        throttles=probing.throttles,
        max_in_flight=config.engine.max_in_flight,
        target_connections={n: t.max_connections for n, t in config.targets.items()},
        latency_guard=loop_lag.trusted,
        deadline_guard=loop_lag.deadline_trusted,
        withheld_sink=ledger.withheld,
        lag_sink=ledger.started,
        flight_sink=loop_lag.flight,
        skip_sink=ledger.not_probed,
        credential_names=config.tenant_credential_names,
        token_sources=probing.token_sources,
    )
    scheduler = Scheduler(
        engine.run_job,
        lambda job: checks[job.check].interval,
        clock=clock,
        on_overrun=ledger.overrun,
    )
    tls = TlsWatch(
        config.tls,
        config.targets,
        clock=clock,
        metrics=metrics,
        emit=hub.observe_tls,
        emit_client=hub.observe_client_certificate,
    )
    load_watch = LoadWatch(
        ledger.tally,
        {root: checks[root].interval for root in engine.roots},
        rule=config.alerts.overload,
        loop_lag=loop_lag,
        emit=hub.observe_load,
        clock=clock,
        metrics=metrics,
    )
    return Monitor(
        config,
        clock=clock,
        registry=registry,
        metrics=metrics,
        shard=shard,
        probing=probing,
        loop_lag=loop_lag,
        ledger=ledger,
        engine=engine,
        scheduler=scheduler,
        hub=hub,
        tls=tls,
        load_watch=load_watch,
    )


def assemble(
    loaded: LoadedConfig,
    store: StateStore,
    *,
    clock: Clock,
    shard: Shard,
    refresh_every: float | None = None,
    redactor: Redactor | None = None,
    result_listeners: Sequence[Callable[[ProbeResult], None]] = (),
    history: HistoryRecorder | None = None,
    polls: TimedSelector | None = None,
) -> tuple[Monitor, NotificationPipeline]:
    """A monitor whose decided notifications go to a notification pipeline on `store`
    (and, with `history`, whose results and notifications are recorded there too). `polls`:
    build_monitor's."""
    registry = CollectorRegistry()
    metrics = metrics_for(loaded.config, registry)
    pipeline = NotificationPipeline(
        loaded.config.notify, store, clock=clock, metrics=metrics, refresh_every=refresh_every
    )
    monitor = build_monitor(
        loaded,
        clock=clock,
        registry=registry,
        metrics=metrics,
        route=pipeline.route if history is None else history.routed(pipeline.route),
        shard=shard,
        base_dir=base_dir(loaded),
        redactor=redactor,
        result_listeners=[*result_listeners, *([history.observe] if history else [])],
        storage=store.write_health,
        polls=polls,
    )
    return monitor, pipeline
