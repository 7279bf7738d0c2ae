"""History in the state file: its size with 1,000 tenants x 2 checks x 90 days of hourly rows,
and what one periodic save writes of it (CPU and bytes) while every series is probed once a
minute (the default interval and recmon's 60 s save period).

    .venv/bin/python bench/history.py [--tenants 1000] [--days 90]

Prints the file size after the days are filled (rows as the recorder writes them: 60 probes
an hour, a rare failure, a latency sketch of those 60), then over 60 saves of one hour (each
save: every series' current-hour row changed by one probe, UPSERTed) the median CPU per save,
the bytes each save wrote to the WAL, and both per hour; and how long `recmon report` takes
over the last 30 days (reading and building, no formatting).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.app.history import HistoryRecorder  # noqa: E402
from monitor.app.history_report import build_report  # noqa: E402
from monitor.core.clock import ManualClock  # noqa: E402
from monitor.core.results import Outcome, ProbeResult  # noqa: E402
from monitor.detect.history import (  # noqa: E402
    EMPTY_HOUR,
    HOUR,
    add_result,
    packed_text,
)
from monitor.state.store import HistoryWrite, StateStore, read_history_file  # noqa: E402

CHECKS = ("search", "recommendations")
rng = random.Random(1)


def hour_rows(variants: int = 500) -> list[str]:
    """Encoded rows as the recorder writes them: 60 probes, now and then a failure."""
    rows = []
    for _ in range(variants):
        row = EMPTY_HOUR
        for i in range(60):
            outcome = Outcome.TIMEOUT if rng.random() < 0.002 else Outcome.OK
            result = ProbeResult("t", "c", outcome, rng.lognormvariate(-2.8, 0.3), float(i))
            row = add_result(row, result, in_maintenance=False)
        rows.append(packed_text(row))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    tenants = [f"tenant-{i:05d}" for i in range(args.tenants)]
    variants = hour_rows()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.db"
        store = StateStore.open(path)
        start = 1_780_000_000 - 1_780_000_000 % HOUR - args.days * 86400
        filled = time.perf_counter()
        for day in range(args.days):
            rows = [
                (tenant, check, start + day * 86400 + h * HOUR, rng.choice(variants))
                for tenant in tenants
                for check in CHECKS
                for h in range(24)
            ]
            store.write_history(HistoryWrite(rows))
        store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        filled = time.perf_counter() - filled
        size = path.stat().st_size
        series = len(tenants) * len(CHECKS)
        print(
            f"{args.tenants} tenants x {len(CHECKS)} checks x {args.days} days: "
            f"{series * 24 * args.days:,} hour rows, file {size / 1e6:.1f} MB "
            f"({size / (series * 24 * args.days):.0f} bytes a row), filled in {filled:.0f}s"
        )

        now = start + args.days * 86400
        took = []
        for _ in range(3):
            began = time.perf_counter()
            read = read_history_file(path, now - 30 * 86400, now)
            report = build_report(read, now - 30 * 86400, now)
            took.append(time.perf_counter() - began)
        print(
            f"recmon report over the last 30 days ({len(report.availability):,} tenant x check "
            f"rows, {len(read.hours):,} hour rows read): median {statistics.median(took):.1f} s"
        )

        clock = ManualClock(now)
        recorder = HistoryRecorder(clock)
        recorder.restore(store)
        cpu: list[float] = []
        wal: list[int] = []
        for minute in range(60):
            clock.advance(60)
            for tenant in tenants:
                for check in CHECKS:
                    recorder.observe(
                        ProbeResult(
                            tenant,
                            check,
                            Outcome.OK,
                            rng.lognormvariate(-2.8, 0.3),
                            now + minute * 60 + rng.random(),
                        )
                    )
            store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            began = time.process_time()
            snapshot = recorder.changes()
            store.write_history(snapshot.write)
            recorder.written(snapshot)
            cpu.append(time.process_time() - began)
            wal.append(os.stat(str(path) + "-wal").st_size)
        store.close()
    per_save = statistics.median(cpu)
    print(
        f"a periodic save ({series:,} rows changed): median CPU {per_save * 1000:.1f} ms, "
        f"{statistics.median(wal) / 1e6:.2f} MB to the WAL; per hour (60 saves): "
        f"{sum(cpu):.2f} s CPU, {sum(wal) / 1e6:.0f} MB written"
    )


if __name__ == "__main__":
    main()
