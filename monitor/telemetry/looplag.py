"""The monitor watching itself: how late does the event loop run a timer?

When the loop is late, a probe's measured latency includes the monitor's own delay. Those
measurements are marked untrusted (kept out of latency histograms and drift detection) instead
of being reported as the target's latency.

Two thresholds: a probe is untrusted when the loop ran even a few milliseconds late while it
was in flight (the latency it would report is off by about that much), while "lagging" — logged
and visible on /readyz and /status — means the monitor is falling behind. Measured (bench/): at
2,000 probes/s in one process on 2 shared cores, a 50 ms trust threshold let p95 read 7-29 ms
high; 5 ms on a 20 ms tick kept it within 1 ms, withholding 2.5% of measurements at 1,000/s.

On recmon's own loop an answer's latency is judged by its read instead (monitor.telemetry.
polltime: how busy the loop was before the poll that read it, whatever ran before the probe
was judged); `trusted` still judges the probes whose read cannot tell (no answer, a request
that waited for a new connection, a loop without timed polls), `deadline_trusted` every
timeout, and the lag itself says whether the monitor is lagging.

The tick is fast only while probes are in flight (the engine tells `flight`): a lag matters to
the probes it delays, and a loop woken 50 times a second for nothing was nearly all of an idle
sidecar's CPU (bench/idle.py, medians of three: 1.65% of a core with a tick always fast, 0.25%
now; 2.95% and 2.65% for 6 tenants × 2 checks every 1 s, whose probes are in flight most of
each second). With nothing in flight it ticks every IDLE_TICK_S, and the first probe to start
wakes it: from that moment the loop is due to tick within TICK_S again, so a pause in progress
is seen as before (`current_lag`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from monitor.core.clock import Clock

log = logging.getLogger("recmon.looplag")

TICK_S = 0.02
IDLE_TICK_S = 1.0
# The lags kept (recent_max: readiness, the gauge, /status): the last minute's ticks, however
# many that is (3,000 fast ones; 60 idle ones).
KEEP_S = 60.0
TRUST_THRESHOLD_S = 0.005
LAGGING_THRESHOLD_S = 0.05
# A timeout is withheld when the loop ran late at its deadline by this share of it (or the
# trust threshold, whichever is more).
TIMEOUT_TRUST_SHARE = 0.1


class LoopLagMonitor:
    def __init__(
        self,
        clock: Clock,
        *,
        threshold_s: float = LAGGING_THRESHOLD_S,
        trust_threshold_s: float = TRUST_THRESHOLD_S,
        keep: int = 3000,
    ) -> None:
        self._clock = clock
        self.threshold_s = threshold_s
        self.trust_threshold_s = trust_threshold_s
        # (tick end, lag) samples, newest last: the last KEEP_S seconds', at most `keep`.
        self._samples: deque[tuple[float, float]] = deque(maxlen=keep)
        # The samples no later one outlags, oldest first (their lags strictly fall): the
        # largest lag since any time is the first of these at or after it. The load reading
        # asks for a minute's largest every second: a walk over 3,000 samples, twice, was
        # 1.4% of recmon's CPU on the 10k-tenant fleet (py-spy).
        self._peaks: deque[tuple[float, float]] = deque()
        self._lagging_since: float | None = None
        # When the running tick should wake: past it, the loop is late right now, before the
        # tick itself can say so.
        self._expected_wake: float | None = None
        self._in_flight = 0
        # Set while the tick idles (nothing in flight): the first probe to start wakes it.
        self._idle_waker: asyncio.Future[None] | None = None

    def flight(self, delta: int) -> None:
        """A probe starts (+1) or ends (-1). The first to start while the tick idles wakes it,
        and the loop is due to tick within TICK_S from now: a pause from here on is the
        probe's, seen by `current_lag` before the tick reports it."""
        self._in_flight += delta
        waker = self._idle_waker
        if waker is not None and self._in_flight > 0:
            self._idle_waker = None
            self._expected_wake = self._clock.monotonic() + TICK_S
            _wake(waker)

    def observe(self, tick_end: float, lag: float) -> None:
        self._samples.append((tick_end, lag))
        peaks = self._peaks
        while peaks and peaks[-1][1] <= lag:
            peaks.pop()
        peaks.append((tick_end, lag))
        samples = self._samples
        while samples[0][0] < tick_end - KEEP_S:
            samples.popleft()
        oldest = samples[0][0]
        while peaks[0][0] < oldest:  # its sample is no longer kept
            peaks.popleft()
        if lag >= self.threshold_s and self._lagging_since is None:
            self._lagging_since = tick_end
            log.warning(
                "event loop is lagging: latencies measured now are not trusted",
                extra={"fields": {"lag_s": round(lag, 4)}},
            )
        elif lag < self.threshold_s and self._lagging_since is not None:
            log.info(
                "event loop caught up",
                extra={"fields": {"lagging_for_s": round(tick_end - self._lagging_since, 3)}},
            )
            self._lagging_since = None

    @property
    def recent_max(self) -> float:
        return self._peaks[0][1] if self._peaks else 0.0

    def max_lag_since(self, start: float) -> float:
        """Largest lag of the ticks that ended at or after `start`: max_lag_between(start,
        now), without a walk over the samples."""
        for tick_end, lag in self._peaks:
            if tick_end >= start:
                return lag
        return 0.0

    def max_lag_between(self, start: float, end: float) -> float:
        """Largest lag whose late stretch — the `lag` seconds before its tick ran — overlaps
        [start, end]."""
        worst = 0.0
        for tick_end, lag in reversed(self._samples):
            if tick_end < start:
                break
            if tick_end - lag <= end:
                worst = max(worst, lag)
        return worst

    def current_lag(self) -> float:
        expected = self._expected_wake
        return 0.0 if expected is None else max(0.0, self._clock.monotonic() - expected)

    def trusted(self, start: float, end: float) -> bool:
        """False when the loop ran late during [start, end]: a probe that finishes right after
        a pause (a garbage collection, a slow scrape) is judged before the tick reports it."""
        lag = max(self.max_lag_between(start, end), self.current_lag())
        return lag < self.trust_threshold_s

    def paused_between(self, start: float, end: float) -> float:
        """Seconds the loop stood still during [start, end]: the sum of the lags, each at least
        the trust threshold, whose late stretch overlaps it (jitter below it is not a pause)."""
        total = 0.0
        for tick_end, lag in reversed(self._samples):
            if tick_end < start:
                break
            if lag >= self.trust_threshold_s and tick_end - lag <= end:
                total += lag
        return total

    def deadline_trusted(self, start: float, deadline: float, end: float) -> bool:
        """False when the loop stood still during a probe that timed out (monotonic seconds)
        long enough to have turned a good answer into a timeout: the request went out late,
        or the answer waited behind the monitor's own work, or the deadline's timer fired
        late. Pauses under TIMEOUT_TRUST_SHARE of the deadline do not count: they hide only
        answers slower than deadline - pause, which are slow ones whatever the monitor did."""
        late = max(end - deadline, self.paused_between(start, end) + self.current_lag())
        allowed = max(self.trust_threshold_s, TIMEOUT_TRUST_SHARE * (deadline - start))
        return late < allowed

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                before = self._clock.monotonic()
                if self._in_flight > 0:
                    self._expected_wake = before + TICK_S
                    await self._clock.sleep(TICK_S)
                else:
                    self._expected_wake = before + IDLE_TICK_S
                    await self._idle()
                after = self._clock.monotonic()
                due = self._expected_wake  # brought forward by a probe starting in an idle tick
                self.observe(after, 0.0 if due is None else max(0.0, after - due))
        finally:
            # No tick is due any more (shutting down): an old due time would make everything
            # still running, such as probes cut at their deadline, look late.
            self._expected_wake = None

    async def _idle(self) -> None:
        """Sleep IDLE_TICK_S, or until a probe starts (`flight`)."""
        waker = self._idle_waker = asyncio.get_running_loop().create_future()
        sleeper = asyncio.ensure_future(self._clock.sleep(IDLE_TICK_S))
        sleeper.add_done_callback(lambda _: _wake(waker))
        try:
            await waker
        finally:
            self._idle_waker = None
            sleeper.cancel()


def _wake(waker: asyncio.Future[None]) -> None:
    if not waker.done():
        waker.set_result(None)
