"""recmon's Alertmanager sink against a real Alertmanager on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from monitor.alerting.sinks.alertmanager import AlertmanagerSink
from monitor.config.model import AlertmanagerSpec
from monitor.core.clock import SystemClock
from monitor.core.notifications import Action, Delivery, Notification, Severity
from tests.binaries import free_port, require_binary, running

pytestmark = pytest.mark.integration

CONFIG = """
route:
  receiver: blackhole
  group_wait: 1s
receivers:
  - name: blackhole
"""


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    (tmp_path / "am.yml").write_text(CONFIG)
    url = f"http://127.0.0.1:{port}"
    args = [
        binary,
        f"--config.file={tmp_path / 'am.yml'}",
        f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with running(args, ready_url=f"{url}/-/ready", log=tmp_path / "am.log"):
        yield url


def notification(action: Action, at: float, started: float) -> Notification:
    key = "recmon/empty_results/recommendations/acme"
    return Notification(
        id=f"{key}@{int(started)}:{action.value}",
        key=key,
        action=action,
        rule="empty_results",
        severity=Severity.CRITICAL,
        summary="recommendations returned no items for tenant acme",
        started_at=started,
        at=at,
        tenant="acme",
        check="recommendations",
        details={"empty_probes": 2},
    )


async def active_alerts(client: httpx.AsyncClient, url: str) -> list[dict[str, object]]:
    response = await client.get(f"{url}/api/v2/alerts", params={"active": "true"})
    response.raise_for_status()
    return [a for a in response.json() if a["status"]["state"] == "active"]


async def test_alert_appears_and_disappears_after_resolve(alertmanager: str) -> None:
    clock = SystemClock()
    async with httpx.AsyncClient() as client:
        sink = AlertmanagerSink(AlertmanagerSpec(url=alertmanager), client, clock)
        started = clock.time()
        result = await sink.send(notification(Action.TRIGGER, started, started))
        assert result.outcome is Delivery.DELIVERED, result.detail

        alerts = await active_alerts(client, alertmanager)
        assert len(alerts) == 1
        labels = alerts[0]["labels"]
        assert labels["alertname"] == "RecmonEmptyResults"  # type: ignore[index]
        assert labels["tenant"] == "acme" and labels["severity"] == "critical"  # type: ignore[index]
        assert alerts[0]["annotations"]["runbook"] == "docs/runbooks/empty-results.md"  # type: ignore[index]

        resolved_at = clock.time()
        result = await sink.send(notification(Action.RESOLVE, resolved_at, started))
        assert result.outcome is Delivery.DELIVERED, result.detail
        for _ in range(50):
            if not await active_alerts(client, alertmanager):
                break
            await asyncio.sleep(0.1)
        assert await active_alerts(client, alertmanager) == []
