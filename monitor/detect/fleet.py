"""A partial outage across the fleet: every tenant's probes of one check pooled into one series
and judged with a confidence bound. One probe per tenant per interval is thin evidence for a
tenant, but forty tenants give forty probes of the same platform per interval: one request in
three failing is beyond doubt within an interval or two, and 1% noise never is.

The rule fires when the pooled share of failures (`fleet_failures`) or empty answers
(`fleet_empty`) over the last `intervals` probe intervals is above `threshold` at the
`confidence` lower bound, spread across tenants (at least `min_tenants` saw one, and tenants
that failed every probe hold less than half of them: a few broken tenants are their own
incidents). A whole outage (the share at or above `storm.fleet_share` from the start) is left
to the tenants' rules and their fleet-wide storm; once firing, this alert covers it too. It
clears below half the threshold. While it fires, the tenant alerts it explains are folded
under it by the planner instead of paging one by one.

Counts live in time buckets with running totals: a probe costs the same however long the
window. The hub owns one FleetWatch; its alerts go through the shared lifecycle.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist

from monitor.config.model import FleetRule
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.backends import failure_kind
from monitor.detect.lifecycle import Description, Subject, Thresholds, Verdict, advance
from monitor.detect.series import AlertEvent, AlertState, AlertStatus
from monitor.detect.stats import wilson

FAILURES = "fleet_failures"
EMPTY = "fleet_empty"
# Each fleet rule and the tenant rules whose alerts it explains (folded under it).
FOLDS: Mapping[str, frozenset[str]] = {
    FAILURES: frozenset({"failures", "error_rate"}),
    EMPTY: frozenset({"empty_results"}),
}
_BUCKETS_PER_WINDOW = 8


@dataclass(slots=True)
class _Bucket:
    start: float
    probes: int = 0
    bad: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    bad_by_tenant: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class _Window:
    """One check's probes (for one rule) over the window, in buckets, with running totals.
    A probe that is fine costs a bucket's two counters; only failures are kept per tenant."""

    span_s: float
    buckets: deque[_Bucket] = field(default_factory=deque)
    probes: int = 0
    bad: int = 0
    bad_by_tenant: Counter[str] = field(default_factory=Counter)

    def add(self, tenant: str, kind: str | None, now: float) -> None:
        buckets = self.buckets
        if not buckets or now >= buckets[-1].start + self.span_s / _BUCKETS_PER_WINDOW:
            width = self.span_s / _BUCKETS_PER_WINDOW
            buckets.append(_Bucket(now - now % width))
            self._expire(now, width)
        bucket = buckets[-1]
        bucket.probes += 1
        self.probes += 1
        if kind is not None:
            bucket.bad += 1
            bucket.kinds[kind] += 1
            bucket.bad_by_tenant[tenant] += 1
            self.bad += 1
            self.bad_by_tenant[tenant] += 1

    def _expire(self, now: float, width: float) -> None:
        while self.buckets[0].start + width <= now - self.span_s:
            old = self.buckets.popleft()
            self.probes -= old.probes
            if old.bad:
                self.bad -= old.bad
                self.bad_by_tenant -= old.bad_by_tenant


@dataclass(frozen=True, slots=True)
class Segment:
    """The newest probe interval of the window: what the platform does now (every tenant
    probed once), the share a page states."""

    bad: int
    probes: int
    span_s: float
    since: float  # its oldest bucket's start

    @property
    def share(self) -> float:
        return self.bad / self.probes if self.probes else 0.0


def newest(window: _Window, now: float, span_s: float) -> Segment:
    bad, probes, start = _newest(window, now, span_s)
    return Segment(bad, probes, now - start, start)


def _newest(window: _Window, now: float, span_s: float) -> tuple[int, int, float]:
    """newest()'s (bad, probes, since), without building the Segment (most probes of a fleet
    with some failures read only the two counts)."""
    bad = probes = 0
    start = now
    since = now - span_s
    for bucket in reversed(window.buckets):
        if bucket.start < since:
            break
        bad += bucket.bad
        probes += bucket.probes
        start = bucket.start
    return bad, probes, start


def segment_kinds(window: _Window, segment: Segment) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for bucket in window.buckets:
        if bucket.start >= segment.since and bucket.bad:
            kinds.update(bucket.kinds)
    return kinds


def share_words(share: float) -> str:
    """'1 in 3 requests (33%)', '75% of requests'."""
    if 0 < share <= 0.5:
        n = round(1 / share)
        if abs(share - 1 / n) <= 0.03:
            return f"1 in {n} requests ({share:.0%})"
    return f"{share:.0%} of requests"


class FleetWatch:
    """Pooled evidence per check, and its alerts (one owner: the alert hub)."""

    def __init__(
        self,
        rule: FleetRule,
        intervals: Mapping[str, float],
        *,
        counting_checks: frozenset[str],
        fleet_share: float,
    ) -> None:
        self._rule = rule
        self._z = NormalDist().inv_cdf(rule.confidence)
        self._intervals = dict(intervals)
        self._spans = {check: rule.intervals * interval for check, interval in intervals.items()}
        self._counting = counting_checks
        self._fleet_share = fleet_share
        self._windows: dict[tuple[str, str], _Window] = {}
        self._total_tenants = 0
        # rule id ("fleet_failures:search") → its alert: the lifecycle's state.
        self.alerts: dict[str, AlertState] = {}

    def set_total_tenants(self, count: int) -> None:
        self._total_tenants = count

    def adopt(self, rule: str, check: str, alert: AlertState) -> None:
        """A paged fleet alert from before a restart: it resolves only through this rule."""
        self.alerts[f"{rule}:{check}"] = alert

    def observe(self, result: ProbeResult, now: float) -> list[AlertEvent]:
        if not self._rule.enabled or result.check not in self._spans:
            return []
        if result.outcome is Outcome.AUTH_ERROR:
            return []  # recmon's credentials, not the platform: the auth_errors rule's
        events = []
        failed = result.outcome not in (Outcome.OK, Outcome.EMPTY)
        kind = failure_kind(result) if failed else None
        events += self._judge(FAILURES, result, kind, now)
        if result.check in self._counting and not failed:
            empty = "empty" if result.outcome is Outcome.EMPTY else None
            events += self._judge(EMPTY, result, empty, now)
        return events

    def _judge(
        self, rule: str, result: ProbeResult, kind: str | None, now: float
    ) -> list[AlertEvent]:
        key = (rule, result.check)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(self._spans[result.check])
        window.add(result.tenant, kind, now)
        if not window.bad and not self.alerts:
            return []  # nearly every probe: nothing to judge (and no rule id to build)
        rule_id = f"{rule}:{result.check}"
        alert = self.alerts.get(rule_id)
        if not window.bad and alert is None:
            return []
        rule_spec = self._rule
        interval = self._intervals[result.check]
        bad, probes, start = _newest(window, now, interval)
        if alert is None and bad <= rule_spec.threshold * probes:
            return []  # noise: even the share itself (above its lower bound) is below it
        segment = Segment(bad, probes, now - start, start)
        firing = alert is not None and alert.status is AlertStatus.FIRING
        verdict = Verdict(
            self._active(window, segment, firing),
            window.bad < rule_spec.threshold / 2 * window.probes,
            lambda: self._describe(rule, result.check, window, segment),
        )
        event = advance(
            self.alerts,
            rule_id,
            verdict,
            severity=rule_spec.severity,
            now=now,
            subject=Subject(None, result.check),
            # Active for a whole interval before it fires: by then the newest interval holds
            # only probes since the outage began, so the page states its true share; and a
            # whole outage has crossed storm.fleet_share by then and is left to the storm.
            thresholds=Thresholds(hold=interval),
            variant="",
        )
        return [] if event is None else [event]

    def _active(self, window: _Window, segment: Segment, firing: bool) -> bool:
        rule = self._rule
        if segment.probes < rule.min_probes or len(window.bad_by_tenant) < rule.min_tenants:
            return False
        if not firing and segment.share >= self._fleet_share:
            return False  # a whole outage: the tenants' rules and their storm page it
        if wilson(segment.bad, segment.probes, self._z) <= rule.threshold:
            return False
        # Spread: tenants that failed every probe they had in the window (one an interval:
        # broken tenants, each its own incident) hold less than half of the failures.
        every_probe = max(1, int(rule.intervals))
        broken = sum(bad for bad in window.bad_by_tenant.values() if bad >= every_probe)
        return broken * 2 < window.bad

    def _describe(self, rule: str, check: str, window: _Window, segment: Segment) -> Description:
        share = segment.share
        # Pooled over the tenants the check probes; how many of them saw a failure says how
        # far it is spread.
        total = self._total_tenants or segment.probes
        failing = len(window.bad_by_tenant)
        scope = f"all {total} tenants ({failing} saw a failure in the last {window.span_s:g}s)"
        kinds_now = segment_kinds(window, segment)
        span = round(segment.span_s)
        counted = f"{segment.bad} of {segment.probes} probes in the last {span}s"
        if rule == EMPTY:
            text = f"{check} returned no items for {share_words(share)}"
        else:
            text = f"{check} failing for {share_words(share)}"
        kinds = ", ".join(f"{kind} ({n})" for kind, n in kinds_now.most_common(4))
        summary = f"{text} across {scope} — {counted}" + (f": {kinds}" if kinds else "")
        return summary, {
            "scope": "fleet",
            "share": round(share, 4),
            "failed": segment.bad,
            "probes": segment.probes,
            "window_s": span,
            "tenants_probed": total,
            "tenants_failing": failing,
            "total_tenants": total,
            "kinds": dict(kinds_now.most_common(10)),
            # The tenants whose alerts are folded under this incident are among these.
            "tenants": sorted(window.bad_by_tenant)[:100],
        }
