"""How often the alert hub ticks: every second, and twice per interval for checks probed more
often than every 2 s, so that a held alert is released within half an interval of its wait."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from monitor.alerting.hub import TICK_S, Decision, tick_seconds
from monitor.app.assembly import build_monitor
from monitor.core.clock import ManualClock
from monitor.core.notifications import Notification
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.series import EventKind
from tests.helpers import BASE_CONFIG, load


def test_the_hub_ticks_every_second_or_twice_per_interval_of_its_fastest_check() -> None:
    assert TICK_S == 1.0
    assert tick_seconds([10.0, 60.0]) == tick_seconds([2.0]) == tick_seconds([]) == 1.0
    assert tick_seconds([60.0, 0.5]) == 0.25
    assert tick_seconds([1.5]) == 0.75


async def test_a_half_second_checks_held_page_is_released_within_a_quarter_second() -> None:
    clock = ManualClock()
    stored: list[tuple[float, Notification]] = []

    def route(decision: Decision) -> None:
        stored.extend((clock.time(), n) for n in decision.notifications)

    text = BASE_CONFIG.replace("interval: 10s", "interval: 0.5s") + (
        "alerts: {storm: {group_wait: 0.6s}, empty_results: {window: 2s}}\n"
    )
    monitor = build_monitor(load(text), clock=clock, registry=CollectorRegistry(), route=route)
    assert monitor.hub.tick_s == 0.25
    stop = asyncio.Event()
    ticking = asyncio.create_task(monitor.hub.run(stop))
    await asyncio.sleep(0)
    for _ in range(8):  # recommendations empty for acme, every half second, ticks between
        monitor.hub.observe(ProbeResult("acme", "recommendations", Outcome.EMPTY, 0.06, 0.0))
        for _ in range(2):
            clock.advance(0.25)
            await asyncio.sleep(0)
    stop.set()
    clock.advance(1)
    await ticking
    (fired,) = [e.at for e in monitor.hub.history("acme") if e.kind is EventKind.FIRING]
    due = fired + 0.6  # its group wait over: a tick releases it (one a second: up to 1 s late)
    assert [n.rule for _, n in stored] == ["empty_results"]
    assert due <= stored[0][0] <= due + 0.25
