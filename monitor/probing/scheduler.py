"""When probes run: every job once per interval, at a stable phase, spread over the interval.

A job's phase is a hash of (tenant, check): the same tenant probes at the same second of every
interval, across restarts and replicas, and 10,000 tenants spread evenly instead of arriving
together (no thundering herd).

One wake-up launches every job due now and a burst ahead of their slots: up to BURST jobs
due within BURST_AHEAD_S, none more than EARLY_SHARE of its interval early, BURST_CHUNK per
pass of the loop so that answers and timers due meanwhile are not held. Each run still belongs
to its own slot: the next run is counted from it, and so is the run's schedule lag (a run
started early reads 0, never negative).

A wake-up of a mostly idle process costs far more CPU than the work it does (cold caches, a
context switch), and requests sent together are answered together, so their answers share a
poll too. At 10,000 tenants x 2 / 60 s (bench/fleet_pair.py, idle machine, minutes 2-5) bursts
of 32 cost x0.64-0.66 of the cores, withholding 0.4-1.1% of latencies against 0.3-0.6%. Bursts
of 64 cost x0.57 but withheld 7-15%: their answers come back together, and judging ~64 of them
holds the loop past the read-trust threshold (monitor.telemetry.polltime); 16 cost x0.81-0.83.

A busy loop bursts too. At 1,000 probes/s (5,000 tenants x 2 / 10 s, 60 ms answers: ~60 runs
always going; bench/loopstats.py, one tree after another) launching at most 4 ahead within 20
ms woke the loop 1.65 times a probe with 0.65 events a poll (271 us CPU a probe); bursts of 32
wake it 0.71 times with 1.42 events (213 us), withholding 0.5% against 0.3%; bursts of 16: 1.11
and 0.92 (246 us, 0.3%); of 64: 0.46 and 2.19 (196 us) but 1.7% withheld; chunks of 16 or 4
instead of 8: 218 us / 0.3%, 207 us / 2.4%. Side by side (bench/sidebyside.py, 5,000 x 2 / 10
s, two runs, both orders each) bursts on a busy loop too cost x0.847 and x0.802 of the CPU per
probe of bursts on a quiet loop only. bench/run.py (--rates 1000,2000, each tree twice, a
loaded machine): recmon ÷ blackbox_exporter 0.30 and 0.26 at 1,000/s (0.35 and 0.38 before),
0.30 and 0.33 at 2,000/s (0.40 and 0.38). The cost: answers sent together come back together,
and those read while the loop judges the others are stamped late within the trusted doubt, so
the 2,000/s p95 read +2.9 and +2.7 ms against the server's (+1.9 and +1.6 ms before). Withheld
shares moved with the machine's load, not with the trees (1,000/s 0.3% and 2.4% against 3.6%
and 0.1%; 2,000/s 15.0% and 1.9% against 4.9% and 6.2%). Bursting only below 96 runs going
(1,000/s but not 2,000/s at 60 ms) read 0.27 and 0.30, p95 +2.6 and -2.5 ms, in one run: not
told apart from bursting always. The fleet did not move (bench/fleet_pair.py, 420 s: cores
0.083-0.095 both). The scheduler itself (its heap and create_task) was 3% of the process's
samples at 1,000/s (py-spy, 30 s; 3.4% with bursts, of fewer samples): not worth a cheaper
structure than the heap.

A busy loop's bursts are smaller (BUSY_BURST, 8, with QUIET_RUNS or more runs going): requests
asked together are answered together, and a target that serves them one after another (the
sandbox, one process) delays the last ones. With bursts of 32 on a busy loop, bench/run.py on an
idle machine (one run each, --rates 2000,1000) read recmon's p95 +1.3 ms above the server's at
1,000/s and at 2,000/s (0.178 and 0.177 s of CPU per 1,000 probes); smaller chunks did not help
(4 and 2 a pass: +1.2 both); bursts of 8 read +0.4 and +0.4 ms (0.211 and 0.179 s); no burst
on a busy loop (as before) +0.2 and +0.3 ms (0.229 and 0.193 s). Quiet loops keep 32: the
fleet's requests are spread over a minute, and its gain was the largest.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from monitor.core.clock import Clock
from monitor.probing.engine import Job

log = logging.getLogger("recmon.scheduler")


RunJob = Callable[[Job, float], Coroutine[Any, Any, None]]
# The loop wakes at least this often, so added tenants and a stop request are seen promptly.
MAX_SLEEP_S = 1.0
# Sleeps shorter than this do not watch for schedule changes: a change waits at most this long.
SHORT_SLEEP_S = 0.05
# A run starts at most this share of its interval early (a 0.5 s interval: 5 ms; 10 s: 100 ms).
EARLY_SHARE = 0.01
# One wake-up launches up to this many jobs ahead of their slots, due within BURST_AHEAD_S (a
# quarter of a second), each at most EARLY_SHARE early (see the module's text for the size) ...
BURST = 32
# ... or this many when QUIET_RUNS or more runs are going: a busy loop's bursts are what its
# target sees, and 32 answers asked together made a single-process target's p95 read +1.2-1.3
# ms above its own at 1,000 and 2,000 probes/s; 8 read +0.4 (module's text).
BUSY_BURST = 8
QUIET_RUNS = 16
BURST_AHEAD_S = 0.25
# ... this many launched per pass of the loop: their first steps run together, ~0.5 ms (4
# withheld more at 1,000/s, 16 no cheaper: see the module's text).
BURST_CHUNK = 8


def phase(job: Job, interval: float) -> float:
    """Offset of the job inside its interval, in [0, interval)."""
    digest = hashlib.blake2b(f"{job.tenant}\0{job.check}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * interval


def first_due(job: Job, interval: float, wall_now: float, mono_now: float) -> float:
    """The next monotonic time at which wall-clock time sits at the job's phase."""
    return mono_now + (phase(job, interval) - wall_now) % interval


class Scheduler:
    def __init__(
        self,
        run_job: RunJob,
        interval_of: Callable[[Job], float],
        *,
        clock: Clock,
        on_overrun: Callable[[Job, int], None] = lambda job, runs: None,
    ) -> None:
        """`on_overrun(job, runs)`: that many runs of the job were skipped, its previous run
        still going or its slots long past."""
        self._run_job = run_job
        self._interval_of = interval_of
        self._clock = clock
        self._on_overrun = on_overrun
        self._heap: list[tuple[float, int, Job]] = []
        self._jobs: set[Job] = set()
        self._running: dict[Job, asyncio.Task[None]] = {}
        self._seq = 0
        self.overruns = 0
        self.launched = 0
        self._changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None  # run's

    @property
    def jobs(self) -> frozenset[Job]:
        return frozenset(self._jobs)

    @property
    def running(self) -> int:
        return sum(1 for task in self._running.values() if not task.done())

    def set_jobs(self, jobs: Iterable[Job]) -> None:
        """Reconcile: new jobs get their phase slot, removed jobs are dropped when next due."""
        wanted = set(jobs)
        wall, mono = self._clock.time(), self._clock.monotonic()
        added = wanted - self._jobs
        for job in added:
            self._push(first_due(job, self._interval_of(job), wall, mono), job)
        # The jobs kept are the instances the schedule already holds, not the refresh's equal
        # copies: one Job a series, not two from the first tenant refresh on (~1 MB at
        # 10,000 tenants x 2).
        self._jobs = {job for job in self._jobs if job in wanted} | added
        self._changed.set()  # a sleeping loop re-reads the schedule now, not a second later

    def _push(self, due: float, job: Job) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, job))

    async def run(self, stop: asyncio.Event) -> None:
        """Launch jobs as they fall due until `stop` is set; running jobs are left to `drain`."""
        self._loop = asyncio.get_running_loop()  # its create_task: no loop look-up a launch
        while not stop.is_set():
            size = BURST if len(self._running) < QUIET_RUNS else BUSY_BURST
            await self._burst(self._clock.monotonic(), stop, size)
            now = self._clock.monotonic()
            wait = min(self._heap[0][0] - now, MAX_SLEEP_S) if self._heap else MAX_SLEEP_S
            if wait > SHORT_SLEEP_S:
                await self._sleep_unless_changed(wait)
            elif wait > 0:
                # The common case with many jobs: the next is due in milliseconds. A plain
                # sleep; watching for changes too cost two tasks per wake-up, hundreds a second.
                await self._clock.sleep(wait)
            else:
                await asyncio.sleep(0)

    async def _sleep_unless_changed(self, seconds: float) -> None:
        self._changed.clear()
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, changed):
                task.cancel()

    async def _burst(self, now: float, stop: asyncio.Event, size: int) -> None:
        """Launch what is due, and up to `size` jobs ahead of their slots, BURST_CHUNK a pass."""
        horizon, left = now + BURST_AHEAD_S, size
        while True:
            launched = self._launch_due(now, horizon, min(left, BURST_CHUNK))
            left -= launched
            if launched < BURST_CHUNK or left <= 0:
                return
            await asyncio.sleep(0)  # the chunk's first steps, and whatever else is ready
            if stop.is_set():
                return
            now = self._clock.monotonic()

    def _launch_due(self, now: float, horizon: float, max_ahead: int) -> int:
        """Launch every job due by now, and up to `max_ahead` of those due by `horizon` (one
        wake-up for them all), each at most EARLY_SHARE of its interval early. Returns how
        many were launched ahead of their slots."""
        heap = self._heap
        loop = self._loop or asyncio.get_running_loop()
        ahead = 0
        while heap and heap[0][0] <= horizon:
            due, _, job = heap[0]
            if job not in self._jobs:
                heapq.heappop(heap)
                continue
            interval = self._interval_of(job)
            if due > now:
                if due - now > interval * EARLY_SHARE or ahead >= max_ahead:
                    break  # too early for its interval, or enough for one burst: next wake-up
                ahead += 1
            next_due = due + interval
            missed = 0
            if next_due <= now:
                # We fell more than a whole interval behind (suspended process, huge lag):
                # skip the missed slots instead of firing them all at once — and count them,
                # a run skipped is a run skipped however it came to be.
                missed = int((now - next_due) // interval) + 1
                next_due += missed * interval
            # Its next slot takes its place: one pass down the heap, not a pop and a push.
            self._seq += 1
            heapq.heapreplace(heap, (next_due, self._seq, job))
            previous = self._running.get(job)
            if previous is not None and not previous.done():
                self.overruns += 1 + missed
                self._on_overrun(job, 1 + missed)
                continue
            if missed:
                self.overruns += missed
                self._on_overrun(job, missed)
            self.launched += 1
            self._running[job] = loop.create_task(self._run(job, due))
        return ahead

    async def _run(self, job: Job, due: float) -> None:
        """The job's run, forgotten as it ends: a done callback per run (a partial, a handle
        scheduled and run by the loop) cost more. A job runs once at a time, so the entry is
        this run's; a run cancelled before it started leaves a done task there, replaced at
        the job's next launch."""
        try:
            await self._run_job(job, due)
        finally:
            self._running.pop(job, None)

    async def drain(self, within: float | None = None) -> None:
        """Wait for running jobs (each probe is bounded by its deadline), cancel what remains."""
        tasks = [t for t in self._running.values() if not t.done()]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=within)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
