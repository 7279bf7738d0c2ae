"""Server-side latency: what the target itself saw, to compare the monitor's numbers with."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

KEEP = 200_000


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class ServerStats:
    durations_ms: dict[str, deque[float]] = field(default_factory=dict)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    hanging: int = 0  # requests held open by a hang fault right now, for tests to wait on

    def record(self, check: str, status: int, duration_ms: float) -> None:
        bucket = self.durations_ms.get(check)
        if bucket is None:
            bucket = self.durations_ms[check] = deque(maxlen=KEEP)
            self.statuses[check] = Counter()
        bucket.append(duration_ms)
        self.statuses[check][status] += 1

    def reset(self) -> None:
        self.durations_ms.clear()
        self.statuses.clear()

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for check, values in self.durations_ms.items():
            ordered = sorted(values)
            out[check] = {
                "requests": sum(self.statuses[check].values()),
                "statuses": {str(k): v for k, v in sorted(self.statuses[check].items())},
                "latency_ms": {
                    "count": len(ordered),
                    "p50": _percentile(ordered, 0.50),
                    "p95": _percentile(ordered, 0.95),
                    "p99": _percentile(ordered, 0.99),
                },
            }
        return out
