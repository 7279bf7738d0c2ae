"""The event loop under load: wake-ups, garbage-collector pauses and withheld latencies.

Runs one `recmon run` from a source tree (a directory holding a `monitor` package; . for this
checkout) against the sandbox at a given rate, with two counters added from outside recmon:
every `selector.select` call (one a loop iteration: how often the loop wakes) and every
garbage collection (`gc.callbacks`: generation and pause). After a warm-up, over the measured
window it prints CPU per probe, loop wake-ups per second and per probe (and of those, the polls
that could block, no callback ready, and those a timer alone ended: at 1,000/s on a 2-vCPU VM
1,400 polls a second, 617 that could block, 50 ended by a timer), the collections per
generation with their median and longest pause, the share of ok latencies withheld
(measured while the loop ran late), the kernel's share of the CPU, the share of threads other
than the loop's (the state saves) and new connections per probe. Several trees: run one after
another, in the order given.

    .venv/bin/python bench/loopstats.py . /tmp/main [--tenants 5000] [--interval 10]
        [--warm 30] [--window 60]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # bench/run.py: the sandbox and recmon starters

# Runs recmon's command line from the tree named in it, counting loop wake-ups and collections
# into a JSON file (rewritten once a second by a thread: nothing added to the loop itself).
FROM_TREE = """
import sys, gc, json, threading, time, selectors
sys.path.insert(0, {tree!r})
import monitor
assert monitor.__file__.startswith({tree!r}), monitor.__file__
stats = {{"selects": 0, "events": 0, "blocking": 0, "timer_only": 0, "gc": [], "connects": 0}}
from monitor.probing.transport.connection import Connection
made = Connection.connection_made
def counting_made(self, transport):
    stats["connects"] += 1
    made(self, transport)
Connection.connection_made = counting_made
select = selectors.EpollSelector.select
def counting(self, timeout=None):
    ready = select(self, timeout)
    stats["selects"] += 1
    stats["events"] += len(ready)
    if timeout is None or timeout > 0:  # may sleep: the loop had no callback ready
        stats["blocking"] += 1
        stats["timer_only"] += not ready
    return ready
selectors.EpollSelector.select = counting
began = [0.0, 0.0]
def on_gc(phase, info):
    if phase == "start":
        began[:] = time.perf_counter(), time.thread_time()
    else:
        stats["gc"].append((
            time.time(), info["generation"], time.perf_counter() - began[0],
            time.thread_time() - began[1], info["collected"],
        ))
gc.callbacks.append(on_gc)
def dump():
    while True:
        time.sleep(1.0)
        snapshot = dict(stats, gc=list(stats["gc"]), at=time.time())
        with open({out!r} + ".tmp", "w") as f:
            json.dump(snapshot, f)
        import os
        os.replace({out!r} + ".tmp", {out!r})
threading.Thread(target=dump, daemon=True).start()
from monitor.cli import main
sys.argv[0] = "recmon"
sys.exit(main())
"""


def measure(tree: str, tenants: int, interval: float, warm: float, window: float) -> dict:
    sandbox = bench.Sandbox(tenants)
    work = Path(tempfile.mkdtemp(prefix="recmon-loopstats-"))
    out = str(work / "loopstats.json")
    process, port, results = bench._start_recmon(
        work / "recmon",
        sandbox,
        interval,
        "asyncio",
        None,
        0,
        1,
        command=(sys.executable, "-c", FROM_TREE.format(tree=tree, out=out)),
    )
    try:
        bench.wait_http(f"http://127.0.0.1:{port}/readyz")
        time.sleep(max(interval + 2, warm))
        before = json.loads(Path(out).read_text())
        t0, c0 = time.time(), bench.cpu_seconds(process.pid)
        s0 = bench.cpu_seconds(process.pid, system_only=True)
        m0 = bench.cpu_seconds(process.pid, thread=process.pid)
        time.sleep(window)
        after = json.loads(Path(out).read_text())
        t1, c1 = time.time(), bench.cpu_seconds(process.pid)
        s1 = bench.cpu_seconds(process.pid, system_only=True)
        m1 = bench.cpu_seconds(process.pid, thread=process.pid)
        rss = bench.peak_rss_mb(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        sandbox.stop()
    probes = trusted = withheld = 0
    for entry in bench.results_between(results, t0, t1):
        probes += 1
        if entry["outcome"] == "ok":
            if entry["trusted"]:
                trusted += 1
            else:
                withheld += 1
    span = after["at"] - before["at"]
    pauses: dict[int, list[float]] = {}
    cpu: dict[int, list[float]] = {}
    collected: dict[int, int] = {}
    for at, generation, pause, used, freed in after["gc"]:
        if t0 <= at < t1:
            pauses.setdefault(generation, []).append(pause * 1000)
            cpu.setdefault(generation, []).append(used * 1000)
            collected[generation] = collected.get(generation, 0) + freed
    return {
        "tree": tree,
        "probes_per_s": probes / (t1 - t0),
        "cpu_us_per_probe": 1e6 * (c1 - c0) / max(probes, 1),
        "cores": (c1 - c0) / (t1 - t0),
        "system_share": (s1 - s0) / max(c1 - c0, 1e-9),
        "threads_share": 1 - (m1 - m0) / max(c1 - c0, 1e-9),
        "connects_per_probe": (after["connects"] - before["connects"]) / max(probes, 1),
        "wakeups_per_s": (after["selects"] - before["selects"]) / span,
        "events_per_wakeup": (after["events"] - before["events"])
        / max(after["selects"] - before["selects"], 1),
        "blocking_per_s": (after["blocking"] - before["blocking"]) / span,
        "timer_only_per_s": (after["timer_only"] - before["timer_only"]) / span,
        "withheld_share": withheld / max(withheld + trusted, 1),
        "gc": {
            generation: (
                len(p),
                statistics.median(p),
                max(p),
                sum(cpu[generation]) / len(p),
                collected[generation] // len(p),
            )
            for generation, p in sorted(pauses.items())
        },
        "rss_mb": rss,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", help="directories holding a `monitor` package")
    parser.add_argument("--tenants", type=int, default=5000, help="x 2 checks")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--warm", type=float, default=30.0, help="seconds before measuring")
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured")
    args = parser.parse_args()
    for tree in args.trees:
        row = measure(
            str(Path(tree).resolve()), args.tenants, args.interval, args.warm, args.window
        )
        gcs = "  ".join(
            f"gen{g}: {n} x median {m:.1f} ms, max {x:.1f} ms (CPU {c:.1f} ms, {f} freed each)"
            for g, (n, m, x, c, f) in row["gc"].items()
        )
        print(
            f"{row['tree']}: {row['probes_per_s']:.0f} probes/s, "
            f"{row['cpu_us_per_probe']:.0f} us CPU per probe ({row['cores']:.3f} cores), "
            f"{row['wakeups_per_s']:.0f} loop wake-ups/s "
            f"({row['wakeups_per_s'] / max(row['probes_per_s'], 1):.2f} per probe, "
            f"{row['events_per_wakeup']:.2f} events each; "
            f"{row['wakeups_per_s'] - row['blocking_per_s']:.0f}/s with callbacks ready "
            f"(timeout 0), {row['blocking_per_s']:.0f}/s that could block, "
            f"{row['timer_only_per_s']:.0f}/s of those ended by a timer alone), "
            f"withheld {100 * row['withheld_share']:.1f}%, peak RSS {row['rss_mb']:.0f} MB, "
            f"kernel {100 * row['system_share']:.0f}% of the CPU, threads other than the "
            f"loop's (state saves) {100 * row['threads_share']:.0f}%, "
            f"{row['connects_per_probe']:.3f} new connections per probe\n"
            f"    GC {gcs or 'none'}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
