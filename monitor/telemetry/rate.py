"""Events per second over the last minute, in one-second buckets (cheap enough per probe)."""

from __future__ import annotations


class RateMeter:
    def __init__(self, span_s: int = 60) -> None:
        self.span = span_s
        self._seconds = [-1] * span_s
        self._counts = [0] * span_s
        self._first: int | None = None

    def add(self, now: float) -> None:
        """Count one event at monotonic time `now`."""
        second = int(now)
        if self._first is None:
            self._first = second
        slot = second % self.span
        if self._seconds[slot] != second:
            self._seconds[slot] = second
            self._counts[slot] = 0
        self._counts[slot] += 1

    def rate(self, now: float) -> float:
        """Mean events per second over the complete seconds of the span before `now` (only
        those since the first event: a monitor up for 10 s is not averaged over a minute)."""
        current = int(now)
        if self._first is None or current <= self._first:
            return 0.0
        seconds = min(self.span - 1, current - self._first)
        total = sum(
            count
            for second, count in zip(self._seconds, self._counts, strict=True)
            if current - seconds <= second < current
        )
        return total / seconds
