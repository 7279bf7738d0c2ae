"""Putting a monitor together: where its files are, and the order its parts are built in
(metrics, then the notification pipeline that counts deliveries in them, then the monitor
whose alert hub routes to that pipeline)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.alerting.hub import Route
from monitor.alerting.pipeline import NotificationPipeline
from monitor.app.history import HistoryRecorder
from monitor.app.service import Monitor, metrics_for
from monitor.config.loader import LoadedConfig
from monitor.core.clock import Clock
from monitor.core.results import ProbeResult
from monitor.core.secrets import Redactor
from monitor.core.tenancy import Shard
from monitor.probing.httpclient import ClientFactory
from monitor.state.store import StateStore, WriteHealth
from monitor.telemetry.metrics import Metrics


def base_dir(loaded: LoadedConfig) -> Path:
    """Relative paths in a configuration file are relative to that file."""
    if loaded.source and not loaded.source.startswith("<"):
        return Path(loaded.source).resolve().parent
    return Path.cwd()


def state_path(loaded: LoadedConfig) -> Path:
    # Absolute already when loaded from a file (see config.loader).
    return base_dir(loaded) / loaded.config.state.path


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
) -> Monitor:
    """A monitor and its parts (see Monitor for the arguments). The one function callers
    build a monitor with, so the parts can move out of Monitor's constructor."""
    return Monitor(
        loaded,
        clock=clock,
        registry=registry,
        client_factory=client_factory,
        shard=shard,
        base_dir=base_dir,
        route=route,
        metrics=metrics,
        redactor=redactor,
        result_listeners=result_listeners,
        storage=storage,
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
) -> tuple[Monitor, NotificationPipeline]:
    """A monitor whose decided notifications go to a notification pipeline on `store`
    (and, with `history`, whose results and notifications are recorded there too)."""
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
    )
    return monitor, pipeline
