"""CronJob mode end to end: the sandbox breaks, recmon pages a (fake, real-HTTP) PagerDuty that
is down for a while, and every trigger and resolve arrives exactly once — across runs, each
of which is a fresh process (a restart)."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import Sandbox
from monitor.telemetry.asgiserve import serve_asgi
from tests.fakes import RecordingEndpoint

pytestmark = pytest.mark.integration
KEY = "recmon/empty_results/recommendations/tenant-002"


async def once(config: Path) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "once",
        "--quiet",
        "--flush-timeout",
        "2",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode in (0, 1), stderr.decode()[-3000:]
    return process.returncode


async def test_pages_survive_a_pagerduty_outage_and_restarts(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    pagerduty = RecordingEndpoint(status=503)
    heartbeat = RecordingEndpoint(status=200)
    async with (
        serve_asgi(pagerduty, "127.0.0.1", 0) as pd,
        serve_asgi(heartbeat, "127.0.0.1", 0) as hb,
    ):
        config = tmp_path / "probes.yaml"
        config.write_text(
            sandbox_config(sandbox.url, timeout=2)
            + f"""
notify:
  pagerduty: {{routing_key: "${{PD_KEY:-test-routing-key}}", url: "{pd.url}/v2/enqueue"}}
  heartbeat: {{url: "{hb.url}/ping"}}
  delivery: {{backoff_initial: 0.1s, backoff_max: 0.2s}}
# Runs here are seconds apart, not minutes: keep the share window to the latest probe so the
# consecutive-probe thresholds are what is tested.
alerts:
  empty_results: {{window: 1s}}
"""
        )
        sandbox.faults.set("tenant-002", "recommendations", Fault(empty=True))
        assert await once(config) == 0  # one empty probe: not yet an alert
        assert await once(config) == 1  # two: the alert fires, PagerDuty answers 503
        assert pagerduty.events() == []
        pagerduty.status = 202
        assert await once(config) == 1  # next run delivers what the outbox kept, once
        assert pagerduty.events() == [(KEY, "trigger")]

        sandbox.faults.clear()
        assert await once(config) == 1  # one good probe does not resolve a real outage
        assert await once(config) == 0  # two do
        assert await once(config) == 0
        assert pagerduty.events() == [(KEY, "trigger"), (KEY, "resolve")]
        trigger = pagerduty.received[0]["body"]
        assert trigger["routing_key"] == "test-routing-key"
        assert trigger["payload"]["group"] == "tenant-002"
        assert "search is healthy" in trigger["payload"]["summary"]
        assert len(heartbeat.received) == 6  # every completed run pinged the dead man's switch


async def test_cronjob_keeps_firing_alerts_alive_in_alertmanager_between_runs(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Alertmanager resolves an alert whose endsAt passes; a CronJob re-posts only at its next
    run, so every run re-posts what fires with an endsAt well past the gap between runs."""
    alertmanager = RecordingEndpoint(status=200)
    async with serve_asgi(alertmanager, "127.0.0.1", 0) as am:
        config = tmp_path / "probes.yaml"
        config.write_text(
            sandbox_config(sandbox.url, timeout=2)
            + f"""
notify:
  alertmanager: {{url: "{am.url}", resend_interval: 60s}}
alerts:
  empty_results: {{window: 1s}}
"""
        )
        sandbox.faults.set("tenant-002", "recommendations", Fault(empty=True))
        assert await once(config) == 0
        assert await once(config) == 1  # fires: posted once, re-posted by the same run
        # The schedule says every 5 minutes: pretend the last run was that long ago.
        with sqlite3.connect(tmp_path / "recmon-state.db") as db:
            db.execute(
                "UPDATE kv SET value=? WHERE name='once_last_run_at'", (str(time.time() - 300),)
            )
        before = time.time()
        assert await once(config) == 1
    posts = [r["body"] for r in alertmanager.received if r["path"] == "/api/v2/alerts"]
    last = [a for a in posts[-1] if a["labels"].get("tenant") == "tenant-002"]
    assert last, posts[-1]
    ends_at = datetime.fromisoformat(last[0]["endsAt"].replace("Z", "+00:00")).timestamp()
    assert ends_at >= before + 4 * 300 - 5  # four gaps ahead, not four resend intervals
    fired = [a for body in posts for a in body if a["labels"].get("tenant") == "tenant-002"]
    assert len(fired) >= 3  # the trigger, then a re-post by each run while it fires
    assert {a["labels"]["alertname"] for a in fired} == {fired[0]["labels"]["alertname"]}
