"""The alert hub between detector and outbox: a page decided is a page stored, or decided again."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from monitor.alerting.hub import Decision
from monitor.app.assembly import build_monitor
from monitor.config.model import Target
from monitor.core.clock import ManualClock
from monitor.core.notifications import Action, Notification
from monitor.core.results import Outcome, ProbeResult
from monitor.probing.engine import Job
from tests.helpers import load


def test_a_page_the_outbox_could_not_store_is_planned_again_not_lost() -> None:
    clock = ManualClock()
    stored: list[Notification] = []
    disk_full = [True]

    def route(decision: Decision) -> None:
        if disk_full[0]:
            raise sqlite3.OperationalError("database or disk is full")
        stored.extend(decision.notifications)

    monitor = build_monitor(load(), clock=clock, registry=CollectorRegistry(), route=route)
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


async def test_a_tenant_skipped_for_want_of_a_key_is_not_part_of_the_fleet(
    tmp_path: Path,
) -> None:
    """20 tenants, 19 keys in tenants.credentials, every probe refused: the engine's skip
    reaches the hub, and the fleet-wide page says "all 19 tenants" as soon as the 19th fires,
    naming the skipped tenant."""
    tenants = [f"tenant-{i:03d}" for i in range(1, 21)]
    (tmp_path / "keys.yaml").write_text("".join(f"{t}: key-{t}-0123456789\n" for t in tenants[:19]))
    loaded = load(
        f"""
        defaults: {{interval: 10s, timeout: 2s}}
        targets:
          api: {{base_url: "http://api.test"}}
        tenants:
          static: [{", ".join(tenants)}]
          credentials: {{file: {tmp_path / "keys.yaml"}, variable: api_key}}
        checks:
          search:
            target: api
            request: {{path: "/v1/{{tenant}}/search", headers: {{X-Api-Key: "{{api_key}}"}}}}
            expect: {{items: "$.results", min_items: 1}}
        alerts: {{storm: {{min_tenants: 5}}}}
        """
    )
    clock = ManualClock()
    stored: list[Notification] = []

    def refuse(name: str, target: Target, timeout: float) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=target.base_url, transport=httpx.MockTransport(lambda _: httpx.Response(401))
        )

    monitor = build_monitor(
        loaded,
        clock=clock,
        registry=CollectorRegistry(),
        client_factory=refuse,
        route=lambda decision: stored.extend(decision.notifications),
    )
    await monitor.refresh_tenants()
    fleet_at = None
    for _ in range(2):  # auth_errors fires at the second refusal in a row
        for tenant in tenants:
            clock.advance(0.5)
            await monitor.engine.run_job(Job(tenant, "search"))
            if fleet_at is None and any("all 19 tenants" in n.summary for n in stored):
                fleet_at = tenant
    await monitor.aclose()
    assert fleet_at == "tenant-019"  # at once: the 19th refused tenant completes the fleet
    pages = [n for n in stored if n.action is Action.TRIGGER and n.tenant is None]
    fleet = pages[-1]
    assert "for all 19 tenants" in fleet.summary
    assert fleet.summary.endswith("(tenant-020 skipped, not probed)")
    assert fleet.details["not_probed"] == {"tenant-020": "no credential {api_key}"}
    assert not any("of 20 tenants" in n.summary for n in stored)
