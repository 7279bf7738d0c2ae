"""Notifications from decision to delivery: outbox (in the state file), dispatcher, sinks,
Alertmanager re-sends and the heartbeat, assembled from the `notify` configuration."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import httpx

from monitor.alerting.codec import planner_to_json
from monitor.alerting.dispatch import Dispatcher, SinkHealth
from monitor.alerting.heartbeat import Heartbeat
from monitor.alerting.hub import Decision
from monitor.alerting.sinks import build_sinks
from monitor.config.model import NotifySpec
from monitor.core.clock import Clock
from monitor.core.notifications import Notification
from monitor.state.outbox import Outbox
from monitor.state.store import StateStore
from monitor.telemetry.metrics import Metrics

log = logging.getLogger("recmon.notify")

# The state file's entry for the planner's state (app.persist reads it at start).
PLANNER_ENTRY = "planner"


class _FirstRequestTransport(httpx.AsyncBaseTransport):
    """httpx's own transport (as AsyncClient makes it by default), made at the first request:
    making it loads the CA bundle and imports httpcore (~0.1 CPU-s), which a `recmon once`
    round that sends nothing need not pay."""

    def __init__(self) -> None:
        self._transport: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._transport is None:
            self._transport = httpx.AsyncHTTPTransport()
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()


class NotificationPipeline:
    def __init__(
        self,
        spec: NotifySpec,
        store: StateStore,
        *,
        clock: Clock,
        metrics: Metrics,
        transport: httpx.AsyncBaseTransport | None = None,
        refresh_every: float | None = None,
    ) -> None:
        """`refresh_every`: when firing alerts are next re-posted to Alertmanager, if later
        than its resend_interval (`recmon once`: the next run, so their endsAt reaches past
        it, or Alertmanager resolves them in between)."""
        self.spec = spec
        self.clock = clock
        self.client = httpx.AsyncClient(
            transport=transport or _FirstRequestTransport(), follow_redirects=False
        )
        sinks = build_sinks(spec, self.client, clock, refresh_every=refresh_every)
        self.sinks = sinks.by_name
        self.outbox = Outbox(store)
        self.dispatcher = Dispatcher(
            self.outbox,
            self.sinks,
            alertmanager=sinks.alertmanager,
            clock=clock,
            metrics=metrics,
            spec=spec.delivery,
        )
        self.heartbeat = (
            Heartbeat(spec.heartbeat, self.client, clock, metrics) if spec.heartbeat else None
        )

    def route(self, decision: Decision) -> None:
        """Store the notifications, and with them (one transaction) the planner's state that
        decided them: a crash can neither lose a decided page nor decide it twice. A state
        file that takes no writes does not raise here: the outbox holds both in memory and
        delivers from there (not crash-safe) until a write succeeds."""
        notifications = decision.notifications
        if not self.sinks:
            for n in notifications:
                log.warning(
                    f"page ({n.action.value}, no notify sink configured): {n.summary}",
                    extra={"fields": {"key": n.key, "severity": n.severity.value}},
                )
        if notifications:
            self.dispatcher.enqueue(
                notifications, entries={PLANNER_ENTRY: planner_to_json(decision.planner)}
            )

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

    def health(self) -> tuple[list[SinkHealth], int]:
        """(each sink's last delivery and backlog, the outbox depth over all sinks)."""
        return self.dispatcher.health(), self.outbox.pending()

    async def refresh_firing(self, firing: Sequence[Notification]) -> None:
        await self.dispatcher.resend_once(firing)

    async def flush(self, within: float) -> int:
        left = await self.dispatcher.flush(within)
        if self.outbox.holding:
            self.dispatcher.write_held()
        if self.outbox.holding:
            log.error(
                "the state file takes no writes: what is held in memory (undelivered pages, "
                "delivery results) is lost at exit",
                extra={"fields": {"reason": self.outbox.store.write_health().error}},
            )
        elif left:
            log.warning(
                "notifications not yet delivered stay in the outbox for the next attempt",
                extra={"fields": {"pending": left}},
            )
        return left

    async def aclose(self) -> None:
        await self.client.aclose()
