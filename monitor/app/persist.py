"""Loading and saving the monitor's memory through the StateStore."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from monitor.alerting.codec import planner_from_json, planner_to_json
from monitor.alerting.hub import AlertHub
from monitor.detect.codec import series_from_json, series_to_json
from monitor.probing.tenants import TenantSource
from monitor.state.store import StateStore
from monitor.telemetry.metrics import Metrics
from monitor.tls.codec import tls_hosts_from_json, tls_hosts_to_json

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

    def restore(self, *, counters: bool) -> None:
        """Windows, baselines, alert and planner states, the last good tenant list and — for a
        CronJob run, whose process starts from zero each time — the counters."""
        tracker = self.hub.tracker
        tracker.series.update(self.store.load_series(series_from_json))
        planner = self.store.get("planner")
        if planner is not None:
            try:
                tracker.planner = planner_from_json(planner)
            except ValueError as exc:
                log.warning(
                    "planner state unreadable, starting it clean",
                    extra={"fields": {"error": str(exc)}},
                )
        tls = self.store.get("tls")
        if isinstance(tls, dict):
            try:
                tracker.tls_hosts.update(tls_hosts_from_json(tls))
            except ValueError as exc:
                log.warning(
                    "certificate state unreadable, starting it clean",
                    extra={"fields": {"error": str(exc)}},
                )
        tenants = self.store.get("tenants")
        if isinstance(tenants, list) and all(isinstance(t, str) for t in tenants):
            self.tenants.seed(tenants)
        adopted = tracker.adopt_paged_alerts()
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
        self.hub.restore_gauges()
        log.info(
            "state restored",
            extra={
                "fields": {
                    "path": self.store.path,
                    "series": len(tracker.series),
                    "firing": self.hub.firing,
                }
            },
        )

    def save(self, *, counters: bool) -> None:
        self.store.save_series(dict(self.hub.tracker.series), series_to_json)
        self.store.put("planner", planner_to_json(self.hub.tracker.planner))
        self.store.put("tls", tls_hosts_to_json(self.hub.tracker.tls_hosts))
        if self.tenants.current:
            self.store.put("tenants", list(self.tenants.current))
        if counters:
            self.store.put("counters", self.metrics.counter_snapshot())

    async def save_async(self) -> None:
        # Series states are immutable: a dict copy taken here is a consistent snapshot, and
        # the encoding and writing can happen off the event loop.
        series = dict(self.hub.tracker.series)
        planner = planner_to_json(self.hub.tracker.planner)
        tls = tls_hosts_to_json(self.hub.tracker.tls_hosts)
        tenants = list(self.tenants.current)

        def write() -> None:
            self.store.save_series(series, series_to_json)
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
            except Exception:
                self.metrics.internal_errors.labels("state").inc()
                log.exception("saving state failed")
