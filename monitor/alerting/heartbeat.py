"""A dead man's switch: recmon pings an external URL while it works, so a dead or stuck
monitor is noticed by something that is not recmon."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx

from monitor.alerting.sinks.base import classify, classify_error
from monitor.config.model import HeartbeatSpec
from monitor.core.clock import Clock
from monitor.core.notifications import Delivery, DeliveryResult
from monitor.telemetry.metrics import Metrics

log = logging.getLogger("recmon.heartbeat")


class Heartbeat:
    def __init__(
        self, spec: HeartbeatSpec, client: httpx.AsyncClient, clock: Clock, metrics: Metrics
    ) -> None:
        self.spec = spec
        self.client = client
        self.clock = clock
        self.metrics = metrics

    async def ping(self) -> DeliveryResult:
        try:
            response = await self.client.get(self.spec.url, timeout=self.spec.timeout)
        except httpx.HTTPError as exc:
            result = classify_error(exc)
        else:
            result = classify(response, self.clock.time())
        self.metrics.notifications.labels("heartbeat", result.outcome.value).inc()
        if result.outcome is not Delivery.DELIVERED:
            log.warning("heartbeat ping failed", extra={"fields": {"reason": result.detail}})
        return result

    async def run(self, stop: asyncio.Event, healthy: Callable[[], bool]) -> None:
        """Ping every interval while `healthy()` says recmon is doing its job; silence is the
        signal when it is not."""
        while not stop.is_set():
            if healthy():
                await self.ping()
            else:
                log.warning("heartbeat withheld: recmon is not probing on schedule")
            await self.clock.sleep(self.spec.interval)
