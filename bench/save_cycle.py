"""CPU of recmon's periodic state save at the fleet, windows full, split by thread: what runs
on the event loop (the snapshot, the history's changed rows) and what runs in the saving
thread (encoding and writing), with the real monitor, history recorder and Persistence.

    .venv/bin/python bench/save_cycle.py                # 10,000 tenants x 2 checks, ~4 minutes
    .venv/bin/python bench/save_cycle.py --tenants 1000

bench/fleet.py's fleet (every 60 s, 1% of probes failing) in virtual time: 16 minutes played
(every window full, a save a minute), then SAVES more minutes, each followed by one
`Persistence.save_async` as `recmon run` makes it (the write in a worker thread). Prints, per
save, the median CPU on the loop's thread and in the saving thread, the history recorder's
CPU per probe, and peak RSS; the saving thread's CPU also without the garbage collector's
collections that happened to run in it (see Collections). No HTTP: bench/run.py's fleet row
measures the whole process.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry  # noqa: E402

from bench.fleet import fleet_config, fleet_probe  # noqa: E402
from bench.memory import CHECKS, INTERVAL, rss_mb  # noqa: E402
from monitor.app import persist  # noqa: E402
from monitor.app.assembly import build_monitor  # noqa: E402
from monitor.app.history import HistoryRecorder  # noqa: E402
from monitor.app.persist import Persistence  # noqa: E402
from monitor.app.service import GC_THRESHOLDS  # noqa: E402
from monitor.config.loader import load_config_text  # noqa: E402
from monitor.core.clock import ManualClock  # noqa: E402
from monitor.state.store import StateStore  # noqa: E402

WARM_MINUTES = 16


class Parts:
    """CPU per named function, on whichever thread it runs (thread_time)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    def wrap(self, owner: object, name: str) -> None:
        function = getattr(owner, name)

        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.spent[name] = self.spent.get(name, 0.0) + time.thread_time() - started

        setattr(owner, name, timed)


class Collections:
    """CPU of the garbage collector's collections run on threads other than the main one. A
    gen-0 collection walks every young object still alive, at the fleet ~240,000 the
    detector made in the last minute: ~150 ms, due about once a minute whatever the save
    does, run by whichever thread's allocation crosses the threshold (often the saving
    thread's). Shown apart so a save's own CPU can be compared."""

    def __init__(self) -> None:
        self.spent = 0.0
        self._started = 0.0
        gc.callbacks.append(self._timed)

    def _timed(self, phase: str, info: dict[str, int]) -> None:
        if threading.current_thread() is threading.main_thread():
            return
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.spent += time.thread_time() - self._started


class ThreadClock:
    """CPU of the threads other than this one, from their thread_time, each read on the
    thread itself: wrapped around what asyncio.to_thread runs."""

    def __init__(self) -> None:
        self.spent = 0.0
        self._lock = threading.Lock()

    def wrap(self, function):  # type: ignore[no-untyped-def]
        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                with self._lock:
                    self.spent += time.thread_time() - started

        return timed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--saves", type=int, default=8)
    args = parser.parse_args()
    tenants = [f"t{i:05}" for i in range(args.tenants)]
    loaded = load_config_text(fleet_config(tenants), source="bench")
    clock = ManualClock(start=1_700_000_000.0)
    history = HistoryRecorder(clock)
    monitor = build_monitor(
        loaded,
        clock=clock,
        registry=CollectorRegistry(),
        route=history.routed(lambda d: None),
        result_listeners=[history.observe],
    )
    await monitor.refresh_tenants()
    # The garbage collector as `recmon run` sets it once its tenants are known.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    threads = ThreadClock()
    collections = Collections()
    real_to_thread = asyncio.to_thread
    asyncio.to_thread = lambda f, *a, **k: real_to_thread(threads.wrap(f), *a, **k)  # type: ignore[assignment]
    parts = Parts()
    parts.wrap(persist, "series_changes")
    for name in ("write_series", "write_history", "put"):
        parts.wrap(StateStore, name)
    measured: dict[str, float] = {}
    loop_cpu: list[float] = []
    thread_cpu: list[float] = []
    thread_gc: list[float] = []
    observe_cpu = 0.0
    observed = 0
    with tempfile.TemporaryDirectory() as directory:
        store = StateStore.open(Path(directory) / "state.db")
        persistence = Persistence(
            store, monitor.hub, monitor.metrics, monitor.tenant_source, history
        )
        rng = random.Random(1)
        step = INTERVAL / (len(CHECKS) * len(tenants))
        for minute in range(WARM_MINUTES + args.saves):
            for tenant in tenants:
                for check in CHECKS:
                    clock.advance(step)
                    result = fleet_probe(tenant, check, clock.time(), rng)
                    monitor.observe(result)
                    if minute >= WARM_MINUTES:
                        started = time.thread_time()
                        history.observe(result)  # again, timed alone (a second count of it)
                        observe_cpu += time.thread_time() - started
                        observed += 1
            if minute == WARM_MINUTES:
                parts.spent.clear()
            before_loop, before_thread = time.thread_time(), threads.spent
            before_gc = collections.spent
            await persistence.save_async()
            if minute >= WARM_MINUTES:
                loop_cpu.append(time.thread_time() - before_loop)
                thread_cpu.append(threads.spent - before_thread)
                thread_gc.append(collections.spent - before_gc)
        measured = dict(parts.spent)
        size = (Path(directory) / "state.db").stat().st_size / 1e6
        store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{len(tenants)} tenants x {len(CHECKS)} checks every {INTERVAL:g} s, windows full")
    print(
        f"save: loop {statistics.median(loop_cpu) * 1000:.0f} ms + thread "
        f"{statistics.median(thread_cpu) * 1000:.0f} ms CPU (medians of {len(loop_cpu)}; "
        f"thread: {' '.join(f'{t * 1000:.0f}' for t in thread_cpu)})"
    )
    own = [t - c for t, c in zip(thread_cpu, thread_gc, strict=True)]
    print(
        f"  thread without the collector's collections: {statistics.median(own) * 1000:.0f} ms "
        f"(collections in the thread: {' '.join(f'{c * 1000:.0f}' for c in thread_gc)})"
    )
    print(
        "  of which (ms per save): "
        + ", ".join(f"{k} {v / len(loop_cpu) * 1000:.0f}" for k, v in measured.items())
    )
    print(f"history observe: {observe_cpu / observed * 1e6:.2f} us per probe")
    print(f"state file {size:.1f} MB, peak RSS {peak} MB, RSS now {rss_mb()} MB")
    await monitor.aclose()


if __name__ == "__main__":
    asyncio.run(main())
