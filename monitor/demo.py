"""`recmon demo`: the bundled sandbox and the real monitor, with faults switched on and off.

What a person sees: every tenant healthy, then recommendations empty for some tenants, doubled
latency and a broken proxy for others, then recovery, each as a table of live probe results.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

from prometheus_client import CollectorRegistry

from monitor.clock import SystemClock
from monitor.config.loader import LoadedConfig, load_config_text
from monitor.report import tenant_table
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import SandboxSettings, serve_sandbox
from monitor.service import Monitor


def sandbox_config(url: str, *, interval: float = 60.0, timeout: float = 2.0) -> str:
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenants", type=int, default=8, help="sandbox tenants (default 8)")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between probes of a tenant"
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds to show in each phase")


PHASES: tuple[tuple[str, dict[tuple[str, str], Fault]], ...] = (
    ("healthy: every tenant answers", {}),
    (
        "fault on: recommendations empty for tenant-002 and tenant-005, latency x2 for "
        "tenant-003 recommendations, proxy answering 502 for tenant-007 search",
        {
            ("tenant-002", "recommendations"): Fault(empty=True),
            ("tenant-005", "recommendations"): Fault(empty=True),
            ("tenant-003", "recommendations"): Fault(latency_factor=2.0),
            ("tenant-007", "search"): Fault(status=502),
        },
    ),
    ("faults cleared: recovery", {}),
)


async def demo(tenants: int, interval: float, rounds: int, out: TextIO) -> int:
    async with serve_sandbox(SandboxSettings(tenants=tenants), host="127.0.0.1", port=0) as sandbox:
        loaded: LoadedConfig = load_config_text(
            sandbox_config(sandbox.url, interval=interval), source="<demo>"
        )
        monitor = Monitor(loaded, clock=SystemClock(), registry=CollectorRegistry())
        stop = asyncio.Event()
        runner = asyncio.create_task(monitor.run(stop))
        print(
            f"sandbox: {sandbox.url} ({tenants} tenants); probing every {interval:g}s\n", file=out
        )
        try:
            for title, faults in PHASES:
                sandbox.faults.clear()
                for (tenant, check), fault in faults.items():
                    sandbox.faults.set(tenant, check, fault)
                print(f"== {title}", file=out)
                for _ in range(rounds):
                    await asyncio.sleep(interval)
                    print(
                        tenant_table(monitor.latest, monitor.tenants, list(monitor.checks)),
                        file=out,
                    )
                    print(file=out)
        finally:
            stop.set()
            await runner
            await monitor.aclose()
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(demo(args.tenants, args.interval, args.rounds, sys.stdout))
