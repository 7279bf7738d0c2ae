"""When was an answer read? The event loop's selector, timing its own polls.

A probe's latency ends when its answer's last byte was there to read, not when the probe's task
next runs: after a burst of answers the loop judges them one after another, and the last one
judged may run many milliseconds after it was read. TimedSelector notes the monotonic time just
before and just after each poll, and the busy stretch before it: how long the loop ran callbacks
since the previous poll looked (this poll's start minus the previous poll's end).

Why a poll's end is the time of what it reported, within that busy stretch. CPython 3.11's
BaseEventLoop._run_once does, in order: (1) select() with timeout 0 if callbacks are ready, else
until the next timer; (2) _process_events, which queues each ready socket's reader callback
(selector_events: _add_callback) behind what is already in the ready queue; (3) moves the due
timers into the ready queue; (4) runs the ready queue as it stands (ntodo = len(_ready)), which
is where a socket transport's _read_ready calls recv() and the protocol's data_received. So:

- Bytes reported by poll k came after poll k-1 looked (what was there then, poll k-1 reported).
  If they came while poll k was blocked, it woke for them and its end is their arrival. If they
  came during the busy stretch before poll k, poll k returned at once and its end is late by at
  most that stretch. So stamping them with poll k's end is late by at most the busy stretch
  before poll k (plus the poll itself, which did not block), which is the read's doubt.
- An answer also came after its request went out: when that was during the busy stretch, the
  doubt is only the part of it after the send (poll k's start minus the send), which keeps a
  request sent late in a long stretch (the last of a burst of sends) from being doubted for
  the whole of it.
- Every reader callback queued by poll k runs before poll k+1 (step 4 runs what was queued), so
  a data_received sees the latest poll's numbers: the poll that reported its bytes. What runs
  ahead of it in the ready queue (other answers of the same poll, timers, earlier callbacks)
  delays the reading, not the stamp. TLS decrypts in the same callback (sslproto, 3.11).
- A poll that blocked ends when the thread runs again, which on a busy machine can be long
  after the bytes woke it: the thread waited on a run queue for a CPU. Linux counts that wait
  (/proc/thread-self/schedstat, run_delay); with `run_delay` given, the wait during a blocking
  poll that reported something is added to the doubt (`stalled`). (A timer-based lag monitor
  sees such a wait only when its own timer falls in it.) Waits while running callbacks are in
  the busy stretch already (wall time).
- Not seen: bytes a paused transport held back (recmon pauses above 256 KiB of unread body:
  not a probe's).

`time` is the loop's clock (time.monotonic is loop.time for the default loop). A loop built
without a TimedSelector (uvloop, a test's loop) has none of this: its readers stamp with
loop.time() in data_received, as before.
"""

from __future__ import annotations

import os
import selectors
import time
from collections.abc import Callable

SCHEDSTAT = "/proc/thread-self/schedstat"


def thread_run_delay(path: str = SCHEDSTAT) -> Callable[[], float] | None:
    """A reader of the seconds the calling thread has waited on a run queue, runnable but
    not running (Linux schedstat's second field), or None where that is not readable. The
    file stays open for the process's life (one descriptor; a pread per reading, ~2 us)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None

    def run_delay() -> float:
        return int(os.pread(fd, 128, 0).split()[1]) / 1e9

    try:
        run_delay()
    except (OSError, ValueError, IndexError):
        os.close(fd)
        return None
    return run_delay


class TimedSelector(selectors.DefaultSelector):
    """The platform's selector (epoll on Linux), timing each poll: `looked_at` and `polled_at`
    are the start and end of the latest poll, `busy_before` the busy stretch before it (the
    doubt of what it reported), `stalled` how long the thread waited for a CPU during it
    (with `run_delay`: thread_run_delay() of the loop's thread). For
    asyncio.SelectorEventLoop(selector); one loop, one thread."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        run_delay: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        self.time = clock
        self._run_delay = run_delay
        # Until the first poll: the loop's start is the previous look.
        self.looked_at = self.polled_at = clock()
        self.busy_before = 0.0
        self.stalled = 0.0

    def doubt_since(self, sent_at: float) -> float:
        """How late the latest poll's end may be for bytes that came after `sent_at` (the
        request they answer went out then): the busy stretch before the poll, or the part of
        it after `sent_at`; plus the wait for a CPU that ended the poll."""
        return min(self.busy_before, max(0.0, self.looked_at - sent_at)) + self.stalled

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        clock = self.time
        start = clock()
        run_delay = self._run_delay
        # Only a poll that may block can end in a run queue's wait (timeout 0: callbacks
        # ready, the thread did not sleep): one reading before, one after if it reported.
        waited = run_delay() if run_delay is not None and timeout != 0 else None
        ready: list[tuple[selectors.SelectorKey, int]] = []
        try:
            ready = super().select(timeout)
            return ready
        finally:
            self.busy_before = max(0.0, start - self.polled_at)
            self.looked_at = start
            self.polled_at = clock()
            self.stalled = 0.0
            if waited is not None and ready and run_delay is not None:
                self.stalled = max(0.0, run_delay() - waited)
