"""Per-host rate limiting on top of asyncio-throttle."""

from __future__ import annotations

import asyncio
import math

from asyncio_throttle.throttler import Throttler

from monitor.config.units import Rate

# asyncio-throttle counts requests in a sliding window. A one-second window lets a whole second's
# budget leave at once; a 100 ms window spreads requests out while keeping the count exact.
WINDOW_S = 0.1


class HostThrottle:
    def __init__(self, rate: Rate) -> None:
        per_window = max(1, math.ceil(rate.per_second * WINDOW_S))
        period = per_window / rate.per_second
        self.rate = rate
        self._throttler = Throttler(
            rate_limit=per_window, period=period, retry_interval=min(0.01, period / per_window)
        )
        # Throttler polls: with a lock in front, one waiter polls instead of every waiting probe.
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            await self._throttler.acquire()  # type: ignore[no-untyped-call]
