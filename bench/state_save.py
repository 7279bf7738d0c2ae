"""CPU of one state save for a fleet's detector memory: 10,000 tenants x 2 checks, each with a
full 15-minute window (15 samples a minute apart) and a learned baseline, every series probed
once between two saves (the fleet row's 60 s interval and recmon's 60 s save period).

    .venv/bin/python bench/state_save.py

Prints the median CPU of 5 saves written in full (a first save: every head and sample), and
over 10 periodic saves of recmon's (what changed since the previous save, a series' baseline at
most every BASELINE_EVERY_S, a quiet series on its turn: one save in SAVE_TURNS) the mean CPU
per save, and the file size.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.app.persist import (  # noqa: E402
    BASELINE_EVERY_S,
    SAVE_TURNS,
    Saved,
    series_changes,
    turns,
)
from monitor.detect.series import Sample, SeriesState  # noqa: E402
from monitor.detect.stats import DecayingHistogram  # noqa: E402
from monitor.state.store import SeriesKey, SeriesWrite, StateStore  # noqa: E402

TENANTS = 10_000
HALF_LIFE = 86_400.0
rng = random.Random(1)


def latency() -> float:
    return rng.lognormvariate(-2.8, 0.3)


def fresh(now: float) -> SeriesState:
    baseline = DecayingHistogram()
    for i in range(40):
        baseline = baseline.add(latency(), now - 3600 + i * 60, HALF_LIFE)
    samples = tuple(Sample(now - 60 * (14 - i), "ok", latency(), "") for i in range(15))
    return SeriesState.from_samples(
        samples, ok_streak=15, baseline=baseline, learned_until=now - 300, window_p95=0.07
    )


def probed(state: SeriesState, now: float) -> SeriesState:
    """One more probe, as the detector records it: a sample in, the oldest out and learned."""
    oldest = state.samples[0]
    return SeriesState.from_samples(
        (*state.samples[1:], Sample(now, "ok", latency(), "")),
        ok_streak=state.ok_streak + 1,
        baseline=state.baseline.add(oldest.latency or 0.06, oldest.at, HALF_LIFE),
        learned_until=now - 300,
        window_p95=0.07,
    )


def written_by(write: SeriesWrite) -> int:
    """Bytes of JSON a save writes."""
    return sum(len(row[-1]) for rows in (write.heads, write.details, write.items) for row in rows)


def main() -> None:
    now = 1_000_000.0
    states: dict[SeriesKey, SeriesState] = {
        (f"tenant-{i:05d}", check): fresh(now)
        for i in range(TENANTS)
        for check in ("search", "recommendations")
    }
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "state.db"
        store = StateStore.open(path)
        full: list[float] = []
        changed: list[float] = []
        written: list[int] = []
        saved: dict[SeriesKey, Saved] = {}
        for _ in range(5):
            started = time.process_time()
            write, saved = series_changes({}, states)
            store.write_series(write)
            full.append(time.process_time() - started)
        full_bytes = written_by(write)
        turn_of = turns(states)
        for save in range(10):
            now += 60
            states = {key: probed(state, now) for key, state in states.items()}
            later = {key for key, turn in turn_of.items() if turn != save % SAVE_TURNS}
            started = time.process_time()
            write, saved = series_changes(
                saved, states, baseline_every=BASELINE_EVERY_S, later=later
            )
            store.write_series(write)
            changed.append(time.process_time() - started)
            written.append(
                sum(len(h[2]) for h in write.heads) + sum(len(i[3]) for i in write.items)
            )
        store.close()
        size = path.stat().st_size / 1e6
    print(f"{2 * TENANTS} series, every one probed since the last save:")
    print(f"  written in full:        {statistics.median(full):.3f} s CPU per save (median of 5)")
    print(
        f"  what changed (recmon):  {statistics.mean(changed):.3f} s CPU per save (mean of 10: "
        + " ".join(f"{c:.2f}" for c in changed)
        + ")"
    )
    print(
        f"  JSON written per save: {full_bytes / 1e6:.1f} MB in full, "
        f"{statistics.mean(written) / 1e6:.1f} MB on average of what changed"
    )
    print(f"  state file: {size:.1f} MB")


if __name__ == "__main__":
    main()
