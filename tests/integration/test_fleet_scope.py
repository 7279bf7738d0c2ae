"""Recommendations empty for every one of 40 tenants, paged by `recmon run` to (fake,
real-HTTP) PagerDuty, Alertmanager and a webhook: within 3 probe intervals of the first page a
PagerDuty incident says "all 40 tenants", never more than 2 incidents, both resolve."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from monitor.sandbox.demo import demo_alerts, sandbox_config
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import SandboxSettings, serve_sandbox
from monitor.telemetry.asgiserve import serve_asgi
from tests.fakes import RecordingEndpoint
from tests.integration.recmonproc import RecmonProcess

pytestmark = pytest.mark.integration
TENANTS = 40
INTERVAL = 0.5  # a timing test (tests/run.py: two at a time); its bounds are in intervals


def triggers(endpoint: RecordingEndpoint) -> list[tuple[float, dict[str, object]]]:
    return [
        (r["at"], r["body"])
        for r in endpoint.received
        if r["body"] and r["body"].get("event_action") == "trigger"
    ]


@pytest.mark.timing  # page within 3 intervals
async def test_all_tenants_empty_is_paged_with_its_full_scope(tmp_path: Path) -> None:
    settings = SandboxSettings(
        tenants=TENANTS, latency_ms={"search": 5.0, "recommendations": 5.0}, jitter=0.05
    )
    pagerduty = RecordingEndpoint(status=202)
    webhook = RecordingEndpoint(status=200)
    alertmanager = RecordingEndpoint(status=200)
    async with (
        serve_sandbox(settings) as sandbox,
        serve_asgi(pagerduty, "127.0.0.1", 0) as pd,
        serve_asgi(webhook, "127.0.0.1", 0) as wh,
        serve_asgi(alertmanager, "127.0.0.1", 0) as am,
    ):
        config = tmp_path / "probes.yaml"
        config.write_text(
            sandbox_config(sandbox.url, interval=INTERVAL, timeout=2)
            # The storm's default wait (60 s) is one default interval: scaled like the rest.
            + demo_alerts(INTERVAL).replace(
                f"group_wait: {INTERVAL / 2}s", f"group_wait: {2 * INTERVAL}s"
            )
            + f"""
notify:
  pagerduty: {{routing_key: test-key, url: "{pd.url}/v2/enqueue"}}
  webhook: {{url: "{wh.url}/hook"}}
  alertmanager: {{url: "{am.url}", resend_interval: 1s}}
  delivery: {{backoff_initial: 0.1s, backoff_max: 0.2s}}
state: {{path: "{tmp_path / "state.db"}"}}
"""
        )
        recmon = RecmonProcess(config)
        await recmon.start()
        try:
            await asyncio.sleep(3 * INTERVAL)
            fault_at = time.monotonic()
            sandbox.faults.set("*", "recommendations", Fault(empty=True))
            await recmon.wait_for(
                lambda: any(
                    "all 40 tenants" in body["payload"]["summary"]  # type: ignore[index]
                    for _, body in triggers(pagerduty)
                ),
                "the fleet-wide page",
                within=20 * INTERVAL,
            )
            sandbox.faults.clear()
            keys = {body["dedup_key"] for _, body in triggers(pagerduty)}
            await recmon.wait_for(
                lambda: (
                    {
                        r["body"]["dedup_key"]
                        for r in pagerduty.received
                        if r["body"]["event_action"] == "resolve"
                    }
                    >= keys
                ),
                "every incident resolved",
                within=30 * INTERVAL,
            )
        finally:
            await recmon.stop()

    paged = triggers(pagerduty)
    assert len({body["dedup_key"] for _, body in paged}) <= 2  # at most 2 incidents
    assert len(paged) <= 2  # and each paged once
    first_at = paged[0][0]
    fleet_at, fleet = next(
        (at, body)
        for at, body in paged
        if "all 40 tenants" in body["payload"]["summary"]  # type: ignore[index]
    )
    assert fleet_at - first_at <= 3 * INTERVAL
    payload = fleet["payload"]
    assert isinstance(payload, dict)
    details = payload["custom_details"]
    assert payload["summary"].startswith("recommendations returned no items for all 40 tenants")
    assert (details["tenant_count"], details["total_tenants"]) == (40, 40)
    assert len(details["tenants"]) == 40
    # the webhook and Alertmanager carry the same counts
    hooked = [r["body"] for r in webhook.received if r["body"]["key"] == fleet["dedup_key"]]
    assert hooked and hooked[0]["summary"] == payload["summary"]
    assert (hooked[0]["details"]["tenant_count"], hooked[0]["details"]["total_tenants"]) == (40, 40)
    posted = [
        alert
        for r in alertmanager.received
        if r["path"] == "/api/v2/alerts"
        for alert in r["body"]
        if alert["labels"].get("scope") == "fleet-wide"
    ]
    assert posted and posted[0]["annotations"]["summary"] == payload["summary"]
    assert "tenant_count: 40" in posted[0]["annotations"]["description"]
    assert "total_tenants: 40" in posted[0]["annotations"]["description"]
    print(
        f"\nfault → first page {first_at - fault_at:.2f}s, → all-40 page {fleet_at - fault_at:.2f}s"
        f" ({(fleet_at - first_at) / INTERVAL:.2f} intervals after the first); incidents"
        f" {len({body['dedup_key'] for _, body in paged})}"
    )
