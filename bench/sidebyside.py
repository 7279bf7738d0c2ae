"""Two recmon source trees side by side: CPU per probe of one change against another in one run.

Two `recmon run` processes, one from each tree (a directory holding a `monitor` package, e.g.
`git archive main monitor | tar -x -C /tmp/main`), probe one sandbox at the same rate at the
same time, and each one's CPU per probe is read from /proc period by period, so the machine's
noise falls on both alike. The pairing runs twice, in both orders (the second process started
read about 9% cheaper in an A/A run), and the ratio reported is the geometric mean of the two
orders' medians.

    .venv/bin/python bench/sidebyside.py /tmp/main . [--tenants 2500] [--periods 20] [--every 15]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # bench/run.py: the sandbox and recmon starters

# `python -c` with this runs recmon's command line from the tree named in it.
FROM_TREE = (
    "import sys; sys.path.insert(0, {tree!r}); import monitor; "
    "assert monitor.__file__.startswith({tree!r}), monitor.__file__; "
    "from monitor.cli import main; sys.argv[0] = 'recmon'; sys.exit(main())"
)


def recmon_from_tree(
    work: Path, sandbox: bench.Sandbox, interval: float, tree: str
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """bench/run.py's recmon (own transport, default rules), started from `tree`'s monitor/."""
    command = (sys.executable, "-c", FROM_TREE.format(tree=tree))
    return bench._start_recmon(work, sandbox, interval, "asyncio", None, 0, 1, command=command)


def pairing(
    trees: list[str], tenants: int, interval: float, periods: int, every: float
) -> list[list[float]]:
    """CPU microseconds per probe of each tree's process, per period."""
    sandbox = bench.Sandbox(tenants)
    runs = []
    try:
        for tree in trees:
            work = Path(tempfile.mkdtemp(prefix="recmon-sidebyside-"))
            process, port, results = recmon_from_tree(work / "recmon", sandbox, interval, tree)
            runs.append((process, port, results))
        for _, port, _ in runs:
            bench.wait_http(f"http://127.0.0.1:{port}/readyz")
        time.sleep(interval + 5)  # every tenant scheduled, pools warm
        marks = []
        for i in range(periods + 1):
            marks.append((time.time(), [bench.cpu_seconds(p.pid) for p, _, _ in runs]))
            if i < periods:
                time.sleep(every)
    finally:
        for process, _, _ in runs:
            process.send_signal(signal.SIGTERM)
        for process, _, _ in runs:
            process.wait(timeout=60)
        sandbox.stop()
    figures = []
    for k, (_, _, results) in enumerate(runs):
        starts = [json.loads(line)["started_at"] for line in results.read_text().splitlines()]
        per = []
        for (t0, c0), (t1, c1) in itertools.pairwise(marks):
            probes = sum(1 for at in starts if t0 <= at < t1)
            per.append(1e6 * (c1[k] - c0[k]) / max(probes, 1))
        figures.append(per)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="a directory holding the `monitor` package to compare")
    parser.add_argument("after", help="the other one (. for this checkout)")
    parser.add_argument("--tenants", type=int, default=2500, help="each process probes all")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--periods", type=int, default=20, help="measured periods per order")
    parser.add_argument("--every", type=float, default=15.0, help="seconds per period")
    args = parser.parse_args()
    before, after = (str(Path(tree).resolve()) for tree in (args.before, args.after))
    ratios = []
    for order in ((before, after), (after, before)):
        figures = pairing(list(order), args.tenants, args.interval, args.periods, args.every)
        for tree, per in zip(order, figures, strict=True):
            shown = " ".join(f"{x:.0f}" for x in per)
            print(f"{tree:<40} us per probe: {shown}  median {statistics.median(per):.0f}")
        mine = dict(zip(order, figures, strict=True))
        ratio = statistics.median(a / b for a, b in zip(mine[after], mine[before], strict=True))
        print(f"after / before, this order: {ratio:.3f}")
        ratios.append(ratio)
    print(f"after / before, both orders (geometric mean): {math.sqrt(ratios[0] * ratios[1]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
