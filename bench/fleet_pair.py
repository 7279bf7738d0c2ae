"""Two source trees' fleets side by side on one sandbox: RSS (now and peak) and CPU of both
sampled together, so a shared machine's load falls on both alike.

    .venv/bin/python bench/fleet_pair.py /tmp/main . [--seconds 1000] [--tenants 10000]
        [--interval 60]

Each tree is a directory holding a `monitor` package (e.g. `git archive main monitor | tar -x
-C /tmp/main`); both `recmon run` processes probe all tenants x 2 checks (bench/run.py's fleet)
from the same start. Every 10 s a line: seconds since both were ready, then per tree VmRSS and
VmHWM (MB), each minute the cores each used and the share of ok probes whose latency each
withheld (a change that saves CPU by batching work can cost measurement trust), and the load
average. Read the pair at the same time, not one run against another: a loop that falls behind
holds more in flight and its RSS grows with it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # bench/run.py: the sandbox and recmon starters
from sidebyside import FROM_TREE


def memory(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) / 1024
    return found["VmRSS"], found["VmHWM"]


def withheld(results: Path, start: float, end: float) -> float:
    """The share of ok probes between two wall times whose latency recmon withheld."""
    ok = [e for e in bench.results_between(results, start, end) if e["outcome"] == "ok"]
    return sum(1 for e in ok if not e["trusted"]) / max(len(ok), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs=2, help="directories holding a `monitor` package")
    parser.add_argument("--seconds", type=float, default=1000.0)
    parser.add_argument("--tenants", type=int, default=10_000, help="x 2 checks")
    parser.add_argument("--interval", type=float, default=60.0)
    args = parser.parse_args()
    sandbox = bench.Sandbox(args.tenants)
    runs = []
    try:
        for tree in args.trees:
            work = Path(tempfile.mkdtemp(prefix="recmon-fleet-pair-"))
            process, port, results = bench._start_recmon(
                work / "recmon",
                sandbox,
                args.interval,
                "asyncio",
                None,
                0,
                1,
                command=(sys.executable, "-c", FROM_TREE.format(tree=os.path.abspath(tree))),
            )
            runs.append((process, port, results))
        for _, port, _ in runs:
            bench.wait_http(f"http://127.0.0.1:{port}/readyz")
        print("trees:", " | ".join(args.trees), flush=True)
        start = last_at = time.time()
        last = [bench.cpu_seconds(process.pid) for process, _, _ in runs]
        while time.time() - start < args.seconds:
            time.sleep(10)
            now = time.time()
            line = f"{now - start:6.0f} s"
            for process, _, _ in runs:
                rss, peak = memory(process.pid)
                line += f" | rss {rss:6.1f} peak {peak:6.1f}"
            if now - last_at >= 60:
                cpu = [bench.cpu_seconds(process.pid) for process, _, _ in runs]
                used = [(c - b) / (now - last_at) for c, b in zip(cpu, last, strict=True)]
                line += " | cores " + " ".join(f"{u:.3f}" for u in used)
                line += " | withheld " + " ".join(
                    f"{withheld(results, last_at, now):.1%}" for _, _, results in runs
                )
                last, last_at = cpu, now
            print(f"{line} | load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        for process, _, _ in runs:
            process.send_signal(signal.SIGTERM)
        for process, _, _ in runs:
            try:
                process.wait(timeout=120)
            except Exception:
                process.kill()
        sandbox.stop()


if __name__ == "__main__":
    main()
