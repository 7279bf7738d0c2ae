"""Probe deadlines: asyncio.timeout's verdicts with one timer per length, on an injected clock
(a loop stand-in whose timers run when the test says), and on the real loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import pytest

from monitor.probing.deadlines import Deadlines, start_deadline


class FakeTask:
    def __init__(self) -> None:
        self.cancels = 0
        self.uncancels = 0

    def cancel(self) -> bool:
        self.cancels += 1
        return True

    def uncancel(self) -> int:
        self.uncancels += 1
        return self.cancels - self.uncancels

    def cancelling(self) -> int:
        return self.cancels - self.uncancels


class FakeLoop:
    """Time stands still until `advance`, which runs the timers due by then."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[tuple[float, Callable[..., None], tuple[Any, ...]]] = []
        self.task: FakeTask = FakeTask()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> object:
        self.timers.append((when, callback, args))
        return object()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while due := [t for t in self.timers if t[0] <= self.now]:
            for timer in due:
                self.timers.remove(timer)
                timer[1](*timer[2])


@pytest.fixture
def loop(monkeypatch: pytest.MonkeyPatch) -> FakeLoop:
    fake = FakeLoop()
    monkeypatch.setattr(asyncio, "current_task", lambda loop=None: fake.task)
    return fake


def deadlines(loop: FakeLoop, seconds: float) -> Deadlines:
    return Deadlines(cast(asyncio.AbstractEventLoop, loop), seconds)


def test_work_ended_in_time_is_never_cancelled(loop: FakeLoop) -> None:
    queue = deadlines(loop, 5)
    deadline = queue.start()
    loop.advance(4.9)
    assert deadline.end() is False
    loop.advance(1)
    assert loop.task.cancels == 0
    assert not loop.timers  # the timer went with the last open deadline


def test_a_deadline_past_due_cancels_its_task_and_owns_the_cancellation(loop: FakeLoop) -> None:
    queue = deadlines(loop, 5)
    deadline = queue.start()
    loop.advance(5)
    assert loop.task.cancels == 1
    assert deadline.end() is True  # the CancelledError is a timeout
    assert loop.task.cancelling() == 0  # uncancelled, as asyncio.timeout leaves it


def test_a_cancellation_from_outside_stays_one(loop: FakeLoop) -> None:
    queue = deadlines(loop, 5)
    deadline = queue.start()
    loop.task.cancel()  # a stop, while the deadline also runs out
    loop.advance(5)
    assert deadline.end() is False  # not the deadline's: the CancelledError goes on


def test_one_timer_serves_every_deadline_of_a_length(loop: FakeLoop) -> None:
    queue = deadlines(loop, 5)
    started = []
    for _ in range(1000):
        started.append(queue.start())
        loop.advance(0.001)
    assert len(loop.timers) == 1
    for deadline in started[:-1]:
        deadline.end()
    loop.advance(4.0)  # the first deadline's time: all but the last ended, the last not due
    assert loop.task.cancels == 0
    assert len(loop.timers) == 1 and loop.timers[0][0] == started[-1].when
    loop.advance(1.0)
    assert loop.task.cancels == 1  # the last one, at its own time
    assert started[-1].end() is True


def test_deadlines_expire_in_order_each_at_its_time(loop: FakeLoop) -> None:
    queue = deadlines(loop, 1)
    first = queue.start()
    loop.advance(0.5)
    second = queue.start()
    loop.advance(0.5)
    assert loop.task.cancels == 1  # the first only
    assert first.end() is True
    loop.advance(0.5)
    assert loop.task.cancels == 2
    assert second.end() is True


async def test_on_the_real_loop_a_deadline_cancels_a_hang_and_spares_the_quick() -> None:
    async def bounded(work: float) -> str:
        deadline = start_deadline(0.05)
        timed_out = False
        try:
            try:
                await asyncio.sleep(work)
            finally:
                timed_out = deadline.end()
        except asyncio.CancelledError:
            if not timed_out:
                raise
            return "timeout"
        return "done"

    assert await asyncio.gather(bounded(0), bounded(10), bounded(0.001)) == [
        "done",
        "timeout",
        "done",
    ]
    assert asyncio.current_task() is not None
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def _expires() -> str:
    deadline = start_deadline(0.02)
    timed_out = False
    try:
        try:
            await asyncio.sleep(5)
        finally:
            timed_out = deadline.end()
    except asyncio.CancelledError:
        return "timeout" if timed_out else "cancelled"
    return "done"


def test_a_deadline_is_kept_by_the_loop_it_was_started_on() -> None:
    """One loop after another, and two at once in two threads (the last loop is remembered,
    found again without asking for the running loop): each expires its own deadlines."""
    assert asyncio.run(_expires()) == "timeout"
    assert asyncio.run(_expires()) == "timeout"

    async def two_loops() -> list[str]:
        first = asyncio.create_task(_expires())
        await asyncio.sleep(0)  # its deadline started on this loop
        other = await asyncio.to_thread(asyncio.run, _expires())
        return [other, await first, await _expires()]

    assert asyncio.run(two_loops()) == ["timeout", "timeout", "timeout"]
