"""The selector that times its polls: the end of the latest poll, and the busy stretch before
it (how long the loop ran callbacks since the previous poll looked), on an injected clock."""

from __future__ import annotations

import asyncio
import selectors
import socket
import threading
import time
from collections.abc import Callable

import pytest

from monitor.telemetry.polltime import (
    TimedSelector,
    loop_selector,
    thread_run_delay,
    thread_sleeps,
)


class SteppedClock:
    """Returns the times it is given, one per call (the selector reads it twice a poll)."""

    def __init__(self, *times: float) -> None:
        self._times = list(times)

    def __call__(self) -> float:
        return self._times.pop(0)


def test_a_poll_records_its_end_and_the_busy_stretch_before_it() -> None:
    clock = SteppedClock(10.0, 10.001, 10.0012, 10.0312, 10.0313, 10.0313, 10.5)
    with TimedSelector(clock) as selector:
        assert (selector.polled_at, selector.busy_before) == (10.0, 0.0)
        assert selector.select(0) == []  # looked at 10.001, done at 10.0012
        assert selector.polled_at == 10.0012
        assert abs(selector.busy_before - 0.001) < 1e-9  # since it was made
        selector.select(0)  # the loop ran callbacks for 30 ms before looking again
        assert selector.polled_at == 10.0313
        assert abs(selector.busy_before - 0.03) < 1e-9
        selector.select(0)  # looked straight away, then waited (idle is not busy)
        assert (selector.looked_at, selector.polled_at) == (10.0313, 10.5)
        assert selector.busy_before == 0.0


def test_bytes_a_poll_that_did_not_sleep_reported_came_in_the_busy_stretch_before_it() -> None:
    """A poll with timeout 0 reported them: they came after the previous poll looked and
    before this one did. The stamp is the middle of that stretch, doubted by half of it
    either way (the poll's end, the old stamp, was late by up to all of it)."""
    clock = SteppedClock(0.0, 1.0, 1.0, 1.04, 1.0401)
    with TimedSelector(clock) as selector:
        selector.select(0)  # ends at 1.0
        selector.select(0)  # 40 ms of callbacks before this poll
        assert not selector.slept
        stamp, doubt = selector.arrival(0.5)  # sent before the stretch
        assert abs(stamp - 1.02005) < 1e-9
        assert abs(doubt - 0.02005) < 1e-9
        assert abs(stamp - doubt - 1.0) < 1e-9  # no earlier than the previous poll's end


def test_an_answer_to_a_request_sent_late_in_the_busy_stretch_is_stamped_after_the_send() -> None:
    clock = SteppedClock(0.0, 1.0, 1.0, 1.04, 1.0401)
    with TimedSelector(clock) as selector:
        selector.select(0)
        selector.select(0)
        stamp, doubt = selector.arrival(1.038)  # the last of a burst of sends
        assert abs(stamp - 1.03905) < 1e-9
        assert abs(doubt - 0.00105) < 1e-9
        # The clock's own jitter (a send stamped after the poll's end): never before the send.
        assert selector.arrival(1.0405) == (1.0405, 0.0)


def test_a_poll_allowed_to_block_that_returned_at_once_did_not_sleep() -> None:
    """Something was ready when it looked (it took microseconds): what it reported came
    in the busy stretch before it, as with timeout 0."""
    clock = SteppedClock(0.0, 1.0, 1.0, 1.01, 1.01002)
    mine, theirs = socket.socketpair()
    with mine, theirs, TimedSelector(clock) as selector:
        selector.select(0)
        selector.register(mine, selectors.EVENT_READ)
        theirs.send(b"x")  # there when it looks: it returns at once
        assert selector.select(5.0) != []
        assert not selector.slept
        stamp, doubt = selector.arrival(0.0)
        assert abs(stamp - 1.00501) < 1e-9
        assert abs(doubt - 0.00501) < 1e-9


def test_bytes_that_woke_a_sleeping_poll_came_at_its_end_less_the_wait_for_a_cpu() -> None:
    """It slept 50 ms after a 10 ms busy stretch: nothing was ready when it looked, so the
    busy stretch is not in the doubt; the bytes woke it 2 ms before it ended (the thread
    waited that long on a run queue), or came during that wait."""
    clock = SteppedClock(0.0, 1.0, 1.0, 1.01, 1.06)
    delays = iter([3.0, 3.002])
    mine, theirs = socket.socketpair()

    sent: list[bytes] = []

    def run_delay() -> float:
        if not sent:  # read as it blocks: the byte comes after its first look
            sent.append(b"x")
            theirs.send(b"x")  # the clock says when: the poll reports it
        return next(delays)

    with mine, theirs, TimedSelector(clock, run_delay=run_delay) as selector:
        selector.select(0)
        selector.register(mine, selectors.EVENT_READ)
        assert selector.select(1.0) != []
        assert selector.slept
        assert abs(selector.stalled - 0.002) < 1e-9
        stamp, doubt = selector.arrival(0.5)
        assert abs(stamp - 1.059) < 1e-9
        assert abs(doubt - 0.001) < 1e-9


def test_without_the_threads_run_queue_wait_a_sleeping_poll_stamps_its_end() -> None:
    clock = SteppedClock(0.0, 1.0, 1.0, 1.01, 1.06)
    mine, theirs = socket.socketpair()
    with mine, theirs, TimedSelector(clock, sleeps=sent_as_it_blocks(theirs)) as selector:
        selector.select(0)
        selector.register(mine, selectors.EVENT_READ)
        assert selector.select(None) != []  # the clock says the byte came 50 ms into it
        assert selector.slept
        assert selector.arrival(0.5) == (1.06, 0.0)


def sent_as_it_blocks(theirs: socket.socket, *counts: int) -> Callable[[], int]:
    """The thread's voluntary switches for a selector, read as `counts` (one before and one
    after a poll that blocked; default 0 then 1), sending a byte on `theirs` at the first
    reading: as the poll blocks, after its first look found nothing."""
    blocks = iter(counts or (0, 1))
    first = True

    def sleeps() -> int:
        nonlocal first
        if first:
            theirs.send(b"x")
            first = False
        return next(blocks)

    return sleeps


def poll_counted(clock: SteppedClock, *counts: int, sent_before: bool) -> TimedSelector:
    """A selector after its second poll, one allowed to block that reported a byte, sent
    before it (`sent_before`) or as it blocked, with the thread's voluntary switches read as
    `counts` around that poll."""
    blocks = iter(counts)
    mine, theirs = socket.socketpair()
    sleeps = (lambda: next(blocks)) if sent_before else sent_as_it_blocks(theirs, *counts)
    with mine, theirs, TimedSelector(clock, sleeps=sleeps) as selector:
        selector.select(0)
        selector.register(mine, selectors.EVENT_READ)
        if sent_before:
            theirs.send(b"x")
        assert selector.select(1.0) != []
    return selector


def test_a_poll_that_found_its_bytes_there_did_not_sleep_however_long_it_took() -> None:
    """The thread did not block in it (its voluntary switches did not move), so its bytes
    came in the busy stretch before it, though the poll took 1 ms on the clock (the first
    poll after the thread stood still, on a VM: 127-499 us). By the clock alone it slept,
    and the 40 ms busy stretch left the doubt."""
    selector = poll_counted(SteppedClock(0.0, 1.0, 1.0, 1.04, 1.041), 7, 7, sent_before=True)
    assert not selector.slept
    stamp, doubt = selector.arrival(0.5)
    assert abs(stamp - 1.0205) < 1e-9
    assert abs(doubt - 0.0205) < 1e-9


def test_a_poll_the_thread_blocked_in_slept_however_short_it_was() -> None:
    """It blocked (one voluntary switch) and its bytes woke it 50 us later: a sleep, though
    under SLEPT_AFTER_S on the clock, so the busy stretch before it is not in the doubt."""
    selector = poll_counted(SteppedClock(0.0, 1.0, 1.0, 1.01, 1.01005), 7, 8, sent_before=False)
    assert selector.slept
    assert selector.arrival(0.5) == (1.01005, 0.0)


def test_a_poll_that_found_its_bytes_there_did_not_sleep_whatever_the_switches_say() -> None:
    """Its bytes were there when it looked, but the thread's voluntary switches moved: it
    waited to take the GIL back from another thread as the poll returned. Not a sleep: they
    came in the 40 ms busy stretch before it, not when it looked (stamped so, they were
    trusted with up to 40 ms left out of their latency)."""
    selector = poll_counted(SteppedClock(0.0, 1.0, 1.0, 1.04, 1.041), 7, 8, sent_before=True)
    assert not selector.slept
    stamp, doubt = selector.arrival(0.5)
    assert abs(stamp - 1.0205) < 1e-9
    assert abs(doubt - 0.0205) < 1e-9


def test_the_threads_sleeps_are_counted_where_linux_tells_them() -> None:
    """A real poll: one that finds its bytes there does not move the count, however long the
    thread stood still before it; one that waits for them does."""
    if thread_sleeps() is None:
        pytest.skip("the thread's voluntary switches are Linux's (RUSAGE_THREAD)")
    mine, theirs = socket.socketpair()
    with mine, theirs, loop_selector() as selector:
        selector.register(mine, selectors.EVENT_READ)
        theirs.send(b"x")
        time.sleep(0.05)
        assert selector.select(1.0) != []
        assert not selector.slept
        mine.recv(16)
        timer = threading.Timer(0.02, theirs.send, (b"y",))
        timer.start()
        assert selector.select(1.0) != []
        timer.join()
        assert selector.slept


def test_a_poll_that_raises_is_still_counted() -> None:
    """An interrupted poll (the loop's own error handling) still ends a busy stretch."""
    clock = SteppedClock(0.0, 1.0, 1.5)
    selector = TimedSelector(clock)
    selector.close()
    with pytest.raises(ValueError):  # epoll: an I/O operation on a closed epoll object
        selector.select(0)
    assert (selector.busy_before, selector.polled_at) == (1.0, 1.5)


def test_a_loop_built_on_it_polls_through_it() -> None:
    """asyncio.SelectorEventLoop(selector) reports each socket's readiness through its
    select(): a reader callback sees the numbers of the poll that reported its bytes."""
    selector = TimedSelector()
    seen: list[tuple[float, float]] = []
    sent: list[float] = []
    mine, theirs = socket.socketpair()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        got = loop.create_future()

        def readable() -> None:
            mine.recv(16)
            seen.append((selector.polled_at, loop.time()))
            got.set_result(None)

        def send() -> None:
            sent.append(loop.time())
            theirs.send(b"x")

        loop.add_reader(mine.fileno(), readable)
        loop.call_later(0.01, send)
        await got
        loop.remove_reader(mine.fileno())

    try:
        with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(selector)) as runner:
            runner.run(main())
    finally:
        mine.close()
        theirs.close()
    polled_at, read_at = seen[0]
    # Stamped by the poll after the send (the one that saw the byte), before the callback ran.
    assert sent[0] <= polled_at <= read_at


def test_a_blocking_poll_that_reports_adds_the_threads_wait_for_a_cpu_to_the_doubt() -> None:
    """The bytes woke the thread, which then waited 8 ms on a run queue before the poll could
    return: its end is late by that much too. A poll that did not block (timeout 0) or
    reported nothing reads nothing."""
    delays = iter([1.0, 2.0, 2.008])
    readings: list[float] = []
    mine, theirs = socket.socketpair()

    def run_delay() -> float:
        readings.append(next(delays))
        if readings[-1] == 2.0:  # read as it blocks: the byte comes after its first look
            theirs.send(b"y")
        return readings[-1]

    with mine, theirs, TimedSelector(run_delay=run_delay) as selector:
        selector.register(mine, selectors.EVENT_READ)
        assert selector.select(0.001) == []  # timed out: one reading, no stall
        assert (readings, selector.stalled) == ([1.0], 0.0)
        theirs.send(b"x")
        assert selector.select(0) != []  # did not block: no reading
        assert selector.select(1.0) != []  # found it there when it looked: no reading
        assert (readings, selector.stalled) == ([1.0], 0.0)
        mine.recv(16)
        assert selector.select(1.0) != []
        assert readings == [1.0, 2.0, 2.008]
        assert abs(selector.stalled - 0.008) < 1e-9


def test_the_threads_run_queue_wait_is_read_where_linux_tells_it() -> None:
    run_delay = thread_run_delay()
    if run_delay is None:  # not Linux, or no schedstat
        assert thread_run_delay("/nonexistent/schedstat") is None
        return
    first = run_delay()
    assert 0.0 <= first <= run_delay()  # seconds, never going back
    assert thread_run_delay("/nonexistent/schedstat") is None
