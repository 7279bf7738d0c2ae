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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.config.model import SloRule, SloSpec
from monitor.config.units import format_duration
from monitor.core.results import ProbeResult
from monitor.detect.codec import alert_from_json, alert_to_json
from monitor.detect.lifecycle import Description, Subject, Thresholds, Verdict, advance
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
    """The newest `n` buckets of a ring (the current one included), with running totals."""

    n: int
    low: int = 0  # the oldest bucket id it includes
    probes: int = 0
    bad: int = 0


class _Ring:
    """Counts in fixed buckets over one long window; views are windows ending now."""

    __slots__ = ("bad", "ids", "latest", "probes", "size", "views", "width")

    def __init__(self, long_s: float, views_s: Iterable[float]) -> None:
        self.width = long_s / BUCKETS
        self.size = BUCKETS + 1
        self.ids = [-1] * self.size
        self.probes = [0] * self.size
        self.bad = [0] * self.size
        self.views = {span: _View(max(1, round(span / self.width))) for span in views_s}
        self.latest = -1

    def add(self, now: float, bad: bool) -> None:
        b = self.advance(now)
        slot = b % self.size
        if self.ids[slot] != b:
            self.ids[slot], self.probes[slot], self.bad[slot] = b, 0, 0
        self.probes[slot] += 1
        self.bad[slot] += bad
        for view in self.views.values():
            view.probes += 1
            view.bad += bad

    def advance(self, now: float) -> int:
        """Drop from every view the buckets that left it; the current bucket's id."""
        b = max(int(now // self.width), self.latest)
        if b == self.latest:
            return b
        self.latest = b
        for view in self.views.values():
            low = b - view.n + 1
            if low - view.low >= self.size:
                view.probes = view.bad = 0
            else:
                for old in range(view.low, low):
                    slot = old % self.size
                    if self.ids[slot] == old:
                        view.probes -= self.probes[slot]
                        view.bad -= self.bad[slot]
            view.low = max(view.low, low)
        return b

    def rebuild(self) -> None:
        """The views' totals from the buckets (after loading them)."""
        for view in self.views.values():
            view.low = self.latest - view.n + 1
            kept = [
                slot
                for slot in range(self.size)
                if self.ids[slot] >= view.low and self.ids[slot] <= self.latest
            ]
            view.probes = sum(self.probes[s] for s in kept)
            view.bad = sum(self.bad[s] for s in kept)

    def to_json(self) -> list[Any]:
        buckets = [
            [self.ids[s], self.probes[s], self.bad[s]]
            for s in range(self.size)
            if self.ids[s] > self.latest - self.size and self.probes[s]
        ]
        return [self.width, self.latest, sorted(buckets)]

    def load(self, data: list[Any]) -> None:
        width, latest, buckets = data
        if abs(float(width) - self.width) > 1e-9:
            return  # saved for another SLO window: start afresh
        self.latest = int(latest)
        for b, probes, bad in buckets:
            slot = int(b) % self.size
            self.ids[slot], self.probes[slot], self.bad[slot] = int(b), int(probes), int(bad)
        self.rebuild()


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
        view = ring.views[span_s]
        # Time before the first probe counts as within the objective (no evidence of a burn).
        elapsed = now - self.born + interval
        coverage = min(1.0, elapsed / span_s) if span_s > 0 else 1.0
        ratio = view.bad / view.probes * coverage if view.probes else 0.0
        return Burn(span_s, view.probes, view.bad, ratio / (1 - objective))

    def erring(self) -> bool:
        """Any error in any window (else nothing can burn)."""
        return any(v.bad for ring in self.rings.values() for v in ring.views.values())


@dataclass(frozen=True, slots=True)
class SloTarget:
    """A check's objective as the watch applies it."""

    spec: SloSpec
    interval: float
    conditions: Mapping[str, tuple[BurnWindows, ...]] = field(default_factory=dict)


class SloWatch:
    """Every check's objective, its windows and alerts (one owner: the alert hub)."""

    def __init__(
        self, rule: SloRule, objectives: Mapping[str, SloSpec], intervals: Mapping[str, float]
    ) -> None:
        self._rule = rule
        self._targets = {
            check: SloTarget(spec, intervals.get(check, 60.0), burn_windows(spec.window))
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
        budget.add(now, bad)
        if not budget.alerts and not budget.erring():
            return []  # nearly every probe: nothing to judge
        events = []
        for rule in RULES:
            readings = [
                (
                    w,
                    self._burn(budget, target, w.long_s, w.long_s, now),
                    self._burn(budget, target, w.long_s, w.short_s, now),
                )
                for w in target.conditions[rule]
            ]
            burning = [
                (w, long, short)
                for w, long, short in readings
                if long.rate >= w.factor
                and short.rate >= w.factor
                and long.errors >= self._rule.min_errors
            ]
            # What the page says: the fastest condition burning (while resolving: the first).
            shown = (burning or readings)[0]
            severity = self._rule.page_severity if rule == PAGE else self._rule.ticket_severity
            event = advance(
                budget.alerts,
                rule,
                Verdict(
                    bool(burning),
                    not burning,
                    _describer(self, tenant, check, target, budget, shown, now),
                ),
                severity=severity,
                now=now,
                subject=Subject(tenant, check),
                thresholds=Thresholds(release=release_after(target.spec.window)),
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

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "budgets": [
                {
                    "tenant": tenant,
                    "check": check,
                    "born": budget.born,
                    "rings": {str(k): ring.to_json() for k, ring in budget.rings.items()},
                    "alerts": {r: alert_to_json(a) for r, a in budget.alerts.items()},
                }
                for (tenant, check), budget in self._budgets.items()
            ],
        }

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
                budget = _Budget(float(entry["born"]), target.spec.window)
                for long_s, ring in budget.rings.items():
                    saved = entry["rings"].get(str(long_s))
                    if saved is not None:
                        ring.load(saved)
                budget.alerts = {str(r): alert_from_json(a) for r, a in entry["alerts"].items()}
                self._budgets[(None if tenant is None else str(tenant), check)] = budget
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"unreadable SLO state: {exc!r}") from None


def _describer(
    watch: SloWatch,
    tenant: str | None,
    check: str,
    target: SloTarget,
    budget: _Budget,
    reading: tuple[BurnWindows, Burn, Burn],
    now: float,
) -> Callable[[], Description]:
    return lambda: watch.describe(tenant, check, target, budget, reading, now)


def _percent(objective: float) -> str:
    return f"{objective * 100:.4g}%"


def _last(span_s: float) -> str:
    words = _span(span_s)
    return {"1 h": "hour", "1 d": "day"}.get(words, words)
