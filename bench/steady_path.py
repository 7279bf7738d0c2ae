"""bench/run.py --steady in virtual time: where a probe's cost grows as the windows fill.

    .venv/bin/python bench/steady_path.py             # both rows, 17 virtual minutes each
    .venv/bin/python bench/steady_path.py --minutes 17 --rows 1s

The two steady-state configurations of bench/run.py (50 tenants x 2 checks every 1 s, and
3,000 x 2 every 60 s: 100 probes/s each, default rules), built as `recmon run` builds them
(app.assembly.assemble with a state file, the history recorder and the persistence) on a
ManualClock. Every virtual second: that second's probes (answers as the sandbox gives them:
~60 ms, 5 items) through Monitor.observe, the hub's ticks, and every 60 s a save as the
running process makes it (Persistence.save_async). CPU (process time, the save's thread
included) per probe, split into observing, ticks and saves, in the first measured minute
(as bench/run.py's: from 62 s) and in minute N. No HTTP, no event loop of probes: what is
left is the work after a probe and the process's per-minute work, without the machine's
noise between two minutes of wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.app.assembly import assemble  # noqa: E402
from monitor.app.history import HistoryRecorder  # noqa: E402
from monitor.app.persist import SAVE_EVERY_S, Persistence  # noqa: E402
from monitor.app.service import GC_THRESHOLDS  # noqa: E402
from monitor.config.loader import load_config_text  # noqa: E402
from monitor.core.clock import ManualClock  # noqa: E402
from monitor.core.results import Outcome, ProbeResult  # noqa: E402
from monitor.core.tenancy import Shard  # noqa: E402
from monitor.state.store import StateStore  # noqa: E402

ROWS = {"1s": (50, 1.0), "60s": (3000, 60.0)}


def config(tenants: list[str], interval: float) -> str:
    return f"""
defaults: {{interval: {interval:g}s, timeout: 5s}}
targets:
  sandbox: {{base_url: "http://sandbox.test"}}
tenants:
  static: [{", ".join(tenants)}]
checks:
  search:
    target: sandbox
    request: {{path: "/v1/{{tenant}}/search"}}
    expect: {{items: "$.results"}}
  recommendations:
    target: sandbox
    request: {{path: "/v1/{{tenant}}/recommendations"}}
    expect: {{items: "$.recommendations"}}
"""


async def one_row(tenant_count: int, interval: float, minutes: int) -> list[tuple[int, dict]]:
    """Per minute (from 62 s on): probes and CPU seconds spent observing, ticking, saving."""
    tenants = [f"tenant-{i:04}" for i in range(tenant_count)]
    loaded = load_config_text(config(tenants, interval), source="bench")
    clock = ManualClock(start=1_700_000_000.0)
    work = Path(tempfile.mkdtemp(prefix="steady-path-"))
    store = StateStore.open(work / "state.db")
    history = HistoryRecorder(clock)
    monitor, _ = assemble(loaded, store, clock=clock, shard=Shard(), history=history)
    persistence = Persistence(store, monitor.hub, monitor.metrics, monitor.tenant_source, history)
    persistence.restore(counters=False)
    await monitor.refresh_tenants()
    # As the running process does once its tenants are in (Monitor._refresh_tenants_forever).
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    rng = random.Random(1)
    series = [(t, c) for t in tenants for c in ("search", "recommendations")]
    per_second = round(len(series) / interval)
    ids = {t: tuple(f"{t}-p{i:02}" for i in range(5)) for t in tenants}
    tick_s = monitor.hub.tick_s
    next_tick, next_save = tick_s, SAVE_EVERY_S
    spent = {"observe": 0.0, "tick": 0.0, "save": 0.0}
    probes = 0
    marks: list[tuple[int, dict]] = []
    cursor = 0
    for second in range(62 + 60 * minutes):
        if second >= 62 and (second - 62) % 60 == 0:
            marks.append((probes, dict(spent)))
        batch = []
        for i in range(per_second):
            tenant, check = series[cursor % len(series)]
            cursor += 1
            at = clock.time() + i / per_second
            batch.append(
                ProbeResult(
                    tenant,
                    check,
                    Outcome.OK,
                    rng.gauss(0.060, 0.003),
                    at,
                    status=200,
                    items=5,
                    target="sandbox",
                    item_ids=ids[tenant] if check == "recommendations" else (),
                )
            )
        start = time.process_time()
        for result in batch:
            clock.advance(1 / per_second)
            monitor.observe(result)
        spent["observe"] += time.process_time() - start
        probes += len(batch)
        now = clock.monotonic()
        while next_tick <= now:
            start = time.process_time()
            monitor.hub.tick()
            spent["tick"] += time.process_time() - start
            next_tick += tick_s
        if next_save <= now:
            start = time.process_time()
            await persistence.save_async()
            spent["save"] += time.process_time() - start
            next_save += SAVE_EVERY_S
    marks.append((probes, dict(spent)))
    await monitor.aclose()
    store.close()
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=17)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    args = parser.parse_args()
    for row in args.rows:
        tenants, interval = ROWS[row]
        marks = asyncio.run(one_row(tenants, interval, args.minutes))
        print(f"{tenants * 2} series every {interval:g} s: CPU us per probe by minute")
        print(f"  {'minute':>6} {'total':>7} {'observe':>8} {'tick':>6} {'save':>6}")
        per_minute = []
        for i in range(len(marks) - 1):
            (p0, s0), (p1, s1) = marks[i], marks[i + 1]
            n = max(p1 - p0, 1)
            parts = {k: (s1[k] - s0[k]) / n * 1e6 for k in s0}
            total = sum(parts.values())
            per_minute.append(total)
            print(
                f"  {i + 1:>6} {total:>7.1f} {parts['observe']:>8.1f} {parts['tick']:>6.1f} "
                f"{parts['save']:>6.1f}"
            )
        print(
            f"  growth minute {len(per_minute)} / minute 1: x{per_minute[-1] / per_minute[0]:.2f}"
        )


if __name__ == "__main__":
    main()
