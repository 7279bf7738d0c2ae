"""`recmon run`: the long-running mode, with configuration reloads.

One generation at a time — a Monitor, its notification pipeline and its persistence. SIGHUP,
or a change to the configuration file, asks for a reload: the new file is validated first,
and only a valid one replaces the running generation, which hands its state (windows,
baselines, alerts, counters) over through the state file. An invalid file leaves the last
good configuration running and says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from monitor import __version__
from monitor.alerting.pipeline import NotificationPipeline
from monitor.app.httpapi import MonitorApi
from monitor.app.ownership import open_for_shard
from monitor.app.persist import Persistence
from monitor.app.service import Monitor, metrics_for
from monitor.config.loader import ConfigError, LoadedConfig, load_config_file
from monitor.core.clock import Clock, SystemClock
from monitor.core.secrets import Redactor
from monitor.core.tenancy import Shard
from monitor.state.store import StateStore
from monitor.telemetry.asgiserve import listen, serve_asgi
from monitor.telemetry.resultslog import ResultsLog

log = logging.getLogger("recmon")

SHUTDOWN_FLUSH_S = 10.0
WATCH_EVERY_S = 2.0


@dataclass(frozen=True)
class Generation:
    loaded: LoadedConfig
    monitor: Monitor
    pipeline: NotificationPipeline
    persistence: Persistence
    stop: asyncio.Event

    async def run(self) -> None:
        """Probe, save now and then, deliver; until `stop`, then flush the outbox."""
        monitor, stop = self.monitor, self.stop
        saver = asyncio.create_task(self.persistence.run(stop), name="state")
        notifier = asyncio.create_task(
            self.pipeline.run(stop, firing=monitor.hub.active_triggers, healthy=monitor.healthy),
            name="notify",
        )
        await monitor.run(stop)
        await saver
        await notifier
        await self.pipeline.flush(SHUTDOWN_FLUSH_S)


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
) -> tuple[Monitor, NotificationPipeline]:
    """A monitor whose decided notifications go to a notification pipeline on `store`."""
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
        route=pipeline.route,
        shard=shard,
        base_dir=base_dir(loaded),
    )
    return monitor, pipeline


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


class LongRunning:
    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        shard: Shard,
        listen: str | None,
        results_log: str | None,
        redactor: Redactor | None = None,
    ) -> None:
        self.loaded = loaded
        self.shard = shard
        self.listen = listen or loaded.config.metrics.listen
        self.redactor = redactor or Redactor(loaded.secrets)
        self.results_log = ResultsLog(results_log) if results_log else None
        self.stop = asyncio.Event()
        self.reload_requested = asyncio.Event()
        self.store = open_for_shard(state_path(loaded), shard)
        self.current: Generation | None = None
        self._running: asyncio.Task[None] | None = None

    # --- generations --------------------------------------------------------------------------

    def _build(self, loaded: LoadedConfig, *, counters: bool) -> Generation:
        monitor, pipeline = assemble(loaded, self.store, clock=SystemClock(), shard=self.shard)
        persistence = Persistence(self.store, monitor.hub, monitor.metrics, monitor.tenant_source)
        persistence.restore(counters=counters)
        if self.results_log is not None:
            monitor.result_listeners.append(self.results_log.write)
        return Generation(loaded, monitor, pipeline, persistence, asyncio.Event())

    async def _start(self, generation: Generation) -> None:
        self._running = asyncio.create_task(generation.run(), name="generation")
        self.current = generation

    async def _retire(self, generation: Generation, *, counters: bool) -> None:
        """Stop the running generation: in-flight probes finish (or hit their deadline), the
        outbox is flushed, state is saved."""
        generation.stop.set()
        if self._running is not None:
            await self._running
            self._running = None
        generation.persistence.save(counters=counters)
        await generation.pipeline.aclose()
        await generation.monitor.aclose()

    # --- reloads ------------------------------------------------------------------------------

    def _try_reload(self) -> LoadedConfig | None:
        try:
            loaded = load_config_file(self.loaded.source)
        except ConfigError as exc:
            log.error(
                "configuration reload failed: keeping the last good configuration",
                extra={
                    "fields": {
                        "problems": [
                            self.redactor.redact(p.format(exc.source)) for p in exc.problems
                        ]
                    }
                },
            )
            return None
        self.redactor.add(loaded.secrets)
        for key, old, new in (
            ("metrics.listen", self.loaded.config.metrics.listen, loaded.config.metrics.listen),
            ("state.path", self.loaded.config.state.path, loaded.config.state.path),
        ):
            if old != new:
                log.warning(
                    f"{key} changed: it takes effect at the next restart",
                    extra={"fields": {"key": key}},
                )
        return loaded

    async def _watch_file(self) -> None:
        """Reload when the file changes (a ConfigMap update, an edit)."""
        path = Path(self.loaded.source)

        def stamp() -> tuple[float, int] | None:
            try:
                info = path.stat()
            except OSError:
                return None
            return info.st_mtime, info.st_size

        seen = stamp()
        while not self.stop.is_set():
            await asyncio.sleep(WATCH_EVERY_S)
            now = stamp()
            if now is not None and now != seen:
                seen = now
                log.info("configuration file changed", extra={"fields": {"path": str(path)}})
                self.reload_requested.set()

    # --- the mode -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        assert self.current is not None
        monitor = self.current.monitor
        failing = sorted({t for (t, _), r in monitor.latest.items() if not r.ok})
        return {
            "version": __version__,
            "shard": str(self.shard),
            "config": self.loaded.source,
            "tenants": len(monitor.tenants),
            "checks": list(monitor.checks),
            "probes_running": monitor.scheduler.running,
            "failing_tenants": len(failing),
            "failing_sample": failing[:100],
            "alerts_firing": monitor.hub.firing,
            "event_loop_lag_seconds": monitor.loop_lag.recent_max,
            "tenant_source_error": monitor.tenant_source.last_error,
        }

    async def run(self) -> int:
        host, port = _split_listen(self.listen)
        try:
            # The port first: a busy one is one line and exit 2, before anything has started.
            listener = listen(host, port)
        except OSError as exc:
            log.error(exc.strerror or str(exc))
            self.store.close()
            return 2
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload)
        generation = self._build(self.loaded, counters=False)
        await self._start(generation)
        api = MonitorApi(
            render_metrics=self._render_metrics,
            is_alive=lambda: (
                self.current is not None and self.current.monitor.loop_lag.recent_max < 10.0
            ),
            is_ready=lambda: self.current is not None and self.current.monitor.ready.is_set(),
            status=self.status,
        )
        try:
            async with serve_asgi(api, host, port, sock=listener) as served:
                log.info(
                    "recmon running",
                    extra={
                        "fields": {
                            "version": __version__,
                            "metrics": f"{served.url}/metrics",
                            "shard": str(self.shard),
                            "pid": os.getpid(),
                        }
                    },
                )
                watcher = asyncio.create_task(self._watch_file(), name="config-watch")
                await self._supervise()
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        finally:
            listener.close()
            if self.results_log is not None:
                self.results_log.close()
            self.store.close()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        log.info("recmon stopped")
        return 0

    async def _supervise(self) -> None:
        while True:
            stop = asyncio.ensure_future(self.stop.wait())
            reload = asyncio.ensure_future(self.reload_requested.wait())
            await asyncio.wait({stop, reload}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            reload.cancel()
            assert self.current is not None
            if self.stop.is_set():
                await self._retire(self.current, counters=False)
                return
            self.reload_requested.clear()
            loaded = self._try_reload()
            if loaded is None:
                continue
            await self._retire(self.current, counters=True)
            try:
                generation = self._build(loaded, counters=True)
            except Exception:
                # Valid on paper, yet it cannot be built (a file vanished since validation):
                # the last good configuration runs on rather than nothing at all.
                log.exception("configuration reload failed: keeping the last good configuration")
                generation = self._build(self.loaded, counters=True)
            else:
                self.loaded = loaded
                log.info(
                    "configuration reloaded",
                    extra={"fields": {"checks": list(generation.monitor.checks)}},
                )
            await self._start(generation)

    def _render_metrics(self) -> bytes:
        """The running generation's metrics (a reload starts a new registry)."""
        assert self.current is not None
        return self.current.monitor.metrics.render()

    def _on_stop(self, sig: signal.Signals) -> None:
        log.info("stopping", extra={"fields": {"signal": sig.name}})
        self.stop.set()

    def _on_reload(self) -> None:
        log.info("reload requested", extra={"fields": {"signal": "SIGHUP"}})
        self.reload_requested.set()
