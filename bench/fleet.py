"""CPU per probe of what follows a probe (the redactor, the detector, fleet evidence, the
backend tally, metrics), with fleet evidence on against off, at steady state.

    .venv/bin/python bench/fleet.py

1,000 tenants x 2 checks every 60 s in virtual time, 1% of probes failing at random, each
answered by one of three backend addresses. Each run first plays 20 minutes (longer than every
window, the 15-minute error_rate one included) and then measures CPU over the next 5 minutes.
Runs alternate on and off; prints the median of 5 each and their ratio. No HTTP: the probe's
own cost (transport, parsing) is bench/run.py's.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Not ahead of a tree a comparison put first (bench/observe_path.py): it measured this
# checkout against itself while this line put it first.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry  # noqa: E402

from monitor.app.assembly import build_monitor  # noqa: E402
from monitor.config.loader import load_config_text  # noqa: E402
from monitor.core.clock import ManualClock  # noqa: E402
from monitor.core.results import Outcome, ProbeResult  # noqa: E402

TENANTS = 1_000
INTERVAL = 60.0
WARM_S = 20 * 60
MEASURED_S = 5 * 60
RUNS = 5
ADDRESSES = ("10.0.0.1:443", "10.0.0.2:443", "10.0.0.3:443")


def fleet_config(tenants: list[str], fleet: bool = True) -> str:
    """The benchmark fleet's configuration: search and recommendations every INTERVAL for
    `tenants`, fleet evidence on or off."""
    return f"""
defaults: {{interval: {INTERVAL:g}s, timeout: 2s}}
targets:
  api: {{base_url: "http://api.test"}}
tenants:
  static: [{", ".join(tenants)}]
checks:
  search:
    target: api
    request: {{path: "/v1/{{tenant}}/search"}}
    expect: {{items: "$.results", min_items: 1}}
  recommendations:
    target: api
    request: {{path: "/v1/{{tenant}}/recommendations"}}
    expect: {{items: "$.recommendations", min_items: 1}}
alerts: {{fleet: {{enabled: {str(fleet).lower()}}}}}
"""


def fleet_probe(tenant: str, check: str, at: float, rng: random.Random) -> ProbeResult:
    """One probe of the benchmark's fleet: 1% failing (503), ~60 ms, from one of three
    backends."""
    failed = rng.random() < 0.01
    return ProbeResult(
        tenant,
        check,
        Outcome.HTTP_ERROR if failed else Outcome.OK,
        rng.lognormvariate(-2.8, 0.2),
        at,
        status=503 if failed else 200,
        items=None if failed else 5,
        target="api",
        address=rng.choice(ADDRESSES),
    )


async def one_run(fleet: bool, seed: int) -> float:
    """CPU seconds per probe over the measured minutes, windows full."""
    tenants = [f"t{i:04}" for i in range(TENANTS)]
    loaded = load_config_text(fleet_config(tenants, fleet), source="bench")
    clock = ManualClock(start=1_700_000_000.0)
    monitor = build_monitor(loaded, clock=clock, registry=CollectorRegistry(), route=lambda d: None)
    await monitor.refresh_tenants()
    rng = random.Random(seed)
    step = INTERVAL / (2 * TENANTS)

    def play(seconds: float) -> int:
        probes = 0
        for _ in range(round(seconds / INTERVAL)):
            for tenant in tenants:
                for check in ("search", "recommendations"):
                    clock.advance(step)
                    monitor.observe(fleet_probe(tenant, check, clock.time(), rng))
                    probes += 1
        return probes

    play(WARM_S)
    start = time.process_time()
    probes = play(MEASURED_S)
    spent = time.process_time() - start
    await monitor.aclose()
    return spent / probes


async def main() -> None:
    on: list[float] = []
    off: list[float] = []
    for run in range(RUNS):
        on.append(await one_run(True, run))
        off.append(await one_run(False, run))
        print(f"run {run + 1}: on {on[-1] * 1e6:.1f} us/probe, off {off[-1] * 1e6:.1f} us/probe")
    median_on, median_off = statistics.median(on), statistics.median(off)
    ratio = median_on / median_off
    print(
        f"median CPU per probe after the probe, windows full: fleet evidence on "
        f"{median_on * 1e6:.1f} us, off {median_off * 1e6:.1f} us, ratio {ratio:.3f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
