"""What a quiet recmon costs: an idle sidecar and a small fleet, two source trees alternated.

A sidecar probing a few tenants spends most of its time waiting, and what it pays then is the
event loop's own wake-ups (the loop-lag tick above all). Two configurations against one
sandbox answering in 60 ms, default rules, recmon's own transport, as `bench/run.py` starts it
(its results log written):

- idle: 1 tenant × 2 checks every 60 s (a probe pair a minute: nearly always idle);
- small: 6 tenants × 2 checks every 1 s (12 probes a second, spread over it).

Each tree's process runs alone (one tree after the other, `--rounds` times in turn), and its
share of a core is read from /proc over `--seconds` after a 5 s settling.

    .venv/bin/python bench/idle.py /tmp/main . [--rounds 3] [--seconds 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # bench/run.py: the sandbox and process helpers
from sidebyside import recmon_from_tree

CONFIGS = {"idle": (1, 60), "small": (6, 1)}  # name: (tenants, interval in seconds)


def core_share(tree: str, tenants: int, interval: float, seconds: float) -> float:
    """One recmon from `tree` probing `tenants` every `interval`: its CPU ÷ wall time."""
    sandbox = bench.Sandbox(tenants)
    work = Path(tempfile.mkdtemp(prefix="recmon-idle-"))
    process, port, _ = recmon_from_tree(work / "recmon", sandbox, interval, tree)
    try:
        bench.wait_http(f"http://127.0.0.1:{port}/readyz")
        time.sleep(5)
        cpu0, wall0 = bench.cpu_seconds(process.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, wall1 = bench.cpu_seconds(process.pid), time.monotonic()
    finally:
        bench.stop_all([process], within=60)
        sandbox.stop()
    return (cpu1 - cpu0) / (wall1 - wall0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="a directory holding the `monitor` package to compare")
    parser.add_argument("after", help="the other one (. for this checkout)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    trees = [str(Path(tree).resolve()) for tree in (args.before, args.after)]
    for name, (tenants, interval) in CONFIGS.items():
        shares: dict[str, list[float]] = {tree: [] for tree in trees}
        for _ in range(args.rounds):
            for tree in trees:
                shares[tree].append(core_share(tree, tenants, interval, args.seconds))
        for tree in trees:
            shown = " ".join(f"{100 * s:.2f}" for s in shares[tree])
            median = statistics.median(shares[tree])
            print(f"{name:<6} {tree:<40} % of a core: {shown}  median {100 * median:.2f}")
        ratio = statistics.median(shares[trees[1]]) / statistics.median(shares[trees[0]])
        print(f"{name:<6} after / before (medians): {ratio:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
