"""The README's test command: the whole suite in three phases, one closing summary.

    .venv/bin/python -m tests.run [pytest arguments, passed to every phase]

Most of the suite waits (on servers, subprocesses, intervals), so it runs first on several
workers at once (pytest-xdist; RECMON_TEST_WORKERS, default 6, more than the cores because the
tests mostly sleep). The tests marked `timing` assert on time measured by the wall clock
(latencies against the server's, deadlines, a page within so many intervals): they run
afterwards, two at a time (each light: a monitor, a sandbox, mostly waiting; one core each on
the 2-core machine) with nothing else running. Those also marked `alone` load the machine on
purpose or measure how idle it is (an overload, schedule lag): they run last, one at a time, so
that what they measure is recmon's. The last line is pytest's summary line for every phase
together ("N passed ... in Ts"); the exit status is non-zero if any phase failed. After
each phase a line gives its wall time and the CPU-seconds of its processes (less noisy than
wall time on a shared machine).

Loaded into each phase with `-p tests.run`, this module also writes that phase's counts to the
file named by RECMON_SUITE_COUNTS, for the closing line; and in the timing phase it leaves out,
unimported, every test module whose text never says `mark.timing` (how a test is marked, by
decorator or `pytestmark`): importing the whole suite to select its few timing tests cost the
phase 5 CPU-seconds, 13 s of wall time on a loaded machine.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
COUNTS = "RECMON_SUITE_COUNTS"
TIMING_ONLY = "RECMON_SUITE_TIMING_ONLY"  # set: collect only modules that mark timing tests
WORKERS = os.environ.get("RECMON_TEST_WORKERS", "6")
# pytest's own order for its summary line; "deselected" is left out (each phase deselects
# the other's tests).
ORDER = ("failed", "passed", "skipped", "xfailed", "xpassed", "warnings", "error")
NO_TESTS_COLLECTED = 5

# (what, options, environment): options given after the caller's arguments, so that they win.
PHASES: tuple[tuple[str, list[str], dict[str, str]], ...] = (
    (
        "every test not marked timing, in parallel",
        ["-n", WORKERS, "--dist", "worksteal", "-m", "not timing and not alone"],
        {},
    ),
    (
        "the tests marked timing, two at a time",
        ["-n", "2", "--dist", "worksteal", "-m", "timing and not alone"],
        {TIMING_ONLY: "1"},
    ),
    (
        "the timing tests marked alone, one at a time",
        ["-n", "0", "-m", "alone"],
        {TIMING_ONLY: "1"},
    ),
)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """In the timing phase, a test module that never says `mark.timing` has no timing test.
    (A path named on the command line is collected whatever this says.)"""
    if not os.environ.get(TIMING_ONLY) or collection_path.suffix != ".py":
        return None
    if not collection_path.name.startswith("test_"):
        return None  # conftest.py, helpers: whatever the test modules need
    return "mark.timing" not in collection_path.read_text(encoding="utf-8", errors="replace")


# pytest's cache (.pytest_cache): each test's duration in its last run, setup and teardown
# included, for the order of the next parallel phase.
DURATIONS = "recmon/durations"
# The tests that took a second or more on a full run, for a first run's order (regenerate:
# python -m tests.run --write-durations after a run; stale entries only cost balance).
SEED = ROOT / "tests" / "durations.json"
_measured: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _measured[report.nodeid] = _measured.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In the controlling process, remember how long each test took."""
    cache = session.config.cache
    if cache is None or hasattr(session.config, "workerinput") or not _measured:
        return
    cache.set(DURATIONS, {**cache.get(DURATIONS, {}), **_measured})


@pytest.hookimpl(trylast=True)  # after -m has deselected the other phase's tests
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On each xdist worker (they must all order alike), the longest tests first. worksteal
    hands each worker a consecutive share of the collection and lets an idle worker take the
    tail of another's: the shares here have the counts worksteal cuts, are filled longest
    first onto the share with the least work so far, and each starts with its longest. The
    long waits (a Prometheus stack, a pip install, a week's replay) then overlap from the
    start instead of queuing behind each other. No durations yet (a first run, as in CI's
    clean checkout): those of tests/durations.json, the tests of a second or more."""
    workers = getattr(config, "workerinput", {}).get("workercount")
    last = config.cache.get(DURATIONS, {}) if config.cache is not None else {}
    if not last and SEED.is_file():
        last = json.loads(SEED.read_text())
    if not workers or not last or len(items) < workers:
        return
    known = sorted(last.values())
    # A test not listed: as long as the median one (of a full record; the seed lists only
    # the long ones, the rest take well under a second).
    unknown = known[len(known) // 2] if len(last) * 2 > len(items) else 0.2
    took = {item.nodeid: last.get(item.nodeid, unknown) for item in items}
    sizes, left = [], len(items)
    for share in range(workers):  # as worksteal cuts: len(pending) // nodes remaining
        sizes.append(left // (workers - share))
        left -= sizes[-1]
    shares: list[list[pytest.Item]] = [[] for _ in sizes]
    work = [0.0] * workers
    for item in sorted(items, key=lambda i: -took[i.nodeid]):
        share = min((s for s in range(workers) if len(shares[s]) < sizes[s]), key=lambda s: work[s])
        shares[share].append(item)
        work[share] += took[item.nodeid]
    items[:] = [item for share_items in shares for item in share_items]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """In the phase's controlling process, save its counts as pytest's summary counts them."""
    path = os.environ.get(COUNTS)
    if not path or hasattr(config, "workerinput"):
        return
    counts = {
        key: sum(1 for report in reports if getattr(report, "count_towards_summary", True))
        for key, reports in terminalreporter.stats.items()
        if key
    }
    Path(path).write_text(json.dumps(counts))


def summary_line(counts: dict[str, int], seconds: float) -> str:
    """As pytest words it: "2 failed, 760 passed, 1 skipped, 3 warnings in 170.25s (0:02:50)"."""
    parts = []
    for key in (*ORDER, *sorted(set(counts) - set(ORDER) - {"deselected"})):
        n = counts.get(key, 0)
        if n:
            noun = {"warnings": "warning"}.get(key, key)
            plural = key in ("warnings", "error") and n != 1
            parts.append(f"{n} {noun}{'s' if plural else ''}")
    duration = f"{seconds:.2f}s ({timedelta(seconds=int(seconds))})"
    text = f" {', '.join(parts) or 'no tests ran'} in {duration} "
    return text.center(80, "=")


def write_durations() -> int:
    """tests/durations.json from the last run's record: the tests of a second or more."""
    record = ROOT / ".pytest_cache" / "v" / DURATIONS
    if not record.is_file():
        print(f"no durations recorded yet ({record}): run the suite first", file=sys.stderr)
        return 2
    durations = json.loads(record.read_text())
    long = {test: round(took, 1) for test, took in sorted(durations.items()) if took >= 1.0}
    SEED.write_text(json.dumps(long, indent=0) + "\n")
    print(f"{SEED}: {len(long)} of {len(durations)} tests took a second or more")
    return 0


def _children_cpu() -> float:
    """CPU-seconds (user + system) of the finished child processes, theirs included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(args: list[str]) -> int:
    if args == ["--write-durations"]:
        return write_durations()
    started = time.monotonic()
    total: dict[str, int] = {}
    codes = []
    with tempfile.TemporaryDirectory(prefix="recmon-suite-") as scratch:
        for number, (what, options, extra) in enumerate(PHASES, 1):
            print(f"tests.run: phase {number} of {len(PHASES)}: {what}", flush=True)
            counts = Path(scratch) / f"phase{number}.json"
            path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
            env = {**os.environ, **extra, COUNTS: str(counts), "PYTHONPATH": path}
            # Bytecode caches kept (gitignored __pycache__) even where PYTHONDONTWRITEBYTECODE
            # is set: without them each worker rewrites every test module's assertions again
            # (~3 CPU-s a worker) and every recmon a test starts compiles monitor again.
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            command = [sys.executable, "-m", "pytest", "-p", "tests.run", *args, *options]
            cpu_before = _children_cpu()
            phase_started = time.monotonic()
            done = subprocess.run(command, env=env, check=False)
            print(
                f"tests.run: phase {number} took {time.monotonic() - phase_started:.1f} s, "
                f"{_children_cpu() - cpu_before:.1f} CPU-s",
                flush=True,
            )
            codes.append(done.returncode)
            if counts.exists():
                for key, n in json.loads(counts.read_text()).items():
                    total[key] = total.get(key, 0) + n
            else:
                total["error"] = total.get("error", 0) + 1  # the phase ended before its summary
    print(summary_line(total, time.monotonic() - started), flush=True)
    failed = [code for code in codes if code not in (0, NO_TESTS_COLLECTED)]
    if failed:
        return failed[0]
    return 0 if total.get("passed", 0) or set(codes) == {0} else NO_TESTS_COLLECTED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
