"""Which backend behind a target is failing: every probe's answering address counted per
target and check over a recent window, and a finding when the failures concentrate on some
addresses while the others answer ("all 41 failures came from 10.0.0.3:443; 10.0.0.1:443 and
10.0.0.2:443 answered ok (80 probes)"). Counts in time buckets: the cost of a probe does not
grow with the window."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from monitor.core.results import Outcome, ProbeResult

WINDOW_S = 300.0
BUCKET_S = 30.0
# An address is failing when at least this share of its probes failed...
FAILING_SHARE = 0.5
# ...and the failures concentrate when the failing addresses hold this share of them all.
CONCENTRATED_SHARE = 0.9
MIN_FAILURES = 3


@dataclass(frozen=True, slots=True)
class BackendFinding:
    """Failures of one target concentrated on some of its addresses."""

    target: str
    failing: tuple[str, ...]  # the addresses, most failures first
    failures_there: int
    failures: int  # on every address
    healthy: tuple[str, ...]
    ok_elsewhere: int  # ok probes the healthy addresses answered
    # What the failing addresses' failures were, most frequent first ("tls_error expired").
    kinds: tuple[tuple[str, int], ...] = ()

    @property
    def text(self) -> str:
        where = _names(self.failing)
        if self.kinds:
            where += " (" + ", ".join(f"{kind} {n}" for kind, n in self.kinds[:3]) + ")"
        if self.failures_there == self.failures:
            head = f"all {self.failures} failures came from {where}"
        else:
            head = f"{self.failures_there} of {self.failures} failures came from {where}"
        return f"{head}; {_names(self.healthy)} answered ok ({self.ok_elsewhere} probes)"

    def details(self) -> dict[str, object]:
        return {
            "failing_addresses": list(self.failing),
            "healthy_addresses": list(self.healthy),
            "failures_from_failing": self.failures_there,
            "failures": self.failures,
            "ok_from_healthy": self.ok_elsewhere,
            "failure_kinds": dict(self.kinds),
        }


def _names(addresses: tuple[str, ...]) -> str:
    if len(addresses) == 1:
        return addresses[0]
    return ", ".join(addresses[:-1]) + " and " + addresses[-1]


@dataclass(slots=True)
class _Bucket:
    start: float
    ok: int = 0
    failed: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


def failure_kind(result: ProbeResult) -> str:
    """A failure in a few words: its outcome and what distinguishes it (TLS reason, status)."""
    if result.tls_reason:
        return f"{result.outcome.value} {result.tls_reason}"
    if result.status is not None:
        return f"{result.outcome.value} {result.status}"
    return result.outcome.value


class BackendTally:
    """Recent ok and failed probes per (target, check, address). Owned by the alert hub, which
    feeds it every result and asks it when a page names a check's failures. Per check, not
    per target only: a backend that fails searches but answers recommendations is the cause
    of the search failures, and counting its recommendations would hide it (at one failing
    check of two, its share of failures sits near one half)."""

    def __init__(self, window_s: float = WINDOW_S, bucket_s: float = BUCKET_S) -> None:
        self._window_s = window_s
        self._bucket_s = bucket_s
        self._buckets: dict[tuple[str, str], dict[str, deque[_Bucket]]] = {}

    def observe(self, result: ProbeResult, now: float) -> None:
        if not result.address or result.via_proxy or not result.target:
            return  # a proxy's address says nothing of the backends behind it
        # get before setdefault: setdefault's default (a dict, a deque) was built every probe.
        series = self._buckets.get((result.target, result.check))
        if series is None:
            series = self._buckets[(result.target, result.check)] = {}
        buckets = series.get(result.address)
        if buckets is None:
            buckets = series[result.address] = deque()
        start = now - now % self._bucket_s
        if not buckets or buckets[-1].start != start:
            buckets.append(_Bucket(start))
            while buckets and buckets[0].start <= now - self._window_s - self._bucket_s:
                buckets.popleft()
        bucket = buckets[-1]
        if result.outcome is Outcome.OK:
            bucket.ok += 1
        else:
            bucket.failed += 1
            kind = failure_kind(result)
            bucket.kinds[kind] = bucket.kinds.get(kind, 0) + 1

    def finding(self, target: str, check: str, now: float) -> BackendFinding | None:
        """The check's failures on the target concentrated on some addresses, if they are."""
        since = now - self._window_s
        counts: dict[str, tuple[int, int]] = {}
        recent: dict[str, list[_Bucket]] = {}
        for address, buckets in self._buckets.get((target, check), {}).items():
            recent[address] = [b for b in buckets if b.start > since - self._bucket_s]
            ok = sum(b.ok for b in recent[address])
            failed = sum(b.failed for b in recent[address])
            if ok or failed:
                counts[address] = (ok, failed)
        failures = sum(failed for _, failed in counts.values())
        if len(counts) < 2 or failures < MIN_FAILURES:
            return None
        failing = sorted(
            (a for a, (ok, failed) in counts.items() if failed >= FAILING_SHARE * (ok + failed)),
            key=lambda a: (-counts[a][1], a),
        )
        healthy = tuple(sorted(a for a in counts if a not in failing))
        there = sum(counts[a][1] for a in failing)
        if not failing or not healthy or there < CONCENTRATED_SHARE * failures:
            return None
        kinds: Counter[str] = Counter()
        for address in failing:
            for bucket in recent[address]:
                kinds.update(bucket.kinds)
        return BackendFinding(
            target=target,
            failing=tuple(failing),
            failures_there=there,
            failures=failures,
            healthy=healthy,
            ok_elsewhere=sum(counts[a][0] for a in healthy),
            kinds=tuple(sorted(kinds.items(), key=lambda item: (-item[1], item[0]))),
        )
