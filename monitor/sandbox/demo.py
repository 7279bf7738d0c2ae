"""`recmon demo`: the bundled sandbox and the real monitor, with faults switched on and off.

What a person sees: every tenant healthy, then recommendations empty for some tenants, doubled
latency and a broken proxy for others, the alerts and pages that follow, then recovery — each
round as a table of live probe results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from typing import TextIO

from prometheus_client import CollectorRegistry

from monitor.alerting.hub import Decision
from monitor.app.assembly import build_monitor
from monitor.app.httpapi import MonitorApi
from monitor.app.longrun import status_page_url
from monitor.app.report import firing_summary, tenant_table
from monitor.app.service import Monitor
from monitor.app.status.collect import StatusSource, snapshot
from monitor.app.status.model import ReloadRecord
from monitor.config.loader import load_config_text
from monitor.core.clock import SystemClock
from monitor.sandbox.demo_options import DEFAULT_LISTEN
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import Sandbox, SandboxSettings, serve_sandbox
from monitor.telemetry.asgiserve import serve_asgi


def sandbox_config(
    url: str, *, interval: float = 60.0, timeout: float = 2.0, group_wait: float = 60.0
) -> str:
    """probes.yaml for the sandbox: search, then recommendations for the first product found."""
    return f"""
defaults: {{interval: {interval}s, timeout: {timeout}s}}
targets:
  sandbox:
    base_url: {url}
    rate_limit: 200/s
tenants:
  discover: {{url: "{url}/v1/tenants", items: "$.tenants[*].id", refresh: 10m}}
  default_vars: {{query: shoes}}
checks:
  search:
    target: sandbox
    request: {{method: GET, path: "/v1/{{tenant}}/search", params: {{q: "{{query}}"}}}}
    expect: {{status: [200], items: "$.results", min_items: 1}}
    capture: {{product: "$.results[0].id"}}
  recommendations:
    target: sandbox
    after: search
    request:
      path: "/v1/{{tenant}}/recommendations"
      params: {{product: "{{product}}"}}
    expect: {{status: [200], items: "$.recommendations", min_items: 1}}
"""


def demo_alerts(interval: float) -> str:
    """Detection scaled to a demo that lasts seconds: windows of a few probes, and the
    sandbox's known latencies as baselines (a real deployment learns them over hours)."""
    return f"""
alerts:
  storm: {{group_wait: {interval / 2}s}}
  empty_results: {{window: {4 * interval}s}}
  failures: {{window: {4 * interval}s}}
  error_rate: {{window: {10 * interval}s}}
  latency_drift:
    window: {3 * interval}s
    for: {interval / 2}s
    resolve_for: {interval / 2}s
    baseline_min_samples: 1000000
  overrides:
    - checks: [search]
      latency_drift: {{baseline: 40ms}}
    - checks: [recommendations]
      latency_drift: {{baseline: 60ms}}
"""


PHASES: tuple[tuple[str, dict[tuple[str, str], Fault]], ...] = (
    ("healthy: every tenant answers", {}),
    (
        "fault on: recommendations empty (HTTP 200, []) for tenant-002 and tenant-005, "
        "recommendations latency x2 for tenant-003, proxy answering 502 to tenant-007's search",
        {
            ("tenant-002", "recommendations"): Fault(empty=True),
            ("tenant-005", "recommendations"): Fault(empty=True),
            ("tenant-003", "recommendations"): Fault(latency_factor=2.0),
            ("tenant-007", "search"): Fault(status=502),
        },
    ),
    ("faults cleared: recovery", {}),
)


async def demo(
    tenants: int, interval: float, rounds: int, out: TextIO, listen: str = DEFAULT_LISTEN
) -> int:
    async with serve_sandbox(SandboxSettings(tenants=tenants), host="127.0.0.1", port=0) as sandbox:
        text = sandbox_config(sandbox.url, interval=interval) + demo_alerts(interval)
        loaded = load_config_text(text, source="<demo>")

        def page(decision: Decision) -> None:
            for n in decision.notifications:
                print(f"  >> page {n.action.value}: {n.summary}", file=out, flush=True)

        clock = SystemClock()
        monitor = build_monitor(loaded, clock=clock, registry=CollectorRegistry(), route=page)
        stop = asyncio.Event()
        runner = asyncio.create_task(monitor.run(stop))
        async with _status_page(monitor, listen, clock.time()) as url:
            print(
                f"sandbox: {sandbox.url} ({tenants} tenants); probing each every {interval:g}s\n"
                f"status page: {url} (open it while the demo runs)\n",
                file=out,
                flush=True,
            )
            try:
                await _story(monitor, sandbox, interval, rounds, out)
            finally:
                stop.set()
                await runner
                await monitor.aclose()
    return 0


@contextlib.asynccontextmanager
async def _status_page(monitor: Monitor, listen: str, started_at: float) -> AsyncIterator[str]:
    """The status page of `recmon run`, for the demo's monitor (no sinks, no state file)."""
    source = StatusSource(
        monitor=monitor,
        pipeline=None,
        persistence=None,
        state_path="(the demo keeps no state)",
        started_at=started_at,
        config_source="<demo>",
    )
    reload = ReloadRecord(started_at, True, "<demo>")
    api = MonitorApi(
        render_metrics=monitor.metrics.render,
        is_alive=lambda: True,
        readiness=lambda: (monitor.ready.is_set(), "ready\n"),
        snapshot=lambda: snapshot(source, reload),
    )
    host, _, port = listen.rpartition(":")
    async with contextlib.AsyncExitStack() as stack:
        try:
            server = await stack.enter_async_context(serve_asgi(api, host, int(port)))
        except OSError:
            # The port is taken (another recmon, another demo): any free one will do.
            server = await stack.enter_async_context(serve_asgi(api, host, 0))
        yield status_page_url(server.host, server.port)


async def _story(
    monitor: Monitor, sandbox: Sandbox, interval: float, rounds: int, out: TextIO
) -> None:
    await asyncio.wait_for(monitor.ready.wait(), timeout=10)
    for title, faults in PHASES:
        sandbox.faults.clear()
        for (tenant, check), fault in faults.items():
            sandbox.faults.set(tenant, check, fault)
        print(f"== {title}", file=out, flush=True)
        # Alerts need a few probes to be sure before paging and before resolving.
        for _ in range(rounds + 2):
            # A full interval after the switch, every tenant was probed under it.
            await asyncio.sleep(interval)
            print(
                tenant_table(monitor.latest, monitor.tenants, list(monitor.checks), monitor.skips),
                file=out,
            )
            print(file=out, flush=True)
    print(firing_summary(monitor.hub, sinks_configured=False, latest=monitor.latest), file=out)


def run(args: argparse.Namespace) -> int:
    # The tables and pages tell the story; keep routine log lines out of it.
    if args.log_level == "info":
        logging.getLogger("recmon").setLevel(logging.ERROR)
    if args.locations:
        from monitor.sandbox import locations_demo

        try:
            return asyncio.run(locations_demo.demo(args.tenants, sys.stdout))
        except locations_demo.DemoError as exc:
            print(f"recmon demo --locations: {exc}", file=sys.stderr)
            return 2
    return asyncio.run(demo(args.tenants, args.interval, args.rounds, sys.stdout, args.listen))
