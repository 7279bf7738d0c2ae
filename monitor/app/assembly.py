"""Putting a monitor together: where its files are, and the order its parts are built in
(metrics, then the notification pipeline that counts deliveries in them, then the monitor
whose alert hub routes to that pipeline)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.alerting.pipeline import NotificationPipeline
from monitor.app.history import HistoryRecorder
from monitor.app.service import Monitor, metrics_for
from monitor.config.loader import LoadedConfig
from monitor.core.clock import Clock
from monitor.core.results import ProbeResult
from monitor.core.secrets import Redactor
from monitor.core.tenancy import Shard
from monitor.state.store import StateStore


def base_dir(loaded: LoadedConfig) -> Path:
    """Relative paths in a configuration file are relative to that file."""
    if loaded.source and not loaded.source.startswith("<"):
        return Path(loaded.source).resolve().parent
    return Path.cwd()


def state_path(loaded: LoadedConfig) -> Path:
    # Absolute already when loaded from a file (see config.loader).
    return base_dir(loaded) / loaded.config.state.path


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
    monitor = Monitor(
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
