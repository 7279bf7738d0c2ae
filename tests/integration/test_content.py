"""Answers present but wrong, end to end: the sandbox answers a fallback list, another
tenant's items, a renamed field; `recmon run` pages (a fake, real-HTTP PagerDuty) naming the
cause, within the intervals the issue asks, and resolves after recovery. A healthy sandbox
with per-product lists pages nothing."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitor.sandbox.demo import demo_alerts, sandbox_config
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import Sandbox, SandboxSettings, serve_sandbox
from monitor.telemetry.asgiserve import serve_asgi
from tests.fakes import RecordingEndpoint
from tests.integration.recmonproc import RecmonProcess

pytestmark = pytest.mark.integration
TENANTS = 20
INTERVAL = 1.0
# The timing tests' interval: they run in the suite's timing phase, two at a time on an
# otherwise idle machine, so their bounds (in intervals) hold at half a second too.
TIMING_INTERVAL = 0.5

CONTENT = """
    expect:
      status: [200]
      items: "$.recommendations"
      min_items: 1
      conditions:
        - name: item-ids-belong-to-tenant
          path: "$.recommendations[*].id"
          op: matches
          value: "^{tenant}-p"
      schema:
        type: object
        required: [recommendations]
        properties:
          recommendations:
            type: array
            items:
              type: object
              required: [id, score]
              properties: {id: {type: string}, score: {type: number}}
"""


def content_config(url: str, tmp_path: Path, pd_url: str, interval: float = INTERVAL) -> str:
    base = sandbox_config(url, interval=interval, timeout=2)
    base = base.replace(
        '    capture: {product: "$.results[0].id"}',
        '    capture: {product: {path: "$.results[*].id", pick: rotate}}',
    )
    base = base.replace(
        '    expect: {status: [200], items: "$.recommendations", min_items: 1}\n', CONTENT
    )
    assert "item-ids-belong-to-tenant" in base and "rotate" in base
    return (
        base
        + demo_alerts(interval)
        + f"""
notify:
  pagerduty: {{routing_key: test-key, url: "{pd_url}/v2/enqueue"}}
  delivery: {{backoff_initial: 0.1s, backoff_max: 0.2s}}
state: {{path: "{tmp_path / "state.db"}"}}
"""
    )


@dataclass
class Running:
    sandbox: Sandbox
    pagerduty: RecordingEndpoint
    recmon: RecmonProcess
    interval: float

    def triggers(self) -> list[tuple[float, dict[str, Any]]]:
        return [
            (r["at"], r["body"])
            for r in self.pagerduty.received
            if r["body"] and r["body"].get("event_action") == "trigger"
        ]

    def resolved(self) -> set[str]:
        return {
            r["body"]["dedup_key"]
            for r in self.pagerduty.received
            if r["body"] and r["body"].get("event_action") == "resolve"
        }

    async def page(self, text: str, within: float) -> tuple[float, dict[str, Any]]:
        await self.recmon.wait_for(
            lambda: any(text in body["payload"]["summary"] for _, body in self.triggers()),
            f"a page saying {text!r}",
            within=within,
        )
        return next(
            (at, body) for at, body in self.triggers() if text in body["payload"]["summary"]
        )

    async def all_resolved(self) -> None:
        keys = {body["dedup_key"] for _, body in self.triggers()}
        await self.recmon.wait_for(
            lambda: self.resolved() >= keys, "every incident resolved", within=30 * self.interval
        )


@asynccontextmanager
async def running(tmp_path: Path, interval: float = INTERVAL) -> AsyncIterator[Running]:
    settings = SandboxSettings(
        tenants=TENANTS, latency_ms={"search": 5.0, "recommendations": 5.0}, jitter=0.05
    )
    pagerduty = RecordingEndpoint(status=202)
    async with serve_sandbox(settings) as sandbox, serve_asgi(pagerduty, "127.0.0.1", 0) as pd:
        config = tmp_path / "probes.yaml"
        config.write_text(content_config(sandbox.url, tmp_path, pd.url, interval))
        recmon = RecmonProcess(config)
        await recmon.start()
        try:
            await asyncio.sleep(3 * interval)  # healthy rounds first: every tenant's own list
            yield Running(sandbox, pagerduty, recmon, interval)
        finally:
            await recmon.stop()


@pytest.mark.timing  # the page within intervals of the fault
async def test_a_fallback_for_every_tenant_is_one_page_naming_it_and_the_share(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, TIMING_INTERVAL) as run:
        fault_at = time.monotonic()
        run.sandbox.faults.set("*", "recommendations", Fault(fallback=True))
        at, page = await run.page("one identical list", within=10 * TIMING_INTERVAL)
        run.sandbox.faults.clear()
        await run.all_resolved()
    summary = page["payload"]["summary"]
    assert summary.startswith("recommendations are one identical list for all 20 tenants")
    assert "5 items: popular-01, popular-02, popular-03, popular-04, popular-05)" in summary
    assert summary.endswith("a fallback or cache is answering")
    assert page["payload"]["severity"] == "critical"
    assert at - fault_at <= 3 * TIMING_INTERVAL, at - fault_at
    # one page: neither each tenant's failures (wrong_content) nor a storm of them
    assert len(run.triggers()) == 1, [b["payload"]["summary"] for _, b in run.triggers()]
    print(f"\nfallback for all: paged after {(at - fault_at) / TIMING_INTERVAL:.2f} intervals")


@pytest.mark.timing  # the page within intervals of the fault
async def test_another_tenants_items_are_a_critical_page_naming_both(tmp_path: Path) -> None:
    async with running(tmp_path, TIMING_INTERVAL) as run:
        fault_at = time.monotonic()
        run.sandbox.faults.set("tenant-002", "recommendations", Fault(foreign_tenant="tenant-004"))
        at, page = await run.page("carry items of tenant", within=10 * TIMING_INTERVAL)
        run.sandbox.faults.clear()
        await run.all_resolved()
    summary = page["payload"]["summary"]
    assert summary.startswith(
        "recommendations for tenant tenant-002 carry items of tenant tenant-004 (tenant-004-p"
    )
    assert "a data leak between tenants" in summary
    assert page["payload"]["severity"] == "critical"
    assert at - fault_at <= 2 * TIMING_INTERVAL, at - fault_at
    assert len(run.triggers()) == 1, [b["payload"]["summary"] for _, b in run.triggers()]
    print(f"\nforeign items: paged after {(at - fault_at) / TIMING_INTERVAL:.2f} intervals")


async def test_a_renamed_field_is_wrong_content_named_in_the_page(tmp_path: Path) -> None:
    async with running(tmp_path) as run:
        run.sandbox.faults.set("tenant-003", "recommendations", Fault(drift="renamed_field"))
        _, page = await run.page("wrong_content", within=10 * INTERVAL)
        metrics = (await run.recmon.get("/metrics")).text
        run.sandbox.faults.clear()
        await run.all_resolved()
    summary = page["payload"]["summary"]
    assert summary.startswith("recommendations failing for tenant-003")
    assert "condition schema failed: $.recommendations[0].id = absent" in summary
    assert (
        'recmon_probe_condition_failures_total{check="recommendations",condition="schema"}'
        in metrics
    )
    assert 'outcome="wrong_content"' in metrics


async def test_a_healthy_sandbox_with_per_product_lists_pages_nothing(tmp_path: Path) -> None:
    async with running(tmp_path) as run:
        await asyncio.sleep(12 * INTERVAL)
        metrics = (await run.recmon.get("/metrics")).text
    assert run.triggers() == []
    assert 'outcome="wrong_content"' not in metrics


async def test_recmon_once_no_longer_calls_a_fallback_ok(tmp_path: Path) -> None:
    """The issue's reproduction: every tenant answered one popular list and `recmon once`
    said "all probes ok, no alerts firing", exit 0. Now the round that sees it pages."""
    settings = SandboxSettings(
        tenants=TENANTS, latency_ms={"search": 5.0, "recommendations": 5.0}, jitter=0.05
    )
    async with serve_sandbox(settings) as sandbox:
        config = tmp_path / "probes.yaml"
        config.write_text(
            # A CronJob's runs are an interval apart: here seconds, like the runs below.
            sandbox_config(sandbox.url, interval=2, timeout=1)
            + f'state: {{path: "{tmp_path / "s.db"}"}}\n'
        )

        async def once() -> tuple[int, str]:
            await asyncio.sleep(2)  # runs an interval apart, as a CronJob's are
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "monitor",
                "once",
                "--config",
                str(config),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, _ = await asyncio.wait_for(process.communicate(), 60)
            assert process.returncode is not None
            return process.returncode, out.decode()

        assert (await once())[0] == 0
        sandbox.faults.set("*", "recommendations", Fault(fallback=True))
        code, out = await once()
        assert code == 1, out
        assert "recommendations are one identical list for all 20 tenants" in out
        assert "fallback on recommendations (the fleet)" in out
        sandbox.faults.clear()
        assert (await once())[0] == 1  # one good round does not resolve it...
        code, out = await once()
        assert code == 0, out  # ...the state file carries it to the next, which does
