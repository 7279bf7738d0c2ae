"""The monitor watching itself: late timers make latencies untrusted, also before the late
tick reports in."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest

from monitor.core.clock import ManualClock
from monitor.telemetry.looplag import IDLE_TICK_S, KEEP_S, TICK_S, LoopLagMonitor
from tests.helpers import settle


@contextlib.asynccontextmanager
async def ticking(clock: ManualClock, monitor: LoopLagMonitor) -> AsyncIterator[None]:
    """The monitor's tick running on `clock`, asleep in its first tick; stopped on leaving."""
    stop = asyncio.Event()
    task = asyncio.create_task(monitor.run(stop))
    await settle()
    try:
        yield
    finally:
        stop.set()
        clock.advance(IDLE_TICK_S)  # whichever tick is asleep
        await task


def test_lag_recorded_during_a_probe_makes_it_untrusted() -> None:
    monitor = LoopLagMonitor(ManualClock(), threshold_s=0.05)
    monitor.observe(10.0, 0.002)
    monitor.observe(10.1, 0.2)  # a 200 ms pause ended at 10.1
    monitor.observe(10.2, 0.001)
    assert monitor.trusted(9.5, 9.85)  # before the pause
    assert not monitor.trusted(9.9, 10.05)  # during it
    assert monitor.trusted(10.15, 10.2)  # after it


async def test_a_pause_in_progress_is_seen_before_the_tick_reports_it() -> None:
    clock = ManualClock(start=0.0)
    monitor = LoopLagMonitor(clock, threshold_s=0.05)
    stop = asyncio.Event()
    monitor.flight(1)  # a probe in flight: the tick is fast
    task = asyncio.create_task(monitor.run(stop))
    await asyncio.sleep(0)  # the tick is now asleep, due at TICK_S
    clock._now = TICK_S + 0.3  # the loop was blocked: time passed, the tick has not run yet
    assert monitor.current_lag() == pytest.approx(0.3)
    assert not monitor.trusted(0.0, clock.monotonic())
    stop.set()
    clock.advance(1.0)
    await task


def test_lagging_is_logged_once_and_recovery_too(caplog: pytest.LogCaptureFixture) -> None:
    monitor = LoopLagMonitor(ManualClock(), threshold_s=0.05)
    with caplog.at_level(logging.INFO, logger="recmon.looplag"):
        for at, lag in [(1.0, 0.1), (1.2, 0.2), (1.4, 0.001), (1.6, 0.001)]:
            monitor.observe(at, lag)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "event loop is lagging: latencies measured now are not trusted",
        "event loop caught up",
    ]
    assert monitor.recent_max == pytest.approx(0.2)


def test_a_few_late_milliseconds_untrust_a_probe_without_calling_the_monitor_lagging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = LoopLagMonitor(ManualClock(), threshold_s=0.05, trust_threshold_s=0.005)
    with caplog.at_level(logging.INFO, logger="recmon.looplag"):
        monitor.observe(1.00, 0.001)
        monitor.observe(1.02, 0.008)  # the loop ran 8 ms late just before 1.02
        monitor.observe(1.04, 0.001)
    assert not monitor.trusted(0.98, 1.03)  # in flight across the late stretch: off by ~8 ms
    assert monitor.trusted(1.025, 1.04)
    assert caplog.records == []  # 8 ms is no reason to say the monitor is falling behind


def test_a_deadline_passed_while_the_loop_ran_late_is_not_trusted() -> None:
    monitor = LoopLagMonitor(ManualClock(), threshold_s=0.05, trust_threshold_s=0.005)
    monitor.observe(10.0, 0.001)
    monitor.observe(11.0, 0.3)  # the loop was blocked from 10.7 to 11.0
    monitor.observe(12.0, 0.001)
    assert monitor.deadline_trusted(8.0, 9.0, 9.0001)  # a timeout judged on time
    assert not monitor.deadline_trusted(9.8, 10.8, 11.0001)  # its deadline passed in the pause
    assert not monitor.deadline_trusted(10.5, 11.5, 11.8)  # its timer ran 300 ms late
    # a pause earlier in the probe held its request or answer back just as well
    assert not monitor.deadline_trusted(10.9, 11.9, 11.9001)
    # a pause before the probe began is not the probe's
    assert monitor.deadline_trusted(11.1, 11.6, 11.6001)
    # 300 ms late on a 5 s deadline hides only answers slower than 4.7 s: still a timeout
    assert monitor.deadline_trusted(5.8, 10.8, 11.0001)


def test_pauses_add_up_and_jitter_does_not() -> None:
    monitor = LoopLagMonitor(ManualClock(), threshold_s=0.05, trust_threshold_s=0.005)
    for i in range(100):  # 2 s of ticks each 4 ms late: jitter, no pause
        monitor.observe(20.0 + i * 0.02, 0.004)
    assert monitor.paused_between(20.0, 22.0) == 0.0
    assert monitor.deadline_trusted(20.0, 21.0, 21.0001)
    for i in range(4):  # four 60 ms pauses within one probe: 240 ms in all
        monitor.observe(30.0 + i * 0.2, 0.06)
    assert monitor.paused_between(29.9, 31.0) == pytest.approx(0.24)
    assert not monitor.deadline_trusted(29.9, 30.9, 30.9001)  # a 1 s deadline: 10% is 100 ms


async def test_after_the_ticker_stops_nothing_looks_late() -> None:
    clock = ManualClock(start=0.0)
    monitor = LoopLagMonitor(clock, threshold_s=0.05)
    async with ticking(clock, monitor):
        pass  # started, then stopped
    clock.advance(10.0)  # shutting down: probes still finishing, no tick due
    assert monitor.current_lag() == 0.0
    assert monitor.deadline_trusted(7.0, 10.0, 10.02)


def test_the_largest_lag_since_a_time_is_the_walk_over_the_kept_samples() -> None:
    # max_lag_since keeps the peaks instead of walking the samples: the same answer for any
    # start, also once old samples (and their peaks) have left the kept ones.
    import random

    rng = random.Random(7)
    monitor = LoopLagMonitor(ManualClock(), keep=50)
    now = 0.0
    assert monitor.max_lag_since(0.0) == 0.0 and monitor.recent_max == 0.0
    for _ in range(400):
        lag = rng.choice((0.0, 0.0005, 0.002, 0.004, rng.random() * 0.1))
        now += TICK_S + lag
        monitor.observe(now, lag)
        kept = [s[1] for s in monitor._samples]
        assert monitor.recent_max == max(kept)
        for start in (now - 2.0, now - 0.5, now - 0.1, now - TICK_S, now, now + 1):
            assert monitor.max_lag_since(start) == monitor.max_lag_between(start, now)


async def test_the_tick_is_fast_only_while_probes_are_in_flight() -> None:
    clock = ManualClock(start=0.0)
    monitor = LoopLagMonitor(clock)
    async with ticking(clock, monitor):
        assert clock.next_wakeup == IDLE_TICK_S  # nothing in flight: an idle tick
        clock.advance(0.3)
        monitor.flight(1)  # a probe starts 0.3 s into the idle tick: the tick is due at once
        await settle()
        assert clock.next_wakeup == pytest.approx(0.3 + TICK_S)
        assert monitor.recent_max == 0.0  # woken early is not late
        monitor.flight(1)
        monitor.flight(-1)
        clock.advance(TICK_S)
        await settle()
        assert clock.next_wakeup == pytest.approx(0.3 + 2 * TICK_S)  # one still in flight
        monitor.flight(-1)
        clock.advance(TICK_S)
        await settle()
        assert clock.next_wakeup == pytest.approx(0.3 + 2 * TICK_S + IDLE_TICK_S)  # none: idle
        assert monitor.recent_max == 0.0


async def test_a_pause_as_a_probe_starts_in_an_idle_tick_is_seen_at_once() -> None:
    clock = ManualClock(start=0.0)
    monitor = LoopLagMonitor(clock, trust_threshold_s=0.005)
    async with ticking(clock, monitor):  # idle, due at IDLE_TICK_S
        clock._now = 0.3
        monitor.flight(1)  # a probe starts, then the loop stands still before the tick can run
        clock._now = 0.5
        # due at 0.3 + TICK_S since the probe started, not at the idle tick's IDLE_TICK_S
        assert monitor.current_lag() == pytest.approx(0.5 - 0.3 - TICK_S)
        assert not monitor.trusted(0.3, 0.5)
        await settle()  # the tick runs at last, and reports the pause
        assert monitor.recent_max == pytest.approx(0.5 - 0.3 - TICK_S)
        assert not monitor.trusted(0.3, 0.5)


async def test_an_idle_tick_that_ran_late_is_a_lag() -> None:
    clock = ManualClock(start=0.0)
    monitor = LoopLagMonitor(clock, threshold_s=0.05)
    async with ticking(clock, monitor):
        clock.advance(IDLE_TICK_S + 0.4)  # the loop stood still 0.4 s past the idle tick's due
        await settle()
        assert monitor.recent_max == pytest.approx(0.4)


def test_the_recent_largest_lag_is_the_last_minutes_however_few_the_ticks() -> None:
    monitor = LoopLagMonitor(ManualClock())
    monitor.observe(100.0, 1.5)  # a pause, then idle ticks a second apart
    for i in range(1, int(KEEP_S)):
        monitor.observe(100.0 + i, 0.0)
    assert monitor.recent_max == 1.5  # still within the last minute
    monitor.observe(100.0 + KEEP_S + 1, 0.0)
    assert monitor.recent_max == 0.0  # a minute on, readiness no longer sees it
    assert monitor.max_lag_since(0.0) == 0.0
