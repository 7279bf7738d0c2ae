"""recmon's own load, read once a second from the ledger's tallies and the event loop's lag:
an alert of its own (never the tenants'), and once a minute a log line saying what to do."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping

from monitor.config.model import OverloadRule
from monitor.core.clock import Clock
from monitor.detect.overload import LAG_SPAN_S, LoadReading, Tally, overloaded, reading_between
from monitor.detect.overload import describe as describe_overload
from monitor.telemetry.looplag import LoopLagMonitor
from monitor.telemetry.metrics import Metrics

# The service's logger, as before the load watch had a module of its own.
log = logging.getLogger("recmon.service")

# recmon reads its own load this often, over this window (withheld timeouts, loop lag).
LOAD_READING_S = 1.0
LOAD_WINDOW_S = 60.0


class LoadWatch:
    def __init__(
        self,
        tally: Callable[[], Tally],
        intervals: Mapping[str, float],
        *,
        rule: OverloadRule,
        loop_lag: LoopLagMonitor,
        emit: Callable[[LoadReading], None],
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        """`tally`: the counts so far (the ledger's). `intervals`: each scheduled (root)
        check's. `emit`: where each reading goes (the hub's overload rule)."""
        self.tally = tally
        self.intervals = dict(intervals)
        self.rule = rule
        self.loop_lag = loop_lag
        self.emit = emit
        self.clock = clock
        self.metrics = metrics
        self._marks: deque[Tally] = deque()  # one a reading, over a minute
        self._logged_at = float("-inf")

    def reading(self) -> LoadReading:
        """What recmon saw of itself over the last minute (or since it started)."""
        latest = self.tally()
        self._marks.append(latest)
        while len(self._marks) > 1 and latest.at - self._marks[1].at >= LOAD_WINDOW_S:
            self._marks.popleft()
        since = self._marks[0].at
        recent = next(m for m in self._marks if m.at >= latest.at - LAG_SPAN_S)
        return reading_between(
            self._marks[0],
            latest,
            intervals=self.intervals,
            loop_lag_s=max(self.loop_lag.max_lag_since(since), self.loop_lag.current_lag()),
            recent_lag_s=max(
                self.loop_lag.max_lag_since(latest.at - LAG_SPAN_S), self.loop_lag.current_lag()
            ),
            recent=recent,
        )

    async def run(self, stop: asyncio.Event) -> None:
        self._marks.append(self.tally())
        while not stop.is_set():
            await self.clock.sleep(LOAD_READING_S)
            try:
                reading = self.reading()
                self.emit(reading)
                now = self.clock.monotonic()
                if overloaded(reading, self.rule) and now - self._logged_at >= 60.0:
                    self._logged_at = now
                    summary, details = describe_overload(reading, self.rule)
                    log.warning(summary, extra={"fields": details})
            except Exception:  # a bug: count it, keep watching
                self.metrics.internal_errors.labels("load").inc()
                log.exception("load reading failed")
