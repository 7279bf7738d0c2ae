"""SLO burn-rate alerts in virtual time, one test per window pair of the Workbook's table: a
fast burn pages within minutes through 1 h/5 m, a steady 8x burn pages through 6 h/30 m only,
a 2x burn only tickets (3 d/6 h), no burn (and noise under the objective) is nothing; the
page states the objective, burn rates, windows and budget; the windows survive the state file."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable

import pytest

from monitor.config.model import SloRule, SloSpec
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.series import AlertEvent, EventKind
from monitor.detect.slo import PAGE, TICKET, SloWatch, _Ring, burn_windows, release_after

OBJECTIVE = SloSpec(objective=0.995)  # 30 days
STEP = 6.0  # the fleet's probes: 10 tenants every 60 s
TENANTS = [f"t{i}" for i in range(10)]
HOUR = 3600.0
DAY = 86400.0


def watch(spec: SloSpec = OBJECTIVE) -> SloWatch:
    return SloWatch(SloRule(), {"search": spec}, {"search": 60.0})


def every(share: float) -> Callable[[int], bool]:
    """Errors spread evenly: `share` of the probes, deterministic."""
    return lambda n: int((n + 1) * share) > int(n * share)


class Stream:
    """The fleet's probes of one check, one every STEP seconds, in virtual time."""

    def __init__(self, slo: SloWatch, start: float = 1_000_000.0) -> None:
        self.slo = slo
        self.now = start
        self.n = 0
        self.events: list[tuple[float, AlertEvent]] = []

    def run(self, seconds: float, bad: Callable[[int], bool], step: float = STEP) -> Stream:
        end = self.now + seconds
        while self.now < end:
            tenant = TENANTS[self.n % len(TENANTS)]
            outcome = Outcome.HTTP_ERROR if bad(self.n) else Outcome.OK
            result = ProbeResult(tenant, "search", outcome, 0.05, self.now, status=503)
            self.events += [(self.now, e) for e in self.slo.observe(result, self.now)]
            self.n += 1
            self.now += step
        return self

    def fired(self, rule: str) -> list[float]:
        return [at for at, e in self.events if e.rule == rule and e.kind is EventKind.FIRING]

    def resolved(self, rule: str) -> list[float]:
        return [at for at, e in self.events if e.rule == rule and e.kind is EventKind.RESOLVED]


def healthy_for(seconds: float, step: float = STEP) -> Stream:
    return Stream(watch()).run(seconds, lambda n: False, step)


def test_the_workbook_windows_and_their_scaling() -> None:
    pairs = burn_windows(30 * DAY)
    assert [(w.long_s, w.short_s, w.factor) for w in pairs[PAGE]] == [
        (HOUR, 300.0, 14.4),
        (6 * HOUR, 1800.0, 6.0),
    ]
    assert [(w.long_s, w.short_s, w.factor) for w in pairs[TICKET]] == [(3 * DAY, 6 * HOUR, 1.0)]
    week = burn_windows(7.5 * DAY)[PAGE][0]
    assert (week.long_s, week.short_s) == (900.0, 75.0)
    assert release_after(30 * DAY) == 300.0


def test_a_fast_burn_pages_through_1h_and_5m_within_minutes_and_resolves_after_recovery() -> None:
    stream = healthy_for(7 * HOUR)
    outage = stream.now
    stream.run(15 * 60, lambda n: True)  # every probe failing: a 200x burn
    (fired,) = stream.fired(PAGE)
    # 7.2% of the last hour's probes (14.4 x 0.5%) failed after 4.3 min; the 5 m window agrees.
    assert 4 * 60 <= fired - outage <= 5 * 60
    page = next(e for at, e in stream.events if e.kind is EventKind.FIRING)
    assert (page.tenant, page.check, page.severity.value) == (None, "search", "critical")
    assert page.summary.startswith("search: error budget burning 14.")
    assert re.search(r"× \(1 h\) and 1\d\d\.\d× \(5 m\) — 99.5% over 30 days", page.summary)
    assert "of the budget spent in the last hour" in page.summary and "% left" in page.summary
    assert page.details["condition"] == "14.4x over 1 h and 5 m"
    recovered = stream.now
    stream.run(60 * 60, lambda n: False)
    (resolved,) = stream.resolved(PAGE)
    # 15 minutes at 200x hold the 6 h/30 m pair (4% of 6 h, half of 30 m) until the 30 m
    # window clears; then the release (5 m) passes: one alert, resolved, never flapping.
    assert 25 * 60 <= resolved - recovered <= 36 * 60
    assert stream.fired(TICKET) == []


def test_a_steady_8x_burn_pages_through_6h_and_30m_never_through_the_hour() -> None:
    stream = healthy_for(7 * HOUR)
    start = stream.now
    stream.run(6 * HOUR, every(0.04))  # 4% failing: 8x the budget of 0.5%
    (fired,) = stream.fired(PAGE)
    # 3% of six hours' probes failed after 4.5 h; the hour's 4% never reaches 7.2%.
    assert 4.4 * HOUR <= fired - start <= 4.6 * HOUR
    page = next(e for at, e in stream.events if e.rule == PAGE)
    assert page.details["condition"] == "6x over 6 h and 30 m"
    assert re.search(r"\(6 h\) and [78]\.\d× \(30 m\)", page.summary)
    assert "spent in the last 6 h" in page.summary


def test_a_2x_burn_only_tickets_through_3d_and_6h() -> None:
    stream = Stream(watch())
    stream.run(2 * DAY, every(0.01), step=30.0)  # 1% failing for two days: 2x, from the start
    assert stream.fired(PAGE) == []
    (fired,) = stream.fired(TICKET)
    # A fresh start: the time before it counts as good, so 3 days at 0.5% take 1.5 days.
    assert 1.45 * DAY <= fired - 1_000_000.0 <= 1.55 * DAY
    ticket = next(e for at, e in stream.events if e.rule == TICKET)
    assert ticket.severity.value == "warning"
    assert ticket.details["condition"] == "1x over 3 d and 6 h"
    assert re.search(r"\(3 d\) and 2\.\d× \(6 h\)", ticket.summary)


def test_no_burn_and_noise_under_the_objective_are_nothing() -> None:
    stream = Stream(watch())
    stream.run(4 * DAY, every(0.004), step=30.0)  # 0.4%: within 99.5%
    rng = random.Random(7)
    stream.run(DAY, lambda n: rng.random() < 0.003)
    assert stream.events == []


def test_a_fresh_start_or_a_thin_series_never_pages_on_one_or_two_failures() -> None:
    thin = SloSpec(objective=0.999)  # probed once a minute: one failure is 1.7% of the hour
    fresh = Stream(watch(thin)).run(2 * HOUR, lambda n: n == 0, step=60.0)  # the very first
    assert fresh.events == []
    # Two failures in five minutes are 3.3% of the hour (33x) and 40% of the 5 m window,
    # but two failed probes are not a burn (min_errors: 3); a third is.
    stream = Stream(watch(thin)).run(7 * HOUR, lambda n: False, step=60.0)
    stream.run(10 * 60, lambda n: n in (421, 423), step=60.0)
    assert stream.events == []
    stream.run(10 * 60, lambda n: n == 431, step=60.0)
    assert [e.rule for _, e in stream.events] == [PAGE]


def test_per_tenant_objectives_page_the_tenant_alone() -> None:
    spec = SloSpec(objective=0.995, per_tenant=True)
    stream = Stream(watch(spec)).run(7 * HOUR, lambda n: False)
    stream.run(15 * 60, lambda n: n % len(TENANTS) == 3)  # t3 failing every probe
    pages = [e for _, e in stream.events if e.kind is EventKind.FIRING]
    assert [(e.rule, e.tenant) for e in pages] == [(PAGE, "t3")]
    assert pages[0].summary.startswith("search for tenant t3: error budget burning")


def test_the_windows_and_alerts_survive_the_state_file() -> None:
    stream = healthy_for(7 * HOUR)
    stream.run(5 * 60, lambda n: True)
    assert len(stream.fired(PAGE)) == 1
    saved = json.loads(json.dumps(stream.slo.to_json()))
    again = watch()
    again.restore(saved)
    assert [(t, c, r) for t, c, r, _ in again.firing()] == [(None, "search", PAGE)]
    # The restored windows still hold the outage: recovery resolves it, nothing fires anew.
    resumed = Stream(again, start=stream.now)
    resumed.run(30 * 60, lambda n: False)
    assert resumed.fired(PAGE) == [] and len(resumed.resolved(PAGE)) == 1


def test_a_broken_state_document_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unreadable SLO state"):
        watch().restore({"budgets": [{"check": "search"}]})


@pytest.mark.background  # CPU-bound, no clock: tests/run.py runs it at idle priority
def test_ring_views_match_a_brute_force_count() -> None:
    """Buckets with running totals against a recount of the same buckets, through gaps."""
    rng = random.Random(3)
    ring = _Ring(HOUR, (HOUR, 300.0))
    probes: list[tuple[float, bool]] = []
    now = 5_000_000.0
    for _ in range(5000):
        now += rng.choice([1.0, 7.0, 30.0, 400.0, 5000.0]) if rng.random() < 0.01 else 3.0
        bad = rng.random() < 0.2
        ring.add(now, bad)
        probes.append((now, bad))
        for span, view in ring.views.items():
            current = int(now // ring.width)
            kept = [b for at, b in probes if int(at // ring.width) > current - view.n]
            assert ring.totals(span) == (len(kept), sum(kept)), span


def test_a_periodic_save_keeps_tenant_alerts_and_starts_their_windows_afresh() -> None:
    spec = SloSpec(objective=0.995, per_tenant=True)
    stream = Stream(watch(spec)).run(7 * HOUR, lambda n: False)
    stream.run(10 * 60, lambda n: n % len(TENANTS) == 3)  # t3 failing: its page
    assert [e.tenant for _, e in stream.events] == ["t3"]
    saved = json.loads(json.dumps(stream.slo.snapshot(tenant_windows=False).to_json()))
    again = watch(spec)
    again.restore(saved)
    assert [(t, r) for t, _, r, _ in again.firing()] == [("t3", PAGE)]
    # t3's windows start afresh at its next probe (as at a first start: no page for the few
    # failures they hold), and its alert resolves through them once t3 recovers.
    resumed = Stream(again, start=stream.now)
    resumed.run(30 * 60, lambda n: n < 30 and n % len(TENANTS) == 3)
    resumed.run(30 * 60, lambda n: False)
    assert [(e.kind, e.tenant) for _, e in resumed.events] == [(EventKind.RESOLVED, "t3")]


def test_a_tenant_no_longer_monitored_resolves_and_leaves_nothing_behind() -> None:
    spec = SloSpec(objective=0.995, per_tenant=True)
    stream = Stream(watch(spec)).run(7 * HOUR, lambda n: False)
    stream.run(10 * 60, lambda n: n % len(TENANTS) == 3)
    (resolved,) = stream.slo.forget_tenant("t3", stream.now)
    assert (resolved.kind, resolved.rule, resolved.tenant) == (EventKind.RESOLVED, PAGE, "t3")
    assert resolved.summary.startswith("resolved (tenant no longer monitored): search for")
    assert stream.slo.firing() == []
    assert [b["tenant"] for b in stream.slo.to_json()["budgets"]].count("t3") == 0
