"""When was an answer read? The event loop's selector, timing its own polls.

A probe's latency ends when its answer's last byte was there to read, not when the probe's task
next runs: after a burst of answers the loop judges them one after another, and the last one
judged may run many milliseconds after it was read. TimedSelector notes the monotonic time just
before and just after each poll, and the busy stretch before it: how long the loop ran callbacks
since the previous poll looked (this poll's start minus the previous poll's end).

When the bytes a poll reported came. CPython 3.11's BaseEventLoop._run_once does, in order:
(1) select() with timeout 0 if callbacks are ready, else until the next timer; (2)
_process_events, which queues each ready socket's reader callback (selector_events:
_add_callback) behind what is already in the ready queue; (3) moves the due timers into the
ready queue; (4) runs the ready queue as it stands (ntodo = len(_ready)), which is where a
socket transport's _read_ready calls recv() and the protocol's data_received. And epoll_wait
(level-triggered) returns at once with what is ready when anything is; it sleeps only when
nothing is, and then the first readiness wakes it. So, for poll k, reported bytes came:

- after poll k-1 looked (what was there then, poll k-1 reported): after its end, less the
  few microseconds it took to return (a poll of 32 ready sockets: 9 us median, 16 us p99 on
  the 2-core VM), and after the request they answer went out (`sent_at`);
- if poll k did not sleep (timeout 0, or something was ready when it looked): before it
  looked, so in the busy stretch before it (or the poll itself): [max(previous end, sent_at),
  poll k's end]. Where in it, the selector cannot tell (a burst's answers come while the loop
  still writes the burst's requests), so the stamp is its midpoint and the doubt its
  half-width: off by at most the doubt either way, where the poll's end was late by up to the
  whole interval.
- if poll k slept: after it looked (nothing was ready then), the first of them woke it, and
  its end is late by the thread's wait for a CPU after the wake-up. Linux counts that wait
  (/proc/thread-self/schedstat, run_delay; the wake-up's own latency is in it: the thread
  waits from its enqueue): with `run_delay`, the bytes came in [max(look, end - stalled),
  end], and the stamp is that interval's midpoint, the doubt its half-width. Without it the
  wait is not seen: the stamp is the end, doubted 0. (A timer-based lag monitor sees such a
  wait only when its own timer falls in it.)
- Whether poll k slept: a poll with timeout 0 did not, nor one allowed to block that found
  something ready when it looked: it looks with timeout 0 first, and what that look finds
  came before it. Only when that look finds nothing does it block, and then it slept when the
  thread blocked during it (with `sleeps`: Linux counts a thread's voluntary context
  switches, getrusage's ru_nvcsw, which a preemption does not move) or, without that count,
  when its wall time, less the wait for a CPU, is at least SLEPT_AFTER_S. Either reading alone
  was once fooled by a poll that found its bytes long there: by the clock, the first poll
  after the thread stood still for 100 ms took 127-499 us on a 2-vCPU VM (30 of 30; 0.2% of
  polls over 100 us otherwise); by the switches, the thread waited to take the GIL back from
  another thread as the poll returned (a voluntary switch too). Taken as a sleep, such bytes
  were stamped when the poll looked, late by up to the busy stretch before it, and trusted:
  tests/integration/test_read_timing.py failed 5 runs of 6 by the clock, and by the
  switches, most likely, one full run of the suite in about fifteen (its server is a thread
  of the test's process). The first look costs a blocking poll one more epoll_wait, with
  timeout 0. A sleep shorter than SLEPT_AFTER_S, not counted, is taken as none, whose
  interval holds the sleeping one's too (the stamp is then early by up to the doubt, never
  before the send). Without `run_delay` a poll preempted that long would be taken as a sleep
  (not seen).
- The stamp is never before the send: the interval starts at `sent_at` at the earliest.
- Every reader callback queued by poll k runs before poll k+1 (step 4 runs what was queued), so
  a data_received sees the latest poll's numbers: the poll that reported its bytes. What runs
  ahead of it in the ready queue (other answers of the same poll, timers, earlier callbacks)
  delays the reading, not the stamp. TLS decrypts in the same callback (sslproto, 3.11).
- Not seen: bytes a paused transport held back (recmon pauses above 256 KiB of unread body:
  not a probe's), which a later poll reports again (level-triggered) though they came before.

Measured (bench/run.py, recmon and the sandbox each logging, on the one CLOCK_MONOTONIC, its
stamps and its writes of the answers, one run each): the poll's end was late by 1.17, 0.92
and 2.20 ms on average in the 10,000-tenant fleet with bursts of 32, 48 and 64 runs, and by
1.28 ms at 2,000/s; the midpoint by 0.23, 0.01, 0.30 and 0.04 ms (p95 of the error: 3.48 ->
1.97, 2.53 -> 1.19, 6.16 -> 2.71, 4.54 -> 2.32 ms). On the same answers, with 5 ms of doubt
trusted, the poll's end withheld 8.2, 3.3, 35 and 10.2%, the midpoint 0.4, 0.2, 4.6 and 4.4%.
The sandbox's write fell in the stamp's interval for 98.3-98.9% of answers (the poll's-end
interval's: 98.3-99.3%); the rest, by 1-3.5 ms at the median, most likely reached recmon's
socket later than the sandbox wrote them (a loopback packet left to ksoftirqd, a vCPU's
wake-up: neither is in run_delay), or the sandbox noted its write late (not verified).
What is left of the fleet row's p95 error against the server's own p95 (+1.6 to +2.5 ms) is
the sandbox's queue of a burst's requests (recmon's send to the handler's start: p95 5.0,
3.7 and 7.8 ms with bursts of 32, 48 and 64), which the server's clock leaves out.

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
# A poll allowed to block that took this long, its wait for a CPU aside, slept: one that
# did not sleep takes microseconds (32 ready sockets: 9 us median, 16 us p99, 87 us at most
# of 2,000 polls on the 2-core VM).
SLEPT_AFTER_S = 0.0001


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


def thread_sleeps() -> Callable[[], int] | None:
    """A reader of how many times the calling thread has blocked (its voluntary context
    switches: getrusage(RUSAGE_THREAD).ru_nvcsw, ~0.3 us), or None where that is not readable
    (RUSAGE_THREAD is Linux's)."""
    try:
        import resource
    except ImportError:  # not a Unix
        return None
    who = getattr(resource, "RUSAGE_THREAD", None)
    if who is None:
        return None
    getrusage = resource.getrusage

    def sleeps() -> int:
        return getrusage(who).ru_nvcsw

    try:
        sleeps()
    except OSError:
        return None
    return sleeps


def loop_selector() -> TimedSelector:
    """The selector for an event loop run by the calling thread: its polls timed, with that
    thread's waits for a CPU and its sleeps read where Linux tells them."""
    return TimedSelector(run_delay=thread_run_delay(), sleeps=thread_sleeps())


class TimedSelector(selectors.DefaultSelector):
    """The platform's selector (epoll on Linux), timing each poll: `looked_at` and `polled_at`
    are the start and end of the latest poll, `busy_before` the busy stretch before it,
    `stalled` how long the thread waited for a CPU during it (with `run_delay`:
    thread_run_delay() of the loop's thread), `slept` whether it slept (with `sleeps`:
    thread_sleeps() of the loop's thread; by the clock without). arrival() is the
    stamp and doubt of an answer it reported. For asyncio.SelectorEventLoop(selector); one
    loop, one thread."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        run_delay: Callable[[], float] | None = None,
        sleeps: Callable[[], int] | None = None,
    ) -> None:
        super().__init__()
        self.time = clock
        self._run_delay = run_delay
        self._sleeps = sleeps
        # Whether the latest poll blocked, as `sleeps` counted it (None: not counted).
        self._blocked: bool | None = None
        # Until the first poll: the loop's start is the previous look.
        self.looked_at = self.polled_at = self._before = clock()
        self.stalled = 0.0
        self._may_sleep = False

    @property
    def busy_before(self) -> float:
        """How long the loop ran callbacks between the previous poll and the latest."""
        return max(0.0, self.looked_at - self._before)

    @property
    def slept(self) -> bool:
        """Whether the latest poll slept (the module's text): allowed to, and the thread
        blocked in it (`sleeps`) or, not counted, on the clock SLEPT_AFTER_S or more beyond
        its wait for a CPU."""
        if not self._may_sleep:
            return False
        if self._blocked is not None:
            return self._blocked
        return self.polled_at - self.looked_at - self.stalled >= SLEPT_AFTER_S

    def arrival(self, sent_at: float) -> tuple[float, float]:
        """When bytes the latest poll reported came, answering a request sent at `sent_at`,
        and the doubt of it: the midpoint and half-width of the interval they must have come
        in (the module's text), never before `sent_at`. Worked out here, once an answer,
        rather than at every poll."""
        end = self.polled_at
        if self.slept:
            # After it looked, the first of them when it woke, before the wait for a CPU.
            earliest = max(self.looked_at, end - self.stalled, sent_at)
        else:
            # After the previous poll looked: in the busy stretch since it, or this poll.
            earliest = max(self._before, sent_at)
        latest = max(end, earliest)
        half = (latest - earliest) / 2
        return earliest + half, half

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        clock = self.time
        start = clock()
        run_delay = self._run_delay
        # Only a poll that may block can sleep, or end in a run queue's wait (timeout 0:
        # callbacks ready, the thread did not sleep): one reading before, one after if it
        # reported.
        may_sleep = timeout is None or timeout > 0
        ready: list[tuple[selectors.SelectorKey, int]] = []
        if may_sleep:
            # What is ready when it looks came before it did: a first look with timeout 0
            # tells, where the thread's voluntary switches alone could not (taking the GIL
            # back from another thread after a poll that found its bytes there is one too).
            ready = super().select(0)
            may_sleep = not ready
        waited = run_delay() if run_delay is not None and may_sleep else None
        sleeps = self._sleeps
        blocks = sleeps() if sleeps is not None and may_sleep else None
        try:
            if not ready:
                ready = super().select(timeout)
            return ready
        finally:
            self._before = self.polled_at
            self.looked_at = start
            self.polled_at = clock()
            self._may_sleep = may_sleep
            self.stalled = 0.0
            self._blocked = None
            if waited is not None and ready and run_delay is not None:
                self.stalled = max(0.0, run_delay() - waited)
            if blocks is not None and ready and sleeps is not None:
                self._blocked = sleeps() > blocks
