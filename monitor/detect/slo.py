"""Service level objectives and their error budget's burn rate, alerted as in the Google SRE
Workbook ("Alerting on SLOs", multiwindow, multi-burn-rate): a page when the budget burns 14.4x
over 1 h and 5 m, or 6x over 6 h and 30 m; a ticket at 1x over 3 d and 6 h. Those windows are
the Workbook's for a 30-day objective; another SLO window scales them alike (as Pyrra does).
The long window says the burn is significant, the short one that it still goes on, so an alert
resolves minutes after the burn stops.

An objective is per check, over every tenant's probes of it pooled (the fleet); with
`per_tenant`, each tenant's probes are also judged on their own. The burn rate of a window is
its error ratio over the budget's (1 - objective). Counts live in time buckets (60 per long
window: 1 min for the 1 h/5 m pair, 72 min for 3 d) with running totals, so a probe costs the
same however long the windows. A window younger than its span (recmon never saw the check
before) counts the time before the first probe as within the objective: a fresh start never
pages on its first failure. A burn needs `min_errors` errors in the long window: one or two
failed probes of a thin series are noise, not a burn.

The alert hub owns one SloWatch; its alerts go through the shared lifecycle. Its state (the
buckets and the alerts) is saved in the state file, so a `recmon once` CronJob keeps its
windows across runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from monitor.config.model import SloRule, SloSpec
from monitor.config.units import format_duration
from monitor.core.results import ProbeResult
from monitor.detect.codec import alert_from_json, alert_to_json
from monitor.detect.lifecycle import (
    Description,
    Subject,
    Thresholds,
    Verdict,
    advance,
    forgotten,
)
from monitor.detect.series import AlertEvent, AlertState, AlertStatus

PAGE = "slo_burn"
TICKET = "slo_slow_burn"
RULES = (PAGE, TICKET)
REFERENCE_WINDOW_S = 30 * 86400.0
BUCKETS = 60


@dataclass(frozen=True, slots=True)
class BurnWindows:
    """One multiwindow condition: the budget burns at least `factor` times its sustainable
    rate over both windows."""

    long_s: float
    short_s: float
    factor: float

    def words(self) -> str:
        return f"{self.factor:g}x over {_span(self.long_s)} and {_span(self.short_s)}"


# The Workbook's table for a 30-day window.
WORKBOOK: Mapping[str, tuple[BurnWindows, ...]] = {
    PAGE: (BurnWindows(3600.0, 300.0, 14.4), BurnWindows(21600.0, 1800.0, 6.0)),
    TICKET: (BurnWindows(259200.0, 21600.0, 1.0),),
}


def burn_windows(window_s: float) -> dict[str, tuple[BurnWindows, ...]]:
    """The Workbook's conditions for an SLO over `window_s`: its durations scaled alike."""
    scale = window_s / REFERENCE_WINDOW_S
    return {
        rule: tuple(BurnWindows(w.long_s * scale, w.short_s * scale, w.factor) for w in pairs)
        for rule, pairs in WORKBOOK.items()
    }


def release_after(window_s: float) -> float:
    """How long no condition may hold before an alert resolves: the shortest short window
    (5 min for 30 days), so a burn hovering at its threshold is one alert, not a flapping one."""
    return min(w.short_s for pairs in burn_windows(window_s).values() for w in pairs)


def _span(seconds: float) -> str:
    """'1 h', '5 m', '3 d', '7.5 m'."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def _period(seconds: float) -> str:
    days = seconds / 86400.0
    if days >= 1 and days == int(days):
        return f"{int(days)} days" if days != 1 else "1 day"
    return format_duration(seconds)


@dataclass(slots=True)
class _View:
    """A window ending now: the newest `n` buckets of a ring (the current one included). Its
    totals over the closed buckets are kept running; the current bucket is added on reading."""

    n: int
    probes: int = 0  # in its closed buckets
    bad: int = 0


class _Ring:
    """Counts in fixed buckets over one long window; views are windows ending now. A probe
    costs two increments; the views' running totals move only when a bucket closes."""

    __slots__ = ("bad", "current", "ids", "latest", "probes", "size", "views", "width")

    def __init__(self, long_s: float, views_s: Iterable[float]) -> None:
        self.width = long_s / BUCKETS
        self.size = BUCKETS + 1
        self.ids = [-1] * self.size
        self.probes = [0] * self.size
        self.bad = [0] * self.size
        self.views = {span: _View(max(1, round(span / self.width))) for span in views_s}
        self.latest = -1  # the current bucket's id
        self.current = 0  # its slot

    def add(self, now: float, bad: bool) -> None:
        if now // self.width > self.latest:
            self.advance(now)
        self.probes[self.current] += 1
        if bad:
            self.bad[self.current] += 1

    def totals(self, span_s: float) -> tuple[int, int]:
        """(probes, errors) of the view `span_s` (after advance to now)."""
        view = self.views[span_s]
        return view.probes + self.probes[self.current], view.bad + self.bad[self.current]

    def advance(self, now: float) -> None:
        """Open the bucket of `now`: the current one closes into the views, buckets that
        left a view leave its totals."""
        b = int(now // self.width)
        old = self.latest
        if b <= old:
            return
        for view in self.views.values():
            if b - old >= view.n:
                view.probes = view.bad = 0  # everything it held has left it
                continue
            view.probes += self.probes[self.current]  # the closed bucket
            view.bad += self.bad[self.current]
            for gone in range(old - view.n + 1, b - view.n + 1):
                slot = gone % self.size
                if self.ids[slot] == gone:
                    view.probes -= self.probes[slot]
                    view.bad -= self.bad[slot]
        self.latest = b
        self.current = b % self.size
        self.ids[self.current], self.probes[self.current], self.bad[self.current] = b, 0, 0

    def rebuild(self) -> None:
        """The views' totals from the buckets (after loading them)."""
        self.current = self.latest % self.size
        for view in self.views.values():
            kept = [
                slot
                for slot in range(self.size)
                if self.latest - view.n < self.ids[slot] < self.latest
            ]
            view.probes = sum(self.probes[s] for s in kept)
            view.bad = sum(self.bad[s] for s in kept)

    def copy(self) -> tuple[float, int, list[int], list[int], list[int]]:
        """Its buckets as they are now (cheap: three list copies), to encode elsewhere."""
        return self.width, self.latest, list(self.ids), list(self.probes), list(self.bad)

    def load(self, data: list[Any]) -> None:
        """From ring_json: [width, latest, probes of the buckets latest-60..latest, [[offset,
        bad], ...]]."""
        width, latest, probes, bad = data
        if abs(float(width) - self.width) > 1e-9 or len(probes) != self.size:
            return  # saved for another SLO window: start afresh
        self.latest = int(latest)
        first = self.latest - self.size + 1
        for offset, count in enumerate(probes):
            if count:
                b = first + offset
                slot = b % self.size
                self.ids[slot], self.probes[slot] = b, int(count)
        for offset, count in bad:
            slot = (first + int(offset)) % self.size
            if self.ids[slot] == first + int(offset):
                self.bad[slot] = int(count)
        self.rebuild()


def ring_json(copy: tuple[float, int, list[int], list[int], list[int]]) -> list[Any]:
    """A ring's copy as the state file keeps it: its probe counts dense (newest last), its
    errors sparse — about 150 bytes a ring."""
    width, latest, ids, probes, bad = copy
    size = len(ids)
    first = latest - size + 1
    dense = [0] * size
    errors = []
    for slot, b in enumerate(ids):
        if b >= first and probes[slot]:
            dense[b - first] = probes[slot]
            if bad[slot]:
                errors.append([b - first, bad[slot]])
    return [width, latest, dense, sorted(errors)]


@dataclass(frozen=True, slots=True)
class Burn:
    """A window's reading: probes, errors and the burn rate (1.0 spends the budget exactly
    over the SLO window)."""

    span_s: float
    probes: int
    errors: int
    rate: float


class _Budget:
    """One subject's (a check, or a tenant's probes of it) windows and alerts."""

    __slots__ = ("alerts", "born", "rings")

    def __init__(self, born: float, window_s: float) -> None:
        self.born = born
        pairs = [w for ws in burn_windows(window_s).values() for w in ws]
        rings: dict[float, set[float]] = {}
        for w in pairs:
            rings.setdefault(w.long_s, {w.long_s}).add(w.short_s)
        rings.setdefault(window_s, set()).add(window_s)  # the budget over the SLO window
        self.rings = {long_s: _Ring(long_s, views) for long_s, views in sorted(rings.items())}
        self.alerts: dict[str, AlertState] = {}

    def add(self, now: float, bad: bool) -> None:
        for ring in self.rings.values():
            ring.add(now, bad)

    def burn(
        self, long_s: float, span_s: float, objective: float, now: float, interval: float
    ) -> Burn:
        ring = self.rings[long_s]
        ring.advance(now)
        probes, bad = ring.totals(span_s)
        # Time before the first probe counts as within the objective (no evidence of a burn).
        elapsed = now - self.born + interval
        coverage = min(1.0, elapsed / span_s) if span_s > 0 else 1.0
        ratio = bad / probes * coverage if probes else 0.0
        return Burn(span_s, probes, bad, ratio / (1 - objective))

    def may_burn(self, conditions: Iterable[BurnWindows], min_errors: int) -> bool:
        """Whether any condition's long window holds enough errors to be judged."""
        return any(self.rings[w.long_s].totals(w.long_s)[1] >= min_errors for w in conditions)


@dataclass(frozen=True, slots=True)
class SloTarget:
    """A check's objective as the watch applies it."""

    spec: SloSpec
    interval: float
    conditions: Mapping[str, tuple[BurnWindows, ...]] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)


class SloWatch:
    """Every check's objective, its windows and alerts (one owner: the alert hub)."""

    def __init__(
        self, rule: SloRule, objectives: Mapping[str, SloSpec], intervals: Mapping[str, float]
    ) -> None:
        self._rule = rule
        self._targets = {
            check: SloTarget(
                spec,
                intervals.get(check, 60.0),
                burn_windows(spec.window),
                Thresholds(release=release_after(spec.window)),
            )
            for check, spec in objectives.items()
        }
        self._errors = {check: spec.error_outcomes for check, spec in objectives.items()}
        # (tenant or None for the fleet, check) → its budget.
        self._budgets: dict[tuple[str | None, str], _Budget] = {}

    @property
    def enabled(self) -> bool:
        return self._rule.enabled and bool(self._targets)

    def observe(self, result: ProbeResult, now: float) -> list[AlertEvent]:
        target = self._targets.get(result.check)
        if target is None or not self._rule.enabled:
            return []
        bad = result.outcome in self._errors[result.check]
        events = self._judge(None, result.check, target, bad, now)
        if target.spec.per_tenant:
            events += self._judge(result.tenant, result.check, target, bad, now)
        return events

    def _judge(
        self, tenant: str | None, check: str, target: SloTarget, bad: bool, now: float
    ) -> list[AlertEvent]:
        budget = self._budgets.get((tenant, check))
        if budget is None:
            budget = self._budgets[(tenant, check)] = _Budget(now, target.spec.window)
        if budget.born > now:
            budget.born = now  # restored without its windows: they start now
        budget.add(now, bad)
        events = []
        for rule in RULES:
            alerted = rule in budget.alerts
            if not alerted and not budget.may_burn(target.conditions[rule], self._rule.min_errors):
                continue  # nearly every probe: too few errors in any long window to judge
            burning = []
            for w in target.conditions[rule]:
                long = self._burn(budget, target, w.long_s, w.long_s, now)
                if long.rate < w.factor or long.errors < self._rule.min_errors:
                    continue  # the short window is read only when the long one burns
                short = self._burn(budget, target, w.long_s, w.short_s, now)
                if short.rate >= w.factor:
                    burning.append((w, long, short))
            if not burning and not alerted:
                continue  # nothing starts, nothing to resolve
            # What the page says: the fastest condition burning (while resolving: the first).
            first = target.conditions[rule][0]
            shown = (
                burning[0]
                if burning
                else (
                    first,
                    self._burn(budget, target, first.long_s, first.long_s, now),
                    self._burn(budget, target, first.long_s, first.short_s, now),
                )
            )
            severity = self._rule.page_severity if rule == PAGE else self._rule.ticket_severity
            event = advance(
                budget.alerts,
                rule,
                Verdict(
                    bool(burning),
                    not burning,
                    partial(self.describe, tenant, check, target, budget, shown, now),
                ),
                severity=severity,
                now=now,
                subject=Subject(tenant, check),
                thresholds=target.thresholds,
                variant="",
            )
            if event is not None:
                events.append(event)
        return events

    @staticmethod
    def _burn(budget: _Budget, target: SloTarget, long_s: float, span_s: float, now: float) -> Burn:
        return budget.burn(long_s, span_s, target.spec.objective, now, target.interval)

    def describe(
        self,
        tenant: str | None,
        check: str,
        target: SloTarget,
        budget: _Budget,
        reading: tuple[BurnWindows, Burn, Burn],
        now: float,
    ) -> Description:
        windows, long, short = reading
        spec = target.spec
        period = spec.window
        whole = self._burn(budget, target, period, period, now)
        spent_long = long.rate * long.span_s / period
        left = 1 - whole.rate
        who = check if tenant is None else f"{check} for tenant {tenant}"
        scope = "" if tenant is None else " (this tenant's probes)"
        summary = (
            f"{who}: error budget burning {long.rate:.1f}× ({_span(long.span_s)}) and "
            f"{short.rate:.1f}× ({_span(short.span_s)}) — {_percent(spec.objective)} over "
            f"{_period(period)}{scope}, {spent_long:.1%} of the budget spent in the last "
            f"{_last(long.span_s)}, "
            + (f"{left:.0%} left" if left > 0 else f"budget exhausted ({whole.rate:.0%} spent)")
        )
        return summary, {
            "objective": spec.objective,
            "slo_window_s": period,
            "condition": windows.words(),
            "burn_rate": {
                _span(long.span_s): round(long.rate, 2),
                _span(short.span_s): round(short.rate, 2),
            },
            "errors": {_span(long.span_s): long.errors, _span(short.span_s): short.errors},
            "probes": {_span(long.span_s): long.probes, _span(short.span_s): short.probes},
            "budget_spent_in_long_window": round(spent_long, 4),
            "budget_left": round(left, 4),
            "scope": "fleet" if tenant is None else "tenant",
        }

    # --- what it knows -------------------------------------------------------------------------

    def firing(self) -> list[tuple[str | None, str, str, AlertState]]:
        """(tenant or None, check, rule, state) of every firing SLO alert."""
        return [
            (tenant, check, rule, alert)
            for (tenant, check), budget in self._budgets.items()
            for rule, alert in budget.alerts.items()
            if alert.status is AlertStatus.FIRING
        ]

    def forget_tenant(self, tenant: str, now: float) -> list[AlertEvent]:
        """A tenant is no longer probed: its budgets go, its firing alerts resolve."""
        events = []
        for key in [k for k in self._budgets if k[0] == tenant]:
            budget = self._budgets.pop(key)
            for rule, alert in budget.alerts.items():
                event = forgotten(rule, alert, Subject(tenant, key[1]), now)
                if event is not None:
                    events.append(event)
        return events

    def adopt(self, event: AlertEvent, alert: AlertState) -> bool:
        """A paged SLO alert the saved state missed: it resolves only through its rule."""
        if event.check not in self._targets or event.rule not in RULES:
            return False
        key = (event.tenant, event.check)
        budget = self._budgets.get(key)
        if budget is None:
            spec = self._targets[event.check].spec
            budget = self._budgets[key] = _Budget(event.started_at, spec.window)
        if event.rule in budget.alerts:
            return False
        budget.alerts[event.rule] = alert
        return True

    # --- the state file ----------------------------------------------------------------------

    def snapshot(self, *, tenant_windows: bool = True) -> SloSnapshot:
        """The windows and alerts as they are now, to encode anywhere (list copies only).
        Without `tenant_windows`, per-tenant budgets keep only their alerts (copying 10,000 of
        them took ~0.4-1 s on a busy machine, too long for the event loop every minute); they
        restore as fresh windows."""
        return SloSnapshot(
            tuple(
                (
                    tenant,
                    check,
                    budget.born if tenant_windows or tenant is None else None,
                    tuple((long_s, ring.copy()) for long_s, ring in budget.rings.items())
                    if tenant_windows or tenant is None
                    else (),
                    dict(budget.alerts),
                )
                for (tenant, check), budget in self._budgets.items()
            )
        )

    def to_json(self) -> dict[str, Any]:
        return self.snapshot().to_json()

    def restore(self, data: Mapping[str, Any]) -> None:
        """Take over saved windows and alerts; a check whose SLO is gone, or whose window
        changed, keeps its alerts (so they resolve) but starts its counts afresh. Raises
        ValueError on a broken document."""
        try:
            for entry in data["budgets"]:
                check = str(entry["check"])
                target = self._targets.get(check)
                if target is None:
                    continue
                tenant = entry["tenant"]
                born = entry["born"]
                # Windows not saved: fresh ones, born at their first probe (math.inf till then).
                budget = _Budget(math.inf if born is None else float(born), target.spec.window)
                for long_s, ring in budget.rings.items():
                    saved = entry["rings"].get(str(long_s))
                    if saved is not None:
                        ring.load(saved)
                budget.alerts = {str(r): alert_from_json(a) for r, a in entry["alerts"].items()}
                self._budgets[(None if tenant is None else str(tenant), check)] = budget
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"unreadable SLO state: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class SloSnapshot:
    """SloWatch's state at one moment (copies), for the state file."""

    budgets: tuple[
        tuple[
            str | None,
            str,
            float | None,  # None: its windows were not saved
            tuple[tuple[float, tuple[float, int, list[int], list[int], list[int]]], ...],
            dict[str, AlertState],
        ],
        ...,
    ]

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 2,
            "budgets": [
                {
                    "tenant": tenant,
                    "check": check,
                    "born": born,
                    "rings": {str(long_s): ring_json(copy) for long_s, copy in rings},
                    "alerts": {r: alert_to_json(a) for r, a in alerts.items()},
                }
                for tenant, check, born, rings, alerts in self.budgets
            ],
        }


def _percent(objective: float) -> str:
    return f"{objective * 100:.4g}%"


def _last(span_s: float) -> str:
    words = _span(span_s)
    return {"1 h": "hour", "1 d": "day"}.get(words, words)
