"""Where a real fleet's memory goes: `recmon run` under tracemalloc, snapshots at set times.

    .venv/bin/python bench/fleet_tracemalloc.py                   # 10,000 x 2 / 60 s, at 120,300 s
    .venv/bin/python bench/fleet_tracemalloc.py --at 300,600 --tenants 3000 --depth 6

Starts the sandbox and `recmon run` as bench/run.py's fleet row does, but through this file
(`--child`), which starts tracemalloc (`--depth` frames per trace) before importing recmon and
then runs monitor.cli.main. At each time in `--at` (seconds after start) the child writes a
snapshot and its RSS; the parent prints, per snapshot: RSS, what tracemalloc traced and its own
overhead (the rest is the interpreter, the allocator's free lists and fragmentation, and
memory allocated outside Python's allocators), then the top files and lines, and the top
tracebacks. Tracing slows the process (~2x CPU) and its RSS includes tracemalloc's own tables:
read the shares, not the CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def _malloc_stats(path: Path) -> None:
    """sys._debugmallocstats() (pymalloc's arenas, pools and blocks in use and free), which
    writes to the C stderr, into a file."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "w") as file:
        os.dup2(file.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def child(out: Path, at: list[float], depth: int, argv: list[str]) -> int:
    start = time.monotonic()
    if depth == 0:  # no tracing: RSS and pymalloc's own statistics only

        def statistics() -> None:
            for when in at:
                time.sleep(max(0.0, start + when - time.monotonic()))
                (out / f"rss-{int(when)}.txt").write_text(f"{_rss_kb()}\n")
                _malloc_stats(out / f"malloc-{int(when)}.txt")

        threading.Thread(target=statistics, daemon=True).start()
        sys.path.insert(0, str(ROOT))
        from monitor.cli import main as recmon

        return recmon(argv)
    tracemalloc.start(depth)

    def snapshots() -> None:
        for when in at:
            time.sleep(max(0.0, start + when - time.monotonic()))
            rss = _rss_kb()
            snapshot = tracemalloc.take_snapshot()
            snapshot.dump(str(out / f"snap-{int(when)}.pickle"))
            overhead = tracemalloc.get_tracemalloc_memory()
            traced, peak = tracemalloc.get_traced_memory()
            (out / f"snap-{int(when)}.txt").write_text(f"{rss} {traced} {peak} {overhead}\n")

    def timeline() -> None:
        # Traced memory and its peak over each 5 s (tracemalloc's peak reset each time), and
        # RSS: when a transient peak happens (what RSS keeps afterwards).
        with open(out / "timeline.txt", "w") as log:
            while True:
                time.sleep(5)
                traced, peak = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
                log.write(
                    f"{time.monotonic() - start:6.0f} s traced {traced / 2**20:6.1f} MB "
                    f"peak {peak / 2**20:6.1f} MB rss {_rss_kb() / 1024:6.0f} MB\n"
                )
                log.flush()

    threading.Thread(target=snapshots, daemon=True).start()
    threading.Thread(target=timeline, daemon=True).start()
    sys.path.insert(0, str(ROOT))
    from monitor.cli import main

    return main(argv)


def report(out: Path, when: int, top: int) -> None:
    rss_kb, traced, peak, overhead = map(int, (out / f"snap-{when}.txt").read_text().split())
    mb = 1024 * 1024
    print(
        f"\n=== at {when} s: RSS {rss_kb / 1024:.0f} MB, traced {traced / mb:.1f} MB "
        f"(peak {peak / mb:.1f}), tracemalloc's own {overhead / mb:.1f} MB, "
        f"untraced rest {(rss_kb * 1024 - traced - overhead) / mb:.1f} MB"
    )
    snapshot = tracemalloc.Snapshot.load(str(out / f"snap-{when}.pickle"))
    snapshot = snapshot.filter_traces(
        [
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
        ]
    )
    for key in ("filename", "lineno"):
        print(f"--- top {top} by {key}")
        for stat in snapshot.statistics(key)[:top]:
            frame = stat.traceback[0]
            name = frame.filename.replace(str(ROOT) + "/", "")
            line = frame.lineno if key == "lineno" else ""
            print(f"{stat.size / mb:8.2f} MB {stat.count:9d}  {name}:{line}")
    print(f"--- top {top // 2} tracebacks")
    for stat in snapshot.statistics("traceback")[: top // 2]:
        print(f"{stat.size / mb:8.2f} MB {stat.count:9d}")
        for line in stat.traceback.format(most_recent_first=True):
            print("    " + line.replace(str(ROOT) + "/", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--at", default="120,300", help="seconds after start, comma-separated")
    parser.add_argument(
        "--depth", type=int, default=4, help="frames per trace; 0: no tracing, pymalloc's stats"
    )
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    at = [float(x) for x in args.at.split(",")]
    if args.child is not None:
        sys.exit(child(args.child, at, args.depth, rest))
    sys.path.insert(0, str(ROOT / "bench"))
    import run as bench_run

    out = args.out or Path(tempfile.mkdtemp(prefix="tracemalloc-"))
    out.mkdir(parents=True, exist_ok=True)
    command = (
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        str(out),
        "--at",
        args.at,
        "--depth",
        str(args.depth),
    )
    sandbox = bench_run.Sandbox(args.tenants)
    process, _port, _ = bench_run._start_recmon(
        out / "run", sandbox, args.interval, "asyncio", None, 0, 1, command=command
    )
    try:
        # Not /readyz: a traced process may run too late to call itself ready.
        last = out / (f"snap-{int(at[-1])}.txt" if args.depth else f"malloc-{int(at[-1])}.txt")
        while not last.exists():
            if process.poll() is not None:
                raise SystemExit(f"recmon exited: {(out / 'run' / 'recmon.log').read_text()}")
            time.sleep(2)
        time.sleep(1)
        print(f"snapshots in {out}; peak RSS {bench_run.peak_rss_mb(process.pid):.0f} MB")
    finally:
        process.terminate()
        process.wait(60)
        sandbox.stop()
    for when in at:
        if args.depth:
            report(out, int(when), args.top)
        else:
            rss = int((out / f"rss-{int(when)}.txt").read_text()) / 1024
            print(f"=== at {int(when)} s: RSS {rss:.0f} MB; pymalloc: out/malloc-{int(when)}.txt")
            for line in (out / f"malloc-{int(when)}.txt").read_text().splitlines():
                if "arena" in line or "Total" in line or "bytes in" in line:
                    print("   ", line)


if __name__ == "__main__":
    main()
