"""A state file that takes no writes silences no page: the hub, the notification pipeline and
the dispatcher on a real state file whose writes fail (SQLite's query_only: "attempt to write
a readonly database"), in virtual time, with a fake PagerDuty behind httpx.MockTransport."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from monitor.alerting.hub import AlertHub
from monitor.alerting.pipeline import NotificationPipeline
from monitor.app.assembly import build_monitor
from monitor.app.service import metrics_for
from monitor.core.clock import ManualClock
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.storage import RELEASE_S
from monitor.state.outbox import Outbox
from monitor.state.store import StateStore, WriteHealth
from monitor.telemetry.metrics import Metrics
from tests.helpers import BASE_CONFIG, checks, load
from tests.statefaults import read_only

T0 = 1_763_990_400.0
KEY = "recmon/empty_results/recommendations/acme"
CONFIG = (
    BASE_CONFIG
    + """
notify:
  pagerduty: {routing_key: rk-0123456789, url: "http://pagerduty.test/v2/enqueue"}
"""
)


class Rig:
    def __init__(self, path: Path) -> None:
        self.clock = ManualClock(start=T0)
        self.received: list[dict[str, Any]] = []
        self.store = StateStore.open(path)
        loaded = load(CONFIG)
        self.registry = CollectorRegistry()
        metrics = metrics_for(loaded.config, self.registry)
        self.pipeline = NotificationPipeline(
            loaded.config.notify,
            self.store,
            clock=self.clock,
            metrics=metrics,
            transport=httpx.MockTransport(self.pagerduty),
        )
        self.monitor = build_monitor(
            loaded,
            clock=self.clock,
            registry=self.registry,
            metrics=metrics,
            route=self.pipeline.route,
            storage=self.store.write_health,
        )

    def pagerduty(self, request: httpx.Request) -> httpx.Response:
        self.received.append(json.loads(request.content))
        return httpx.Response(202)

    def events(self) -> list[tuple[str, str]]:
        return [(e["dedup_key"], e["event_action"]) for e in self.received]

    async def run_for(self, seconds: int) -> None:
        for _ in range(seconds):
            self.clock.advance(1)
            self.monitor.hub.tick()
            await self.pipeline.dispatcher.deliver_due()

    def writable(self) -> float | None:
        return self.registry.get_sample_value("recmon_state_writable")


async def test_pages_go_out_from_memory_and_are_stored_as_delivered_once_writes_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig(tmp_path / "state.db")
    hub = rig.monitor.hub
    with read_only(rig.store):
        for _ in range(2):
            rig.clock.advance(10)
            hub.observe(ProbeResult("acme", "recommendations", Outcome.EMPTY, 0.06, 0.0))
        with caplog.at_level(logging.INFO):
            await rig.run_for(62)  # past group_wait: decided, not storable, sent from memory
        assert rig.events()[0] == (KEY, "trigger")
        page = rig.received[0]["payload"]
        assert "not crash-safe" in page["custom_details"]["delivery"]
        assert "readonly" in page["custom_details"]["delivery"]
        assert "delivering them from memory" in caplog.text
        # recmon's own alert, at once and critical, through the same path
        own = [e for e in rig.received if e["dedup_key"].startswith("recmon/state_unwritable")]
        assert [e["event_action"] for e in own] == ["trigger"]
        assert own[0]["payload"]["severity"] == "critical"
        assert own[0]["payload"]["summary"].startswith(
            "state file unwritable: attempt to write a readonly database"
        )
        assert rig.writable() == 0
        assert hub.storage_alert() is not None
        assert hub.firing == 2
        with sqlite3.connect(tmp_path / "state.db") as db:
            assert list(db.execute("SELECT * FROM outbox")) == []

    await rig.run_for(2)  # writes work again: everything held is stored, as it ended
    assert rig.writable() == 1
    with sqlite3.connect(tmp_path / "state.db") as db:
        stored = sorted(db.execute("SELECT key, status FROM outbox"))
        planner = json.loads(db.execute("SELECT value FROM kv WHERE name='planner'").fetchone()[0])
    assert stored == sorted([(KEY, "delivered"), (own[0]["dedup_key"], "delivered")])
    assert KEY in json.dumps(planner)  # the planner state that decided them, stored with them

    await rig.run_for(int(RELEASE_S) - 4)
    assert hub.storage_alert() is not None  # not resolved at the first good write
    await rig.run_for(5)
    assert hub.storage_alert() is None
    assert rig.events() == [
        (KEY, "trigger"),
        (own[0]["dedup_key"], "trigger"),
        (own[0]["dedup_key"], "resolve"),
    ]
    assert "delivery" not in rig.received[-1].get("payload", {}).get("custom_details", {})
    # A restart finds nothing to send again.
    rig.store.close()
    again = StateStore.open(tmp_path / "state.db")
    assert Outbox(again).due(rig.clock.time() + 3600) == []
    again.close()


class FakeHealth:
    def __init__(self) -> None:
        self.health = WriteHealth("/state/recmon.db")

    def fail(self, error: str = "database or disk is full") -> None:
        h = self.health
        self.health = WriteHealth(h.path, True, h.failures + 1, error)

    def succeed(self) -> None:
        h = self.health
        self.health = WriteHealth(h.path, False, h.failures, h.error)

    def __call__(self) -> WriteHealth:
        return self.health


def storage_hub(health: FakeHealth, clock: ManualClock, routed: list[Any]) -> AlertHub:
    loaded = load()
    return AlertHub(
        loaded.config.alerts,
        checks(),
        metrics=Metrics(CollectorRegistry()),
        clock=clock,
        route=lambda decision: routed.extend(decision.notifications),
        storage=health,
    )


def test_a_nearly_full_volume_is_one_incident_not_a_page_a_minute() -> None:
    clock, health, routed = ManualClock(start=T0), FakeHealth(), []
    hub = storage_hub(health, clock, routed)
    hub.tick()
    assert routed == []
    health.fail()
    hub.tick()
    assert [(n.action.value, n.rule) for n in routed] == [("trigger", "state_unwritable")]
    assert routed[0].summary.startswith("state file unwritable: database or disk is full")
    assert routed[0].details["path"] == "/state/recmon.db"
    for _ in range(5):  # some writes pass, some fail (a full disk with a reusable WAL)
        health.succeed()
        for _ in range(int(RELEASE_S) - 10):
            clock.advance(1)
            hub.tick()
        health.fail()
        health.succeed()  # failed and succeeded between two ticks: still a failure
        clock.advance(1)
        hub.tick()
    assert len(routed) == 1
    registry = hub.metrics.registry
    assert registry.get_sample_value("recmon_state_writable") == 0
    assert registry.get_sample_value("recmon_state_write_errors_total") == 6
    for _ in range(int(RELEASE_S) + 1):
        clock.advance(1)
        hub.tick()
    assert [(n.action.value, n.rule) for n in routed] == [
        ("trigger", "state_unwritable"),
        ("resolve", "state_unwritable"),
    ]
    assert hub.metrics.registry.get_sample_value("recmon_state_writable") == 1


def test_a_paged_storage_alert_restored_from_the_file_resolves_when_writes_work() -> None:
    clock, health, routed = ManualClock(start=T0), FakeHealth(), []
    first = storage_hub(health, clock, routed)
    health.fail()
    first.tick()
    reloaded = storage_hub(health, clock, [])  # a reload counts failures from now on
    reloaded.tick()
    assert reloaded.metrics.registry.get_sample_value("recmon_state_write_errors_total") == 0
    second = storage_hub(FakeHealth(), clock, routed)  # restarted: writes work
    assert second.restore(first.memory()) == 1
    assert second.firing == 1
    for _ in range(int(RELEASE_S) + 1):
        clock.advance(1)
        second.tick()
    assert [n.action.value for n in routed] == ["trigger", "resolve"]
