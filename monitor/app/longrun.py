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
import html
import json
import logging
import os
import signal
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from monitor import __version__
from monitor.alerting.pipeline import NotificationPipeline
from monitor.app.assembly import assemble, state_path
from monitor.app.badge import store_badge
from monitor.app.history import HistoryRecorder
from monitor.app.httpapi import MonitorApi
from monitor.app.ownership import open_for_shard
from monitor.app.persist import Persistence
from monitor.app.service import Monitor
from monitor.app.status.collect import StatusSource, snapshot
from monitor.app.status.history import DayBar, recent_incidents, tenant_bars
from monitor.app.status.model import ReloadRecord, Snapshot, iso
from monitor.config.loader import ConfigError, LoadedConfig, dotted, load_config_file
from monitor.config.webconfig import ALL_INTERFACES, WebConfig, on_every_interface
from monitor.core.clock import SystemClock
from monitor.core.secrets import Redactor
from monitor.core.tenancy import Shard
from monitor.telemetry.asgiserve import listen, serve_asgi
from monitor.telemetry.polltime import TimedSelector
from monitor.telemetry.resultslog import ResultsLog
from monitor.telemetry.webauth import BasicAuth, CertificateReload, server_context

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


def status_page_url(host: str, port: int, scheme: str = "http") -> str:
    """Where a person on this machine opens the page (a wildcard address is not a place)."""
    if host in ALL_INTERFACES:
        host = "localhost"
    return f"{scheme}://[{host}]:{port}/" if ":" in host else f"{scheme}://{host}:{port}/"


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
        web: WebConfig | None = None,
        polls: TimedSelector | None = None,
    ) -> None:
        """`web`: TLS and basic authentication for what is served (the web configuration
        file, read by the caller). `polls`: the selector of the loop it will run on, when
        that one times its polls (every generation's probes read by it)."""
        self.loaded = loaded
        self.polls = polls
        self.shard = shard
        self.listen = listen or loaded.config.metrics.listen
        self.web = web
        self.redactor = redactor or Redactor(loaded.secrets)
        self.results_log = ResultsLog(results_log) if results_log else None
        self.stop = asyncio.Event()
        self.reload_requested = asyncio.Event()
        self.store = open_for_shard(state_path(loaded), shard)
        self.current: Generation | None = None
        self._running: asyncio.Task[None] | None = None
        self.started_at = SystemClock().time()
        # The last configuration load or reload attempt: /status, /readyz and the metric.
        self.reload = ReloadRecord(self.started_at, True, loaded.source)
        # Some generation had its tenant list: a reloaded one fetching its own stays ready
        # (an unready pod drops out of endpoint-discovered scrapes at every reload).
        self._had_tenants = False
        # The page and /status are HTML and JSON: a secret is also scrubbed in its escaped
        # forms, which the plain redactor would not recognise.
        self.page_redactor = Redactor(_escaped_forms(loaded.secrets))

    # --- generations --------------------------------------------------------------------------

    def _build(self, loaded: LoadedConfig, *, counters: bool) -> Generation:
        history = HistoryRecorder(SystemClock(), loaded.config.alerts.maintenance)
        monitor, pipeline = assemble(
            loaded,
            self.store,
            clock=SystemClock(),
            shard=self.shard,
            redactor=self.redactor,
            result_listeners=[self.results_log.write] if self.results_log is not None else [],
            history=history,
            polls=self.polls,
        )
        persistence = Persistence(
            self.store, monitor.hub, monitor.metrics, monitor.tenant_source, history
        )
        persistence.restore(counters=counters)
        return Generation(loaded, monitor, pipeline, persistence, asyncio.Event())

    async def _start(self, generation: Generation) -> None:
        metrics = generation.monitor.metrics
        metrics.config_reload_success.set(1 if self.reload.ok else 0)
        metrics.config_reload_timestamp.set(self.reload.at)
        self._running = asyncio.create_task(generation.run(), name="generation")
        self.current = generation

    async def _retire(self, generation: Generation, *, counters: bool) -> None:
        """Stop the running generation: in-flight probes finish (or hit their deadline), the
        outbox is flushed, state is saved."""
        self._had_tenants = self._had_tenants or generation.monitor.ready.is_set()
        generation.stop.set()
        if self._running is not None:
            await self._running
            self._running = None
        try:
            generation.persistence.save(counters=counters)
        except sqlite3.Error as exc:  # the state file takes no writes: say so, stop anyway
            log.error("saving state failed", extra={"fields": {"error": str(exc)}})
        await generation.pipeline.aclose()
        await generation.monitor.aclose()

    # --- reloads ------------------------------------------------------------------------------

    def _reloaded(self, ok: bool, problems: tuple[tuple[str, int | None, str], ...] = ()) -> None:
        self.reload = ReloadRecord(SystemClock().time(), ok, self.loaded.source, problems)
        if self.current is not None:
            metrics = self.current.monitor.metrics
            metrics.config_reload_success.set(1 if ok else 0)
            metrics.config_reload_timestamp.set(self.reload.at)

    def _try_reload(self) -> LoadedConfig | None:
        try:
            loaded = load_config_file(self.loaded.source)
        except ConfigError as exc:
            self._reloaded(
                False,
                tuple(
                    (dotted(p.path), p.line, self.redactor.redact(p.message)) for p in exc.problems
                ),
            )
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
        self.page_redactor.add(_escaped_forms(loaded.secrets))
        for key, old, new in (
            ("metrics.listen", self.loaded.config.metrics.listen, loaded.config.metrics.listen),
            (
                "metrics.web_config_file",
                self.loaded.config.metrics.web_config_file,
                loaded.config.metrics.web_config_file,
            ),
            ("state.path", self.loaded.config.state.path, loaded.config.state.path),
        ):
            if old != new:
                log.warning(
                    f"{key} changed: it takes effect at the next restart",
                    extra={"fields": {"key": key}},
                )
        return loaded

    async def _watch_file(self) -> None:
        """Reload when the file changes (a ConfigMap update, an edit), or one of the `*_file`
        secrets it reads does (a rotated Secret)."""
        path = Path(self.loaded.source)

        def stamp(file: Path) -> tuple[int, float, int] | None:
            try:
                info = file.stat()
            except OSError:
                return None
            return info.st_ino, info.st_mtime, info.st_size

        def secrets() -> dict[str, tuple[int, float, int] | None]:
            # The files of the configuration running now: a reload may name others.
            return {name: stamp(Path(name)) for name in sorted(self.loaded.secret_files)}

        seen, seen_secrets = stamp(path), secrets()
        while not self.stop.is_set():
            await asyncio.sleep(WATCH_EVERY_S)
            now, now_secrets = stamp(path), secrets()
            if now is not None and now != seen:
                seen = now
                log.info("configuration file changed", extra={"fields": {"path": str(path)}})
                self.reload_requested.set()
            if now_secrets != seen_secrets:
                changed = [k for k, v in now_secrets.items() if seen_secrets.get(k) != v]
                seen_secrets = now_secrets
                if changed:
                    log.info("secret file changed", extra={"fields": {"paths": changed}})
                    self.reload_requested.set()

    # --- the mode -----------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        assert self.current is not None
        generation = self.current
        source = StatusSource(
            monitor=generation.monitor,
            pipeline=generation.pipeline,
            persistence=generation.persistence,
            state_path=self.store.path,
            started_at=self.started_at,
            config_source=self.loaded.source,
        )
        return snapshot(source, self.reload)

    def badge(self, tenant: str, check: str) -> str | None:
        """The SVG badge of a tenant × check's last 30 days (None: no history for it)."""
        return store_badge(self.store, tenant, check, SystemClock().time())

    def history_bars(self, tenant: str) -> dict[str, list[DayBar]]:
        """The tenant page's 90 daily bars per check, from the state file's history."""
        checks = list(self.current.monitor.checks) if self.current is not None else []
        return tenant_bars(self.store, tenant, checks, SystemClock().time())

    def readiness(self) -> tuple[bool, str]:
        """Ready once the tenants are known, and from then on: a reload keeps it ready while
        the new configuration fetches its tenant list (the body says so). A failed reload
        leaves it ready (the last good configuration runs) and says so in the body, as does a
        state file that takes no writes."""
        fetched = self.current is not None and self.current.monitor.ready.is_set()
        ready = fetched or self._had_tenants
        if fetched:
            lines = ["ready"]
        elif ready:
            lines = ["ready: the reloaded configuration is fetching its tenant list"]
        else:
            lines = ["not ready: no tenant list yet"]
        unwritable = self.current.monitor.hub.storage_alert() if self.current else None
        if unwritable is not None:
            # Still ready: probing and paging go on (from memory); a restart would not help.
            lines.append(
                f"{unwritable.summary} (since {iso(unwritable.since)}): pages are sent from "
                "memory, not crash-safe"
            )
        if not self.reload.ok:
            lines.append(
                f"configuration reload failed at {iso(self.reload.at)}; "
                "running the last good configuration:"
            )
            lines += [
                f"  {key or '(file)'}" + (f" (line {line})" if line else "") + f": {message}"
                for key, line, message in self.reload.problems
            ]
        return ready, "\n".join(lines) + "\n"

    async def run(self) -> int:
        host, port = _split_listen(self.listen)
        try:
            tls = server_context(self.web) if self.web is not None and self.web.tls else None
        except ValueError as exc:
            log.error(f"web configuration {self.web.source if self.web else ''}: {exc}")
            self.store.close()
            return 2
        try:
            # The port first: a busy one is one line and exit 2, before anything has started.
            listener = listen(host, port)
        except OSError as exc:
            log.error(exc.strerror or str(exc))
            self.store.close()
            return 2
        unprotected = self.web is None or not (self.web.tls or self.web.users)
        if on_every_interface(self.listen) and unprotected:
            log.warning(
                "the status page, /status and /metrics are served on every interface without "
                "TLS or authentication: anyone who reaches this port reads tenant names and "
                "failure reasons (set metrics.web_config_file, or listen on 127.0.0.1)",
                extra={"fields": {"listen": self.listen}},
            )
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
            readiness=self.readiness,
            snapshot=self.snapshot,
            redact=lambda text: self.page_redactor.redact(self.redactor.redact(text)),
            badge=self.badge,
            history_bars=self.history_bars,
            past_incidents=lambda: recent_incidents(self.store, SystemClock().time()),
        )
        app = api if self.web is None or not self.web.users else BasicAuth(api, self.web.users)
        if self.web is not None:
            log.info(
                f"web configuration {self.web.source}: {self.web.describe()}; /healthz and "
                "/readyz stay open for probes"
            )
        try:
            async with serve_asgi(app, host, port, sock=listener, ssl_context=tls) as served:
                page = status_page_url(served.host, served.port, served.scheme)
                log.info(
                    f"recmon running: status page at {page}",
                    extra={
                        "fields": {
                            "version": __version__,
                            "status_page": page,
                            "metrics": f"{served.url}/metrics",
                            "shard": str(self.shard),
                            "pid": os.getpid(),
                        }
                    },
                )
                watcher = asyncio.create_task(self._watch_file(), name="config-watch")
                certificates = None
                if tls is not None and self.web is not None:
                    reload = CertificateReload(self.web, tls)
                    certificates = asyncio.create_task(reload.run(self.stop), name="tls-reload")
                await self._supervise()
                for task in (watcher, certificates):
                    if task is not None:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
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
            except Exception as exc:
                # Valid on paper, yet it cannot be built (a file vanished since validation):
                # the last good configuration runs on rather than nothing at all.
                log.exception("configuration reload failed: keeping the last good configuration")
                self._reloaded(False, (("", None, self.redactor.redact(str(exc))),))
                generation = self._build(self.loaded, counters=True)
            else:
                self.loaded = loaded
                self._reloaded(True)
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


def _escaped_forms(secrets: frozenset[str]) -> list[str]:
    """A secret as HTML and JSON would carry it (its plain form is the redactor's already)."""
    forms = []
    for secret in secrets:
        for form in (html.escape(secret), json.dumps(secret)[1:-1]):
            if form != secret:
                forms.append(form)
    return forms
