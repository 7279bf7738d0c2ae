"""A probe's overall deadline, as asyncio.timeout keeps it, for less CPU per probe.

asyncio.timeout arms a timer per probe and cancels it when the probe ends, almost always long
before it is due: a Timeout object, two coroutines, a TimerHandle pushed on the loop's heap and
later swept from it (about 5% of recmon's CPU at 1,000 probes/s, py-spy --gil). Deadlines of one
length fall due in the order they were set, so they wait in a queue, and one timer, for the
oldest deadline still open, serves them all: a probe that ends only marks its deadline ended.
What expires is what asyncio.timeout expires: the task inside the deadline is cancelled, and the
CancelledError it raises is the deadline's unless someone else cancelled the task too.
"""

from __future__ import annotations

import asyncio
from collections import deque
from threading import get_ident


class Deadline:
    """One task's deadline. `end()` when the work it bounds is over (a finally clause)."""

    __slots__ = ("_cancelling", "_expired", "_task", "ended", "when")

    def __init__(self, task: asyncio.Task[object], when: float) -> None:
        self._task: asyncio.Task[object] | None = task
        self.when = when
        self._cancelling = task.cancelling()
        self.ended = False
        self._expired = False

    def end(self) -> bool:
        """Ended: True if it expired first, so that a CancelledError raised inside it is this
        deadline's own (to become a timeout), not a cancellation from outside."""
        self.ended = True
        task, self._task = self._task, None  # not kept alive while the deadline waits its turn
        if not self._expired or task is None:
            return False
        return task.uncancel() <= self._cancelling

    def expire(self) -> None:
        task = self._task
        if task is not None:
            self._expired = True
            task.cancel()


class Deadlines:
    """The open deadlines of one length on one loop, oldest first, one timer for them all."""

    __slots__ = ("_loop", "_open", "_seconds", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        self._loop = loop
        self._seconds = seconds
        self._open: deque[Deadline] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> Deadline:
        """A deadline `seconds` from now for the current task."""
        task = asyncio.current_task(self._loop)
        assert task is not None, "a deadline bounds a task"
        deadline = Deadline(task, self._loop.time() + self._seconds)
        waiting = self._open
        while waiting and waiting[0].ended:  # the queue holds the open ones, and a few more
            waiting.popleft()
        waiting.append(deadline)
        if self._timer is None:
            self._timer = self._loop.call_at(deadline.when, self._expire, deadline.when)
        return deadline

    def _expire(self, due: float) -> None:
        """The timer for a deadline due at `due` (the loop runs timers up to its clock
        resolution early): every deadline due by then expires; the ended ones are dropped."""
        self._timer = None
        now = max(due, self._loop.time())
        waiting = self._open
        while waiting:
            deadline = waiting[0]
            if not deadline.ended:
                if deadline.when > now:
                    self._timer = self._loop.call_at(deadline.when, self._expire, deadline.when)
                    return
                deadline.expire()
            waiting.popleft()


# The deadlines of the loop that ran last, by length. A new loop (tests start one per test)
# gets its own; a loop's queues live as long as it has deadlines open.
_current: tuple[asyncio.AbstractEventLoop, dict[float, Deadlines]] | None = None


def start_deadline(seconds: float) -> Deadline:
    """A deadline `seconds` from now for the running task: asyncio.timeout(seconds), to be
    ended (Deadline.end) in a finally clause around the work it bounds."""
    global _current
    current = _current
    # The last loop, while it runs in this thread, is the running loop (a thread runs one
    # loop at a time): asyncio.get_running_loop() asks the OS for the process id on every
    # call (Python 3.11), a system call a probe (~0.6% of recmon's CPU, py-spy --native).
    if current is None or getattr(current[0], "_thread_id", None) != get_ident():
        loop = asyncio.get_running_loop()
        if current is None or current[0] is not loop:
            current = _current = (loop, {})
    queues = current[1]
    queue = queues.get(seconds)
    if queue is None:
        queue = queues[seconds] = Deadlines(loop, seconds)
    return queue.start()
