"""The selector that times its polls: the end of the latest poll, and the busy stretch before
it (how long the loop ran callbacks since the previous poll looked), on an injected clock."""

from __future__ import annotations

import asyncio
import selectors
import socket

import pytest

from monitor.telemetry.polltime import TimedSelector, thread_run_delay


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


def test_bytes_answering_a_request_sent_during_the_busy_stretch_are_doubted_since_the_send() -> (
    None
):
    clock = SteppedClock(0.0, 1.0, 1.0, 1.04, 1.041)
    with TimedSelector(clock) as selector:
        selector.select(0)
        selector.select(0)  # 40 ms of callbacks before this poll
        assert abs(selector.busy_before - 0.04) < 1e-9
        assert abs(selector.doubt_since(0.5) - 0.04) < 1e-9  # sent before the stretch
        assert abs(selector.doubt_since(1.038) - 0.002) < 1e-9  # sent late in it
        assert selector.doubt_since(1.0405) == 0.0  # the clock's own jitter: never negative


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

    def run_delay() -> float:
        readings.append(next(delays))
        return readings[-1]

    mine, theirs = socket.socketpair()
    with mine, theirs, TimedSelector(run_delay=run_delay) as selector:
        selector.register(mine, selectors.EVENT_READ)
        assert selector.select(0.001) == []  # timed out: one reading, no stall
        assert (readings, selector.stalled) == ([1.0], 0.0)
        theirs.send(b"x")
        assert selector.select(0) != []  # did not block: no reading
        assert (readings, selector.stalled) == ([1.0], 0.0)
        assert selector.select(1.0) != []
        assert readings == [1.0, 2.0, 2.008]
        assert abs(selector.stalled - 0.008) < 1e-9
        assert selector.doubt_since(selector.looked_at) >= selector.stalled


def test_the_threads_run_queue_wait_is_read_where_linux_tells_it() -> None:
    run_delay = thread_run_delay()
    if run_delay is None:  # not Linux, or no schedstat
        assert thread_run_delay("/nonexistent/schedstat") is None
        return
    first = run_delay()
    assert 0.0 <= first <= run_delay()  # seconds, never going back
    assert thread_run_delay("/nonexistent/schedstat") is None
