"""Loading and saving the monitor's memory through the StateStore."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from monitor.alerting.codec import planner_from_json, planner_to_json
from monitor.alerting.hub import AlertHub, AlertMemory
from monitor.alerting.planner import PlannerState
from monitor.detect.codec import series_from_json, series_to_json
from monitor.probing.tenants import TenantSource
from monitor.state.store import StateStore
from monitor.telemetry.metrics import Metrics
from monitor.tls.codec import tls_hosts_from_json, tls_hosts_to_json
from monitor.tls.rules import HostState

log = logging.getLogger("recmon.state")

SAVE_EVERY_S = 60.0


class Persistence:
    def __init__(
        self, store: StateStore, hub: AlertHub, metrics: Metrics, tenants: TenantSource
    ) -> None:
        self.store = store
        self.hub = hub
        self.metrics = metrics
        self.tenants = tenants
        # Wall time of the last good save and the last failure's text, for /status.
        self.saved_at: float | None = None
        self.last_error: str | None = None

    def restore(self, *, counters: bool) -> None:
        """Windows, baselines, alert and planner states, the last good tenant list and — for a
        CronJob run, whose process starts from zero each time — the counters."""
        series = self.store.load_series(series_from_json)
        planner = PlannerState()
        saved_planner = self.store.get("planner")
        if saved_planner is not None:
            try:
                planner = planner_from_json(saved_planner)
            except ValueError as exc:
                log.warning(
                    "planner state unreadable, starting it clean",
                    extra={"fields": {"error": str(exc)}},
                )
        tls_hosts: dict[str, HostState] = {}
        tls = self.store.get("tls")
        if isinstance(tls, dict):
            try:
                tls_hosts = tls_hosts_from_json(tls)
            except ValueError as exc:
                log.warning(
                    "certificate state unreadable, starting it clean",
                    extra={"fields": {"error": str(exc)}},
                )
        tenants = self.store.get("tenants")
        if isinstance(tenants, list) and all(isinstance(t, str) for t in tenants):
            self.tenants.seed(tenants)
        adopted = self.hub.restore(AlertMemory(series, planner, tls_hosts))
        if adopted:
            log.warning(
                "paged alerts missing from the saved detector state (recmon stopped without "
                "saving): kept firing, so they resolve when their series recover",
                extra={"fields": {"alerts": adopted}},
            )
        if counters:
            snapshot = self.store.get("counters")
            if isinstance(snapshot, dict):
                self.metrics.restore_counters(snapshot)
        log.info(
            "state restored",
            extra={
                "fields": {
                    "path": self.store.path,
                    "series": len(self.hub.memory().series),
                    "firing": self.hub.firing,
                }
            },
        )

    def save(self, *, counters: bool) -> None:
        memory = self.hub.memory()
        self.store.save_series(memory.series, series_to_json)
        self.store.put("planner", planner_to_json(memory.planner))
        self.store.put("tls", tls_hosts_to_json(memory.tls_hosts))
        if self.tenants.current:
            self.store.put("tenants", list(self.tenants.current))
        if counters:
            self.store.put("counters", self.metrics.counter_snapshot())

    async def save_async(self) -> None:
        # The memory is a consistent snapshot (immutable states, copied mappings): the series'
        # encoding and the writing happen off the event loop.
        memory = self.hub.memory()
        planner = planner_to_json(memory.planner)
        tls = tls_hosts_to_json(memory.tls_hosts)
        tenants = list(self.tenants.current)

        def write() -> None:
            self.store.save_series(memory.series, series_to_json)
            self.store.put("planner", planner)
            self.store.put("tls", tls)
            if tenants:
                self.store.put("tenants", tenants)

        await asyncio.to_thread(write)

    async def run(self, stop: asyncio.Event, every: float = SAVE_EVERY_S) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
            try:
                await self.save_async()
            except Exception as exc:
                self.metrics.internal_errors.labels("state").inc()
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("saving state failed")
            else:
                self.saved_at = self.hub.clock.time()
                self.last_error = None
