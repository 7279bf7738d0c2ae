"""Memory of a fleet's detector and state saves, windows full: peak RSS and bytes per series.

    .venv/bin/python bench/memory.py                 # 10,000 tenants x 2 checks, ~3 minutes
    .venv/bin/python bench/memory.py --tenants 1000

bench/fleet.py's fleet (every 60 s, 1% of probes failing) in virtual time, in one process, with
a state file saved every minute through the real Persistence path, for 20 minutes (past the
15-minute error_rate window). Prints RSS after each minute's save, the peak, and what one
series' detector state holds (a sys.getsizeof walk of 200 series, objects shared between
series counted once). No HTTP, no scheduler: bench/run.py's fleet row measures the whole
process.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry  # noqa: E402

from bench.fleet import fleet_config, fleet_probe  # noqa: E402
from monitor.app.assembly import build_monitor  # noqa: E402
from monitor.app.persist import BASELINE_EVERY_S, Persistence  # noqa: E402
from monitor.config.loader import load_config_text  # noqa: E402
from monitor.core.clock import ManualClock  # noqa: E402
from monitor.detect.series import SeriesState  # noqa: E402
from monitor.state.store import StateStore  # noqa: E402

INTERVAL = 60.0
MINUTES = 20
CHECKS = ("search", "recommendations")


def rss_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return -1


def deep_size(value: Any, seen: set[int]) -> int:
    """Bytes of `value` and what it holds, each object counted once across calls."""
    if id(value) in seen:
        return 0
    seen.add(id(value))
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in value.items())
    elif isinstance(value, tuple | list | set | frozenset):
        size += sum(deep_size(v, seen) for v in value)
    else:
        for cls in type(value).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if slot != "__weakref__" and hasattr(value, slot):
                    size += deep_size(getattr(value, slot), seen)
    return size


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    args = parser.parse_args()
    tenants = [f"t{i:05}" for i in range(args.tenants)]
    loaded = load_config_text(fleet_config(tenants), source="bench")
    clock = ManualClock(start=1_700_000_000.0)
    monitor = build_monitor(loaded, clock=clock, registry=CollectorRegistry(), route=lambda d: None)
    await monitor.refresh_tenants()
    with tempfile.TemporaryDirectory() as directory:
        store = StateStore.open(Path(directory) / "state.db")
        persistence = Persistence(store, monitor.hub, monitor.metrics, monitor.tenant_source)
        rng = random.Random(1)
        step = INTERVAL / (len(CHECKS) * len(tenants))
        trail: list[int] = []
        started = time.process_time()
        for _ in range(MINUTES):
            for tenant in tenants:
                for check in CHECKS:
                    clock.advance(step)
                    monitor.observe(fleet_probe(tenant, check, clock.time(), rng))
            # What the periodic save does, in this thread (save_async runs it in another).
            persistence._write_series(monitor.hub.memory().series, baseline_every=BASELINE_EVERY_S)
            trail.append(rss_mb())
        spent = time.process_time() - started
        store.close()
    probes = MINUTES * len(tenants) * len(CHECKS)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{len(tenants)} tenants x {len(CHECKS)} checks every {INTERVAL:g} s, {MINUTES} minutes")
    print("RSS after each minute's save (MB):", " ".join(map(str, trail)))
    print(f"peak RSS {peak} MB; CPU {spent / probes * 1e6:.1f} us per probe (saves included)")
    states = list(monitor.hub.memory().series.values())[:200]
    seen: set[int] = set()
    parts: dict[str, int] = {}
    for state in states:
        for name in SeriesState.__slots__:
            if name != "__weakref__":
                parts[name] = parts.get(name, 0) + deep_size(getattr(state, name), seen)
    print(f"detector state per series: {sum(parts.values()) / len(states):.0f} bytes")
    for name, size in sorted(parts.items(), key=lambda kv: -kv[1])[:5]:
        print(f"  {name:12} {size / len(states):6.0f}")
    await monitor.aclose()


if __name__ == "__main__":
    asyncio.run(main())
