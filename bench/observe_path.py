"""CPU per probe of what follows a probe (ProbeLedger.observe), two source trees alternated.

    .venv/bin/python bench/observe_path.py /tmp/main .          # main against this tree
    .venv/bin/python bench/observe_path.py . --profile out.raw  # py-spy of one run (raw)
    .venv/bin/python bench/observe_path.py /tmp/main . --interval 10  # 1,000/s's window sizes

bench/fleet.py's fleet (1,000 tenants x 2 checks every 60 s or --interval, 1% failing) in
virtual time, with what bench/run.py's sandbox answers besides: recommendations carry item ids
and a request digest, so the content judgement runs as in a real fleet. Each run plays 20
minutes (every window full), then measures CPU over 5 more through the ledger (redactor,
detector, content judgement, fleet evidence, backend tally, SLO watch, metrics, history),
each tree in its own process, trees alternated (A B A B ...); prints each tree's median and
the ratio to the first tree's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

TENANTS = 1_000
INTERVAL = 60.0
WARM_S = 20 * 60
MEASURED_S = 5 * 60


async def one_run(tenant_count: int, memory: bool = False, interval: float = INTERVAL) -> float:
    """CPU seconds per probe; with `memory`, bytes per series that the observing keeps
    (tracemalloc: what the warm-up and one /metrics render added to the built monitor).
    The probes in flight are not counted: a minute's are dropped before the next is built."""
    import gc
    import tracemalloc

    if memory:
        tracemalloc.start(1)
    from prometheus_client import CollectorRegistry

    import bench.fleet
    from bench.fleet import fleet_config, fleet_probe

    # Read by fleet_config (the other tree's bench/fleet.py may take no interval argument).
    bench.fleet.INTERVAL = interval
    from monitor.app.assembly import build_monitor
    from monitor.config.loader import load_config_text
    from monitor.core.clock import ManualClock
    from monitor.core.results import ProbeResult

    tenants = [f"t{i:05}" for i in range(tenant_count)]
    loaded = load_config_text(fleet_config(tenants), source="bench")
    clock = ManualClock(start=1_700_000_000.0)
    monitor = build_monitor(loaded, clock=clock, registry=CollectorRegistry(), route=lambda d: None)
    await monitor.refresh_tenants()
    rng = random.Random(1)
    step = interval / (2 * len(tenants))
    asked = {t: f"{hash(t) & 0xFFFFFFFF:08x}" for t in tenants}

    def probe(tenant: str, check: str, at: float) -> ProbeResult:
        result = fleet_probe(tenant, check, at, rng)
        if result.items and check == "recommendations":
            # As the sandbox answers: the tenant's own items, a fresh tuple of fresh strings.
            ids = tuple(f"{tenant}-p{i:02}" for i in range(result.items))
            fields = {f: getattr(result, f) for f in result.__dataclass_fields__}
            result = ProbeResult(**{**fields, "item_ids": ids, "asked": asked[tenant]})
        return result

    def play(seconds: float) -> tuple[int, float]:
        """Each minute's probes built first, then observed: CPU of the observing alone."""
        probes, spent = 0, 0.0
        for _ in range(round(seconds / interval)):
            now = clock.time()
            minute = []
            for tenant in tenants:
                for check in ("search", "recommendations"):
                    now += step
                    minute.append(probe(tenant, check, now))
            start = time.process_time()
            for result in minute:
                clock.advance(step)
                monitor.observe(result)
            spent += time.process_time() - start
            probes += len(minute)
        return probes, spent

    if memory:
        gc.collect()
        built = tracemalloc.take_snapshot()  # the monitor, its configuration, the imports
        play(WARM_S)
        monitor.metrics.render()
        gc.collect()
        grown = tracemalloc.take_snapshot().compare_to(built, "filename")
        kept = sum(stat.size_diff for stat in grown)
        series = 2 * len(tenants)
        for stat in grown[:12]:
            name = stat.traceback[0].filename.split("/monitor/")[-1]
            print(f"  {stat.size_diff / series:6.0f} B/series  {name}", file=sys.stderr)
        await monitor.aclose()
        return kept / series
    play(WARM_S)
    probes, spent = play(MEASURED_S)
    await monitor.aclose()
    return spent / probes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tenants", type=int, default=TENANTS)
    parser.add_argument(
        "--interval", type=float, default=INTERVAL, help="seconds (10: 1,000/s's window sizes)"
    )
    parser.add_argument("--profile", type=Path, default=None, help="py-spy raw output")
    parser.add_argument(
        "--memory", action="store_true", help="bytes kept per series instead of CPU per probe"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tree = str(args.trees[0].resolve())
        sys.path[:0] = [tree, str(Path(__file__).resolve().parent.parent)]
        import bench.fleet  # noqa: F401  (imports monitor: from the tree asked for)
        import monitor

        assert monitor.__file__.startswith(tree + "/"), (monitor.__file__, tree)
        print(asyncio.run(one_run(args.tenants, args.memory, args.interval)))
        return
    me = os.path.abspath(__file__)
    runs: dict[Path, list[float]] = {tree: [] for tree in args.trees}
    for round_ in range(args.rounds):
        for tree in args.trees:
            command = [sys.executable, me, str(tree.resolve()), "--child"]
            command += ["--tenants", str(args.tenants), "--interval", str(args.interval)]
            command += ["--memory"] if args.memory else []
            if args.profile is not None:
                spy = Path(sys.executable).parent / "py-spy"
                command = [str(spy), "record", "-r", "200", "-f", "raw", "-o", str(args.profile),
                           "--", *command]  # fmt: skip
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            out = done.stdout
            if args.memory:
                print(f"{tree}:\n{done.stderr}", end="")
            runs[tree].append(float(next(w for w in out.split() if w[:1].isdigit() and "." in w)))
            unit = (1, "bytes/series") if args.memory else (1e6, "us/probe")
            print(
                f"round {round_ + 1} {tree}: {runs[tree][-1] * unit[0]:.1f} {unit[1]}", flush=True
            )
        if args.profile is not None:
            return
    first = statistics.median(runs[args.trees[0]])
    for tree, values in runs.items():
        median = statistics.median(values)
        unit = (1, "bytes/series") if args.memory else (1e6, "us/probe")
        print(f"{tree}: median {median * unit[0]:.1f} {unit[1]}, {median / first:.3f} of the first")


if __name__ == "__main__":
    main()
