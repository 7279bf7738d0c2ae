"""uvloop against the stdlib event loop, side by side in one run: two `recmon run` processes
probe the same sandbox at the same rate at the same time, one on each loop, and their CPU per
probe is read from /proc minute by minute (so the machine's noise falls on both alike).

    .venv/bin/pip install uvloop   # not a recmon dependency: see docs/BENCHMARKS.md
    .venv/bin/python bench/loops.py [--tenants 2500] [--interval 10] [--marks 6] [--every 20]
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # bench/run.py: the sandbox and recmon starters

# `python -c` with this runs recmon's command line on uvloop (asyncio.run takes the policy's
# loop).
ON_UVLOOP = (
    "import asyncio, sys, uvloop; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()); "
    "from monitor.cli import main; sys.argv[0] = 'recmon'; sys.exit(main())"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=2500)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--marks", type=int, default=6, help="measured periods")
    parser.add_argument("--every", type=float, default=20.0, help="seconds per period")
    args = parser.parse_args()
    try:
        import uvloop  # noqa: F401
    except ImportError:
        print("uvloop is not installed: .venv/bin/pip install uvloop", file=sys.stderr)
        return 2
    sandbox = bench.Sandbox(args.tenants)
    runs = []
    try:
        for loop in ("asyncio", "uvloop"):
            work = Path(tempfile.mkdtemp(prefix=f"recmon-loops-{loop}-"))
            on = ("-c", ON_UVLOOP) if loop == "uvloop" else ("-m", "monitor")
            process, port, results = bench._start_recmon(
                work / "recmon",
                sandbox,
                args.interval,
                "asyncio",
                None,
                0,
                1,
                command=(sys.executable, *on),
            )
            runs.append((loop, process, port, results))
        for _, _, port, _ in runs:
            bench.wait_http(f"http://127.0.0.1:{port}/readyz")
        time.sleep(args.interval + 5)  # every tenant scheduled, pools warm
        marks = []
        for i in range(args.marks + 1):
            marks.append((time.time(), [bench.cpu_seconds(p.pid) for _, p, _, _ in runs]))
            if i < args.marks:
                time.sleep(args.every)
    finally:
        for _, process, _, _ in runs:
            process.send_signal(signal.SIGTERM)
        for _, process, _, _ in runs:
            process.wait(timeout=60)
        sandbox.stop()
    medians = {}
    for k, (loop, _, _, results) in enumerate(runs):
        starts = [json.loads(line)["started_at"] for line in results.read_text().splitlines()]
        per = []
        for (t0, c0), (t1, c1) in itertools.pairwise(marks):
            probes = sum(1 for at in starts if t0 <= at < t1)
            per.append(1e6 * (c1[k] - c0[k]) / max(probes, 1))
        medians[loop] = statistics.median(per)
        figures = " ".join(f"{x:.0f}" for x in per)
        print(f"{loop:<8} us per probe: {figures}  median {medians[loop]:.0f}")
    print(f"uvloop / asyncio: {medians['uvloop'] / medians['asyncio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
