"""The README's test command: the whole suite in four phases, one closing summary.

    .venv/bin/python -m tests.run [pytest arguments, passed to every phase]

Most of the suite waits (on servers, subprocesses, intervals), so it runs first on several
workers at once (pytest-xdist; RECMON_TEST_WORKERS, default 8, more than the cores because the
tests mostly sleep: six kept an idle 2-core machine ~1.4 cores busy, the rest going to the
background phase below). The tests marked `timing` assert on time measured by the wall clock
(latencies against the server's, deadlines, a page within so many intervals): they run
afterwards, two at a time (each light: a monitor, a sandbox, mostly waiting; one core each on
the 2-core machine) with nothing else running at normal priority. Those also marked `alone`
load the machine on purpose or measure how idle it is (an overload, schedule lag): they run
last, one at a time, so that what they measure is recmon's.

The tests marked `background` are CPU-bound and read no wall clock (virtual-time replays,
promtool): they run from the start, beside the other phases, at the kernel's idle priority
(SCHED_IDLE, inherited by every process they start), so they get only the CPU the others leave
(the parallel phase ends waiting on a few long real-time tests; the timing phases mostly wait:
13 CPU-s in 35 s), and any test that wakes preempts them. Their output follows the others'.

Before any phase, the bytecode every phase's processes import is compiled once, on every
core (recmon's modules; the test modules with their assertions rewritten, as pytest's import
hook writes them): on a fresh checkout, as CI's, the workers otherwise each compiled all
of it at the same moment (~2 CPU-s a worker) and the first recmons compiled monitor/ again.

The last line is pytest's summary line for every phase together ("N passed ... in Ts"); the
exit status is non-zero if any phase failed. After each phase a line gives its wall time and
the CPU-seconds of its processes (less noisy than wall time on a shared machine).

Loaded into each phase with `-p tests.run`, this module also writes that phase's counts to the
file named by RECMON_SUITE_COUNTS, for the closing line; and in the timing and background
phases it leaves out, unimported, every test module whose text never says `mark.timing`
(`mark.background`), by decorator or `pytestmark`: importing the whole suite to select its few
timing tests cost the phase 5 CPU-seconds, 13 s of wall time on a loaded machine.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
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


def _import_httpx_lighter() -> None:
    """httpx as recmon imports it (monitor/__init__.py): without its command line
    (httpx._main: click, rich), and httpcore without trio (installed for selenium; httpcore
    imports it whenever present, for the trio backend nothing here runs). pytest-httpx's
    plugin imports both in every pytest process (~0.12 CPU-s of its ~0.4) before recmon's
    guard can act; this plugin (-p tests.run) loads before it. selenium imports trio later,
    as usual: only the two modules' imports here see them absent."""
    if "httpx" in sys.modules or "httpcore" in sys.modules:
        return
    absent = [name for name in ("trio", "httpx._main") if name not in sys.modules]
    for name in absent:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import httpcore  # noqa: F401
        import httpx  # noqa: F401
    finally:
        for name in absent:
            del sys.modules[name]


if __name__ != "__main__":  # loaded as pytest's plugin (the command itself needs neither)
    _import_httpx_lighter()
COUNTS = "RECMON_SUITE_COUNTS"
MARK_ONLY = "RECMON_SUITE_MARK_ONLY"  # a mark: collect only the modules that say mark.<it>
WORKERS = os.environ.get("RECMON_TEST_WORKERS", "8")
# pytest's own order for its summary line; "deselected" is left out (each phase deselects
# the other's tests).
ORDER = ("failed", "passed", "skipped", "xfailed", "xpassed", "warnings", "error")
NO_TESTS_COLLECTED = 5

# (what, options, environment): options given after the caller's arguments, so that they win.
PHASES: tuple[tuple[str, list[str], dict[str, str]], ...] = (
    (
        "every test not marked timing, in parallel",
        ["-n", WORKERS, "--dist", "worksteal", "-m", "not timing and not alone and not background"],
        {},
    ),
    (
        "the tests marked timing, two at a time",
        ["-n", "2", "--dist", "worksteal", "-m", "timing and not alone"],
        {MARK_ONLY: "timing"},
    ),
    (
        "the timing tests marked alone, one at a time",
        ["-n", "0", "-m", "alone"],
        {MARK_ONLY: "timing"},
    ),
)
# Run beside the others at idle priority, reported after them.
BACKGROUND: tuple[str, list[str], dict[str, str]] = (
    "the tests marked background, at idle CPU priority beside the others",
    ["-n", "2", "--dist", "worksteal", "-m", "background and not timing"],
    {MARK_ONLY: "background"},
)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """In the timing and background phases, a test module that never says `mark.timing` (or
    `mark.background`) has no test of that phase. (A path named on the command line is
    collected whatever this says.)"""
    mark = os.environ.get(MARK_ONLY)
    if not mark or collection_path.suffix != ".py":
        return None
    if not collection_path.name.startswith("test_"):
        return None  # conftest.py, helpers: whatever the test modules need
    text = collection_path.read_text(encoding="utf-8", errors="replace")
    return f"mark.{mark}" not in text


# The garbage collector, paused while a pytest process imports and collects the suite (~10%
# of a worker's collection: hundreds of thousands of objects, nearly none of them garbage,
# as in recmon's own start) and resumed with those objects frozen (gc.freeze: left out of
# every later collection, which otherwise walked them all at each full pass in the tests).
_gc_paused = False


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests() -> None:
    global _gc_paused
    if gc.isenabled():
        gc.disable()
        _gc_paused = True


def _resume_gc() -> None:
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()


def pytest_collection_finish() -> None:
    _resume_gc()


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop() -> None:
    """xdist's controlling process collects nothing: its collector resumes here."""
    _resume_gc()


# pytest's cache (.pytest_cache): each test's duration in its last run, setup and teardown
# included, for the order of the next parallel phase.
DURATIONS = "recmon/durations"
# The tests that took a second or more on a full run, for a first run's order (regenerate:
# python -m tests.run --write-durations after a run; tests no longer defined are left out).
SEED = ROOT / "tests" / "durations.json"
_measured: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _measured[report.nodeid] = _measured.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In the controlling process, remember how long each test took."""
    cache = getattr(session.config, "cache", None)  # None under -p no:cacheprovider
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
    start instead of queuing behind each other. The durations recorded override those of
    tests/durations.json (the tests of a second or more), which stand in for the tests not
    recorded yet: in a first run, as in CI's clean checkout, the record holds only the
    parallel phase's tests when the timing phase orders its own (which it then ran in
    collection order: its longest last, the phase 4 s longer). The tests that read one
    value computed once per run (a replay) are placed together, as one."""
    workers = getattr(config, "workerinput", {}).get("workercount")
    last = json.loads(SEED.read_text()) if SEED.is_file() else {}
    cache = getattr(config, "cache", None)
    if cache is not None:
        last.update(cache.get(DURATIONS, {}))
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
    # The tests reading one value computed once per run (tests.helpers.once_per_run: a long
    # replay) go to one share, one after the other: spread over two workers, one computed it
    # while the other waited on its lock (26 s of the background phase's tail, doing nothing).
    units: dict[str, list[pytest.Item]] = {}
    for item in items:
        units.setdefault(_shared_value(item) or item.nodeid, []).append(item)
    for unit in sorted(units.values(), key=lambda u: -sum(took[i.nodeid] for i in u)):
        fits = [s for s in range(workers) if len(shares[s]) + len(unit) <= sizes[s]]
        together = min(fits, key=lambda s: work[s]) if fits else None
        for item in sorted(unit, key=lambda i: -took[i.nodeid]):
            share = together
            if share is None:  # no share has room for all of it: as single tests
                share = min(
                    (s for s in range(workers) if len(shares[s]) < sizes[s]), key=lambda s: work[s]
                )
            shares[share].append(item)
            work[share] += took[item.nodeid]
    items[:] = [item for share_items in shares for item in share_items]


def _shared_value(item: pytest.Item) -> str | None:
    """The module and fixture name when `item` uses a fixture computed once per run."""
    info = getattr(item, "_fixtureinfo", None)
    for name in getattr(item, "fixturenames", ()):
        definitions = info.name2fixturedefs.get(name) if info is not None else None
        code = getattr(definitions[-1].func, "__code__", None) if definitions else None
        if code is not None and "once_per_run" in code.co_names:
            return f"{item.nodeid.split('::', 1)[0]}::{name}"
    return None


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


def _still_defined(nodeid: str) -> bool:
    """The record merges every run's phases, so it keeps tests renamed or removed since: a
    test is listed only while its file still defines its function."""
    path, _, rest = nodeid.partition("::")
    name = rest.split("[", 1)[0].rsplit("::", 1)[-1]
    file = ROOT / path
    return file.is_file() and f"def {name}(" in file.read_text()


def write_durations() -> int:
    """tests/durations.json from the last run's record: the tests of a second or more."""
    record = ROOT / ".pytest_cache" / "v" / DURATIONS
    if not record.is_file():
        print(f"no durations recorded yet ({record}): run the suite first", file=sys.stderr)
        return 2
    durations = json.loads(record.read_text())
    long = {
        test: round(took, 1)
        for test, took in sorted(durations.items())
        if took >= 1.0 and _still_defined(test)
    }
    SEED.write_text(json.dumps(long, indent=0) + "\n")
    print(f"{SEED}: {len(long)} of {len(durations)} tests took a second or more")
    return 0


TEST_MODULE = re.compile(r"[/\\](test_[^/\\]*|conftest)\.py$")


def _rewrite_assertions(path: Path) -> None:
    """Write the pyc pytest's import hook would write for a test module (its assertions
    rewritten), unless a current one is there: pytest's own functions, and its file name."""
    from _pytest.assertion import rewrite

    pyc = rewrite.get_cache_dir(path) / (path.name[:-3] + rewrite.PYC_TAIL)
    if rewrite._read_pyc(path, pyc) is not None:
        return
    # A module that does not compile, or a directory not writable: left to pytest, which
    # reports the first as the module's collection error and works without the second.
    with contextlib.suppress(OSError, SyntaxError, ValueError):
        source_hash, code = rewrite._rewrite_test(path, None)  # type: ignore[arg-type]
        pyc.parent.mkdir(exist_ok=True)
        partial = pyc.with_name(f"{pyc.name}.{os.getpid()}")
        with partial.open("wb") as out:
            rewrite._write_pyc_fp(out, source_hash, code)
        os.replace(partial, pyc)


def _warm_bytecode() -> None:
    """Compile once, on every core, what each of the phases' processes would otherwise
    compile at the same moment: on a fresh checkout (CI's) every xdist worker rewrote every
    test module's assertions (~2 CPU-s a worker, ~4 with its imports against ~2 warm) and the
    first recmons compiled monitor/ each. Where pytest's functions differ (another version),
    the workers compile as before."""
    tests = sorted(
        path for pattern in ("test_*.py", "conftest.py") for path in (ROOT / "tests").rglob(pattern)
    )
    # Imported here: every pytest process of the suite imports this module (-p tests.run).
    import compileall
    from concurrent.futures import ProcessPoolExecutor

    with contextlib.suppress(ImportError, AttributeError, TypeError):
        from _pytest.assertion import rewrite  # noqa: F401  (present, or skip it all)

        with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
            plain = [  # recmon's modules, and the tests' helpers (no test module: pytest's)
                pool.submit(compileall.compile_dir, str(ROOT / d), quiet=2, rx=TEST_MODULE)
                for d in ("monitor", "tests")
            ]
            list(pool.map(_rewrite_assertions, [ROOT / "tests" / "run.py", *tests], chunksize=8))
            for done in plain:
                done.result()


def _children_cpu() -> float:
    """CPU-seconds (user + system) of the finished child processes, theirs included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _idle_priority() -> None:
    """In the background phase's process before it starts: the kernel's idle priority (or the
    lowest nice where there is no SCHED_IDLE), which its workers and their children inherit."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)


class _Phase:
    """One pytest run of the suite: its command, its environment, where it writes its counts."""

    def __init__(
        self,
        number: int,
        phase: tuple[str, list[str], dict[str, str]],
        args: list[str],
        scratch: str,
    ) -> None:
        self.number, (self.what, options, extra) = number, phase
        self.counts = Path(scratch) / f"phase{number}.json"
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        self.env = {**os.environ, **extra, COUNTS: str(self.counts), "PYTHONPATH": path}
        # Bytecode caches kept (gitignored __pycache__) even where PYTHONDONTWRITEBYTECODE
        # is set: without them each worker rewrites every test module's assertions again
        # (~3 CPU-s a worker) and every recmon a test starts compiles monitor again.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.command = [sys.executable, "-m", "pytest", "-p", "tests.run", *args, *options]

    def announce(self, of: int) -> None:
        print(f"tests.run: phase {self.number} of {of}: {self.what}", flush=True)

    def report(self, seconds: float, cpu: float) -> None:
        print(f"tests.run: phase {self.number} took {seconds:.1f} s, {cpu:.1f} CPU-s", flush=True)

    def add_counts(self, total: dict[str, int]) -> None:
        if self.counts.exists():
            for key, n in json.loads(self.counts.read_text()).items():
                total[key] = total.get(key, 0) + n
        else:
            total["error"] = total.get("error", 0) + 1  # the phase ended before its summary


def main(args: list[str]) -> int:
    if args == ["--write-durations"]:
        return write_durations()
    started = time.monotonic()
    total: dict[str, int] = {}
    codes = []
    count = len(PHASES) + 1
    with tempfile.TemporaryDirectory(prefix="recmon-suite-") as scratch:
        phases = [_Phase(number, phase, args, scratch) for number, phase in enumerate(PHASES, 1)]
        background = _Phase(count, BACKGROUND, args, scratch)
        log = Path(scratch) / "background.log"
        # The background phase starts with the first: at idle priority it takes only the CPU
        # the parallel phase leaves (its last minute waits on a few long real-time tests).
        background.announce(count)
        print(f"tests.run: its output follows phase {len(PHASES)}'s", flush=True)
        background_started = time.monotonic()
        with log.open("wb") as out:
            running = subprocess.Popen(
                background.command,
                env=background.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_idle_priority,
            )
        # After the background phase's start: at idle priority, its few processes wait.
        _warm_bytecode()
        print(f"tests.run: bytecode compiled in {time.monotonic() - started:.1f} s", flush=True)
        for phase in phases:
            phase.announce(count)
            cpu_before = _children_cpu()
            phase_started = time.monotonic()
            done = subprocess.run(phase.command, env=phase.env, check=False)
            phase.report(time.monotonic() - phase_started, _children_cpu() - cpu_before)
            codes.append(done.returncode)
            phase.add_counts(total)
        cpu_before = _children_cpu()
        codes.append(running.wait())
        print(f"tests.run: phase {count} of {count}: {background.what}", flush=True)
        sys.stdout.buffer.write(log.read_bytes())
        sys.stdout.flush()
        background.report(time.monotonic() - background_started, _children_cpu() - cpu_before)
        background.add_counts(total)
    print(summary_line(total, time.monotonic() - started), flush=True)
    failed = [code for code in codes if code not in (0, NO_TESTS_COLLECTED)]
    if failed:
        return failed[0]
    return 0 if total.get("passed", 0) or set(codes) == {0} else NO_TESTS_COLLECTED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
