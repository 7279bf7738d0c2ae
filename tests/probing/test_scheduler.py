"""The scheduler in virtual time: stable phases, one run per interval, no pile-ups."""

from __future__ import annotations

import asyncio
import gc
import itertools
import weakref
from collections import Counter

from monitor.core.clock import ManualClock
from monitor.probing.engine import Job
from monitor.probing.scheduler import (
    BURST,
    BURST_AHEAD_S,
    BURST_CHUNK,
    BUSY_BURST,
    EARLY_SHARE,
    QUIET_RUNS,
    Scheduler,
    first_due,
    phase,
)
from tests.helpers import settle


async def advance(clock: ManualClock, seconds: float, step: float = 0.05) -> None:
    elapsed = 0.0
    while elapsed < seconds - 1e-9:
        clock.advance(step)
        elapsed += step
        await settle()


def test_phases_spread_evenly_over_the_interval() -> None:
    jobs = [Job(f"tenant-{i:05d}", "search") for i in range(10_000)]
    buckets = Counter(int(phase(job, 60.0) // 6) for job in jobs)
    assert set(buckets) == set(range(10))
    assert max(buckets.values()) < 1.1 * 1000
    assert min(buckets.values()) > 0.9 * 1000


def test_phase_is_stable_and_depends_on_tenant_and_check() -> None:
    a = Job("acme", "search")
    assert phase(a, 60) == phase(Job("acme", "search"), 60)
    assert phase(a, 60) != phase(Job("acme", "recommendations"), 60)
    assert 0 <= phase(a, 60) < 60


def test_first_due_lands_on_the_phase_in_wall_clock_time() -> None:
    job = Job("acme", "search")
    wall_now, mono_now = 1_000_000.0, 50.0
    due = first_due(job, 60.0, wall_now, mono_now)
    assert mono_now <= due < mono_now + 60
    assert abs((wall_now + (due - mono_now)) % 60 - phase(job, 60)) < 1e-6


async def test_each_job_runs_once_per_interval_at_its_phase() -> None:
    clock = ManualClock(start=0.0)
    starts: dict[Job, list[float]] = {}

    async def run_job(job: Job, due: float) -> None:
        starts.setdefault(job, []).append(clock.monotonic())

    scheduler = Scheduler(run_job, lambda job: 10.0, clock=clock)
    jobs = [Job(f"t{i}", "search") for i in range(20)]
    scheduler.set_jobs(jobs)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    await advance(clock, 30.0)
    stop.set()
    clock.advance(1.0)
    await task
    assert set(starts) == set(jobs)
    for job, times in starts.items():
        assert len(times) == 3
        # each launched within one step after its slot at the job's phase, or at most
        # EARLY_SHARE of the interval before it
        for k, at in enumerate(times):
            offset = at - (phase(job, 10.0) + 10.0 * k)
            assert -EARLY_SHARE * 10.0 - 1e-9 <= offset < 0.06


def pytest_approx(value: float) -> object:
    import pytest

    return pytest.approx(value, abs=0.06)


async def test_a_job_still_running_is_not_started_again() -> None:
    clock = ManualClock(start=0.0)
    release = asyncio.Event()
    started = 0
    overruns: list[Job] = []

    async def slow_job(job: Job, due: float) -> None:
        nonlocal started
        started += 1
        await release.wait()

    scheduler = Scheduler(
        slow_job, lambda job: 1.0, clock=clock, on_overrun=lambda job, runs: overruns.append(job)
    )
    scheduler.set_jobs([Job("acme", "search")])
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    await advance(clock, 3.5)
    slots = sum(1 for k in range(5) if phase(Job("acme", "search"), 1.0) + k <= 3.5)
    assert started == 1
    assert len(overruns) == slots - 1 >= 2
    release.set()
    await advance(clock, 1.0)
    assert started == 2
    stop.set()
    clock.advance(1.0)
    await task
    await scheduler.drain()


async def test_removed_jobs_stop_and_added_jobs_start() -> None:
    clock = ManualClock(start=0.0)
    seen: Counter[str] = Counter()

    async def run_job(job: Job, due: float) -> None:
        seen[job.tenant] += 1

    scheduler = Scheduler(run_job, lambda job: 1.0, clock=clock)
    scheduler.set_jobs([Job("old", "search")])
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    await advance(clock, 2.0)
    scheduler.set_jobs([Job("new", "search")])
    before = seen["old"]
    await advance(clock, 3.0)
    stop.set()
    clock.advance(1.0)
    await task
    assert seen["old"] == before
    assert seen["new"] >= 2


def test_a_tenant_refresh_keeps_the_jobs_the_schedule_holds_not_their_equal_copies() -> None:
    scheduler = Scheduler(lambda job, due: asyncio.sleep(0), lambda job: 60.0, clock=ManualClock())
    first = [Job("acme", "search"), Job("globex", "search")]
    scheduler.set_jobs(first)
    scheduler.set_jobs([Job("acme", "search"), Job("initech", "search")])  # a refresh's copies
    kept = {job.tenant: job for job in scheduler.jobs}
    assert set(kept) == {"acme", "initech"}
    assert kept["acme"] is first[0]  # the instance the heap holds: one Job a series
    held = {id(job) for _, _, job in scheduler._heap}
    assert all(id(job) in held for job in kept.values())


async def test_missed_intervals_are_skipped_not_replayed() -> None:
    clock = ManualClock(start=0.0)
    runs = 0
    skipped: list[int] = []

    async def run_job(job: Job, due: float) -> None:
        nonlocal runs
        runs += 1

    scheduler = Scheduler(
        run_job, lambda job: 1.0, clock=clock, on_overrun=lambda job, n: skipped.append(n)
    )
    scheduler.set_jobs([Job("acme", "search")])
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    await advance(clock, 1.0)
    first = runs
    clock.advance(10.0)  # the process was suspended for ten intervals
    await settle()
    assert runs == first + 1
    # The slots it slept through are counted as skipped (9 or 10, by where the phase falls).
    assert sum(skipped) in (9, 10) and scheduler.overruns == sum(skipped)
    stop.set()
    clock.advance(1.0)
    await task


async def test_jobs_added_while_idle_start_at_their_slot_not_after_the_idle_sleep() -> None:
    clock = ManualClock(start=0.0)
    starts: list[float] = []

    async def run_job(job: Job, due: float) -> None:
        starts.append(clock.monotonic())

    scheduler = Scheduler(run_job, lambda job: 10.0, clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    await settle()  # no jobs yet: the loop sleeps for up to a second
    job = Job("acme", "search")
    scheduler.set_jobs([job])
    await advance(clock, 10.0)
    stop.set()
    clock.advance(1.0)
    await task
    assert abs(starts[0] - phase(job, 10.0)) < 0.06


async def test_jobs_due_within_the_launch_window_start_in_one_wake_up() -> None:
    """Jobs due within EARLY_SHARE of their interval after the first are launched with it (one
    loop wake-up for all), each with its own slot: the next run is counted from it, and the
    run's `due` is that slot, so schedule lag is measured against it (early: none)."""
    clock = ManualClock(start=0.0)
    interval = 10.0
    jobs = sorted((Job(f"t{i}", "search") for i in range(2000)), key=lambda j: phase(j, 10.0))
    # Two jobs whose slots lie closer together than the launch window (not at the start,
    # where everything due within it is launched at once).
    first, second = next(
        (a, b)
        for a, b in itertools.pairwise(jobs)
        if phase(a, interval) > 0.5
        and 0.002 < phase(b, interval) - phase(a, interval) < EARLY_SHARE * interval - 0.002
    )
    runs: list[tuple[Job, float, float]] = []  # job, started at, its due

    async def run_job(job: Job, due: float) -> None:
        runs.append((job, clock.monotonic(), due))

    scheduler = Scheduler(run_job, lambda job: interval, clock=clock)
    scheduler.set_jobs([first, second])
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    await settle()
    # Up to the first job's slot: it and the second start together, at the first's slot.
    clock.advance(phase(first, interval))
    await settle()
    assert [(job, at) for job, at, _ in runs] == [
        (first, phase(first, interval)),
        (second, phase(first, interval)),
    ]
    # Each run carries its own slot, the one its lag is measured from.
    assert runs[0][2] == pytest_approx(phase(first, interval))
    assert runs[1][2] == pytest_approx(phase(second, interval))
    assert runs[1][2] > runs[1][1]  # started early, not late
    # The next runs are counted from each job's own slot, not from when it started.
    clock.advance(interval)
    await settle()
    assert [due for _, _, due in runs[2:]] == [
        pytest_approx(phase(first, interval) + interval),
        pytest_approx(phase(second, interval) + interval),
    ]
    stop.set()
    clock.advance(1.0)
    await task


async def test_a_job_is_never_started_more_than_a_share_of_its_interval_early() -> None:
    """A short interval's job waits for its own wake-up rather than start early by more than
    EARLY_SHARE of its interval, even when another job's wake-up comes just before it."""
    clock = ManualClock(start=0.0)
    intervals = {"fast": 0.2, "slow": 10.0}

    def interval_of(job: Job) -> float:
        return intervals[job.check]

    def slot(job: Job) -> float:
        return phase(job, interval_of(job))

    # A slow job, and a fast one due just after it: within the launch window, but more than
    # 1% of 0.2 s after it.
    slow, fast = next(
        (s, f)
        for s in (Job(f"t{i}", "slow") for i in range(100))
        if slot(s) > 0.5
        for f in (Job(f"t{i}", "fast") for i in range(2000))
        if EARLY_SHARE * 0.2 + 0.001 < (slot(f) - slot(s)) % 0.2 < BURST_AHEAD_S - 0.001
    )
    starts: dict[Job, list[tuple[float, float]]] = {slow: [], fast: []}

    async def run_job(job: Job, due: float) -> None:
        starts[job].append((clock.monotonic(), due))

    scheduler = Scheduler(run_job, interval_of, clock=clock)
    scheduler.set_jobs([slow, fast])
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    await advance(clock, slot(slow) + 0.3, step=0.001)
    stop.set()
    clock.advance(1.0)
    await task
    # The slow job: at most EARLY_SHARE of its own interval early.
    [(at, due)] = starts[slow]
    assert due == pytest_approx(slot(slow))
    assert 0 <= due - at <= EARLY_SHARE * 10.0 + 1e-9
    # The fast job's run right after the slow job's slot started at its own wake-up.
    after = [(at, due) for at, due in starts[fast] if due > slot(slow)]
    assert after
    for at, due in after:
        assert due - at <= EARLY_SHARE * 0.2 + 1e-9


async def test_a_busy_wake_up_launches_a_burst_each_run_from_its_own_slot() -> None:
    """Many runs going (1,000 probes/s at a 60 ms latency keeps ~60): one wake-up still
    launches the one due now and BUSY_BURST more (fewer than a quiet loop's BURST), none more
    than EARLY_SHARE of its interval early, each run carrying its own slot (its lag is
    measured from it; early reads none) and its next run counted from that slot."""
    clock = ManualClock(start=0.0)
    interval = 10.0  # EARLY_SHARE of it (0.1 s) is less than BURST_AHEAD_S
    assert EARLY_SHARE * interval < BURST_AHEAD_S
    jobs = sorted((Job(f"t{i}", "search") for i in range(20_000)), key=lambda j: phase(j, 10.0))
    start = next(k for k, job in enumerate(jobs) if phase(job, interval) > 1.0)
    first = phase(jobs[start], interval)
    window = [job for job in jobs[start:] if phase(job, interval) - first <= BURST_AHEAD_S]
    assert len(window) > BURST + 1 + BURST_CHUNK  # more due than one burst takes
    assert BUSY_BURST < BURST
    # Jobs launched at the start and still running when the window falls due: a busy loop.
    holders = jobs[:64]
    assert len(holders) >= QUIET_RUNS
    assert phase(holders[-1], interval) < EARLY_SHARE * interval
    release = asyncio.Event()
    runs: list[tuple[Job, float, float]] = []  # job, started at, its due

    async def run_job(job: Job, due: float) -> None:
        if job in holders:
            await release.wait()
        else:
            runs.append((job, clock.monotonic(), due))

    scheduler = Scheduler(run_job, lambda job: interval, clock=clock)
    scheduler.set_jobs(holders + window)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    await advance(clock, EARLY_SHARE * interval, step=0.01)  # every holder's slot
    assert scheduler.running == len(holders)
    clock.advance(first - EARLY_SHARE * interval)
    for _ in range(4 * BURST // BURST_CHUNK):
        await asyncio.sleep(0)
    # The one due now and BUSY_BURST more, all at this one instant of the clock.
    assert [job for job, _, _ in runs] == window[: BUSY_BURST + 1]
    assert {at for _, at, _ in runs} == {first}
    for job, at, due in runs:
        assert due == pytest_approx(phase(job, interval))  # its own slot
        assert 0 <= due - at <= EARLY_SHARE * interval + 1e-9
    # The rest at later wake-ups, none late beyond the clock's step nor early beyond 1%.
    await advance(clock, BURST_AHEAD_S + 0.01, step=0.001)
    assert [job for job, _, _ in runs] == window
    for _, at, due in runs:
        assert -0.0011 <= due - at <= EARLY_SHARE * interval + 1e-9
    # The next runs are counted from each job's own slot, not from when it started.
    await advance(clock, interval, step=0.01)
    again = [due for job, _, due in runs if job == window[BUSY_BURST]]
    assert again == [
        pytest_approx(phase(window[BUSY_BURST], interval)),
        pytest_approx(phase(window[BUSY_BURST], interval) + interval),
    ]
    release.set()
    stop.set()
    clock.advance(1.0)
    await task
    await scheduler.drain()


async def test_a_wake_up_launches_a_burst_a_chunk_at_a_time() -> None:
    """A long interval: one wake-up launches the one due now and BURST more due within
    BURST_AHEAD_S, BURST_CHUNK at a time (each chunk's first steps run before the next chunk
    is launched), none more than EARLY_SHARE of its interval early."""
    clock = ManualClock(start=0.0)
    interval = 60.0  # EARLY_SHARE of it is more than BURST_AHEAD_S
    assert EARLY_SHARE * interval > BURST_AHEAD_S
    jobs = sorted((Job(f"t{i}", "search") for i in range(20_000)), key=lambda j: phase(j, 60.0))
    start = next(k for k, job in enumerate(jobs) if phase(job, interval) > 1.0)
    first = phase(jobs[start], interval)
    window = [job for job in jobs[start:] if phase(job, interval) - first <= BURST_AHEAD_S]
    assert len(window) > BURST + 1 + BURST_CHUNK  # more due than one burst takes
    # (job, when it started, how many runs had been launched when its first step ran)
    runs: list[tuple[Job, float, int]] = []
    scheduler: Scheduler

    async def run_job(job: Job, due: float) -> None:
        runs.append((job, clock.monotonic(), scheduler.launched))

    scheduler = Scheduler(run_job, lambda job: interval, clock=clock)
    scheduler.set_jobs(window)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    await settle()
    clock.advance(first)
    for _ in range(4 * BURST // BURST_CHUNK):
        await asyncio.sleep(0)
    # The one due now and BURST more, all at this one instant of the clock.
    assert [job for job, _, _ in runs] == window[: BURST + 1]
    assert {at for _, at, _ in runs} == {first}
    # A chunk at a time: no run's first step waited behind more than a chunk launched after it.
    for position, (_, _, launched) in enumerate(runs):
        assert launched - (position + 1) <= BURST_CHUNK
    # The rest at later wake-ups.
    await advance(clock, BURST_AHEAD_S + 0.01, step=0.001)
    assert [job for job, _, _ in runs] == window
    stop.set()
    clock.advance(1.0)
    await task


async def test_a_finished_run_is_not_kept_while_a_stopped_run_is_drained() -> None:
    """A run that ended is forgotten at once (10,000 jobs' finished tasks are not held until
    their next slot); a run still going at the stop is what drain waits for."""
    clock = ManualClock(start=0.0)
    release = asyncio.Event()
    finished: list[weakref.ref[asyncio.Task[None]]] = []

    async def run_job(job: Job, due: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        if job.tenant == "slow":
            await release.wait()
        else:
            finished.append(weakref.ref(task))

    scheduler = Scheduler(run_job, lambda job: 1.0, clock=clock)
    scheduler.set_jobs([Job(f"t{i}", "search") for i in range(5)] + [Job("slow", "search")])
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    await advance(clock, 2.5)
    stop.set()
    clock.advance(1.0)
    await task
    gc.collect()
    assert len(finished) >= 10 and all(ref() is None for ref in finished)
    assert scheduler.running == 1
    release.set()
    await scheduler.drain(within=1.0)
    assert scheduler.running == 0
