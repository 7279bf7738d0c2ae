"""Notifications from decision to delivery: outbox (in the state file), dispatcher, sinks,
Alertmanager re-sends and the heartbeat, assembled from the `notify` configuration."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from monitor.alerting.dispatch import Dispatcher
from monitor.alerting.heartbeat import Heartbeat
from monitor.alerting.sinks import build_sinks
from monitor.alerting.sinks.alertmanager import AlertmanagerSink
from monitor.config.model import NotifySpec
from monitor.core.clock import Clock
from monitor.core.notifications import Notification
from monitor.state.outbox import Outbox
from monitor.state.store import StateStore
from monitor.telemetry.metrics import Metrics

log = logging.getLogger("recmon.notify")


class NotificationPipeline:
    def __init__(
        self,
        spec: NotifySpec,
        store: StateStore,
        *,
        clock: Clock,
        metrics: Metrics,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.spec = spec
        self.clock = clock
        self.client = httpx.AsyncClient(transport=transport, follow_redirects=False)
        self.sinks = build_sinks(spec, self.client, clock)
        self.outbox = Outbox(store)
        self.dispatcher = Dispatcher(
            self.outbox, self.sinks, clock=clock, metrics=metrics, spec=spec.delivery
        )
        self.heartbeat = (
            Heartbeat(spec.heartbeat, self.client, clock, metrics) if spec.heartbeat else None
        )
        # Set by the assembler: the planner's state, saved with every notification it decides,
        # so a crash can neither lose a decided page nor decide it twice.
        self.planner_state: Callable[[], dict[str, Any]] | None = None

    def route(self, notifications: Sequence[Notification]) -> None:
        if not self.sinks:
            for n in notifications:
                log.warning(
                    f"page ({n.action.value}, no notify sink configured): {n.summary}",
                    extra={"fields": {"key": n.key, "severity": n.severity.value}},
                )
        self.dispatcher.enqueue(notifications, entries=self._planner_entry)

    def _planner_entry(self) -> dict[str, Any]:
        return {} if self.planner_state is None else {"planner": self.planner_state()}

    async def run(
        self,
        stop: asyncio.Event,
        *,
        firing: Callable[[], Sequence[Notification]],
        healthy: Callable[[], bool],
    ) -> None:
        tasks = [asyncio.create_task(self.dispatcher.run(stop), name="delivery")]
        tasks.append(
            asyncio.create_task(self.dispatcher.resend_firing(firing, stop), name="am-resend")
        )
        if self.heartbeat is not None:
            tasks.append(asyncio.create_task(self.heartbeat.run(stop, healthy), name="heartbeat"))
        await stop.wait()
        for task in tasks[1:]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def refresh_alertmanager_every(self, seconds: float) -> None:
        """Firing alerts are next re-posted in `seconds` (a CronJob's next run), so their
        endsAt must reach past that, or Alertmanager resolves them in between."""
        sink = self.sinks.get("alertmanager")
        if isinstance(sink, AlertmanagerSink):
            sink.refresh_every = max(sink.spec.resend_interval, seconds)

    async def refresh_firing(self, firing: Sequence[Notification]) -> None:
        await self.dispatcher.resend_once(firing)

    async def flush(self, within: float) -> int:
        left = await self.dispatcher.flush(within)
        if left:
            log.warning(
                "notifications not yet delivered stay in the outbox for the next attempt",
                extra={"fields": {"pending": left}},
            )
        return left

    async def aclose(self) -> None:
        await self.client.aclose()
