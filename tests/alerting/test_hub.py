"""The alert hub between detector and outbox: a page decided is a page stored, or decided again."""

from __future__ import annotations

import sqlite3

from prometheus_client import CollectorRegistry

from monitor.alerting.hub import Decision
from monitor.app.service import Monitor
from monitor.core.clock import ManualClock
from monitor.core.notifications import Action, Notification
from monitor.core.results import Outcome, ProbeResult
from tests.helpers import load


def test_a_page_the_outbox_could_not_store_is_planned_again_not_lost() -> None:
    clock = ManualClock()
    stored: list[Notification] = []
    disk_full = [True]

    def route(decision: Decision) -> None:
        if disk_full[0]:
            raise sqlite3.OperationalError("database or disk is full")
        stored.extend(decision.notifications)

    monitor = Monitor(load(), clock=clock, registry=CollectorRegistry(), route=route)
    for _ in range(2):
        clock.advance(10)
        monitor.hub.observe(ProbeResult("acme", "recommendations", Outcome.EMPTY, 0.06, 0.0))
    clock.advance(61)  # past group_wait: the page is released, and the outbox write fails
    monitor.hub.tick()
    assert stored == []
    assert monitor.registry.get_sample_value(
        "recmon_internal_errors_total", {"component": "outbox"}
    )

    disk_full[0] = False
    for _ in range(70):  # the disk recovers: released again after its (new) group wait
        clock.advance(1)
        monitor.hub.tick()
    assert [(n.action, n.key) for n in stored] == [
        (Action.TRIGGER, "recmon/empty_results/recommendations/acme")
    ]
