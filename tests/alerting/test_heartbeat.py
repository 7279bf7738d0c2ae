"""The dead man's switch in virtual time: pinged every interval while recmon probes on
schedule, silent while it does not, so the external watcher notices."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client import CollectorRegistry

from monitor.alerting.heartbeat import Heartbeat
from monitor.config.model import HeartbeatSpec
from monitor.core.clock import ManualClock
from monitor.telemetry.metrics import Metrics


async def test_pings_every_interval_while_healthy_and_falls_silent_when_not() -> None:
    clock = ManualClock()
    pinged: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        pinged.append(clock.monotonic())
        return httpx.Response(200)

    healthy = [True]
    metrics = Metrics(CollectorRegistry())
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        beat = Heartbeat(
            HeartbeatSpec(url="http://dms.test/ping", interval=60), client, clock, metrics
        )
        stop = asyncio.Event()
        task = asyncio.create_task(beat.run(stop, lambda: healthy[0]))
        for minute in range(1, 6):
            for _ in range(5):
                await asyncio.sleep(0)
            healthy[0] = minute < 3  # probing stalls after the third ping
            clock.advance(60)
        for _ in range(5):
            await asyncio.sleep(0)
        stop.set()
        clock.advance(60)
        await task
    assert pinged == [0.0, 60.0, 120.0]
    assert (
        metrics.registry.get_sample_value(
            "recmon_notifications_total", {"sink": "heartbeat", "result": "delivered"}
        )
        == 3
    )
