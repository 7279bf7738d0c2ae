"""SLO burn alerts through the hub and the planner: paged at once as one fleet incident per
check, and — as in a `recmon once` CronJob, which starts a new process every run — the windows
survive the state file: a monitor restarted mid-burn pages exactly when one that never
stopped does."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.app.assembly import build_monitor
from monitor.app.persist import Persistence
from monitor.app.service import Monitor
from monitor.core.clock import ManualClock
from monitor.core.notifications import Action, Notification
from monitor.core.results import Outcome, ProbeResult
from monitor.state.store import StateStore
from tests.helpers import BASE_CONFIG, load

SEARCH = '    expect: {items: "$.results", min_items: 1}\n'
# A one-day window scales the Workbook's: the page at 14.4x over 2 min and 10 s.
CONFIG = BASE_CONFIG.replace(SEARCH, SEARCH + "    slo: {objective: 99%, window: 1d}\n", 1)
START = 1_800_000_000.0


def monitor(clock: ManualClock, sent: list[tuple[float, Notification]]) -> Monitor:
    return build_monitor(
        load(CONFIG),
        clock=clock,
        registry=CollectorRegistry(),
        route=lambda d: sent.extend((clock.time(), n) for n in d.notifications),
    )


def probe(m: Monitor, clock: ManualClock, until: float, outcome: Outcome) -> None:
    """acme and globex searched every 10 s (BASE_CONFIG's interval), until `until`."""
    while clock.time() < until:
        clock.advance(5)
        tenant = "acme" if int(clock.time()) % 10 else "globex"
        status = 503 if outcome is Outcome.HTTP_ERROR else 200
        result = ProbeResult(tenant, "search", outcome, 0.05, clock.time(), status=status)
        m.hub.observe(result)
        m.hub.tick()


def slo_pages(sent: list[tuple[float, Notification]]) -> list[tuple[float, Action, str]]:
    return [(at, n.action, n.key) for at, n in sent if n.rule.startswith("slo_")]


def test_a_burn_pages_once_as_the_checks_incident_and_resolves() -> None:
    clock = ManualClock(START)
    sent: list[tuple[float, Notification]] = []
    m = monitor(clock, sent)
    probe(m, clock, START + 3600, Outcome.OK)
    probe(m, clock, START + 3660, Outcome.HTTP_ERROR)
    probe(m, clock, START + 7200, Outcome.OK)
    pages = slo_pages(sent)
    assert [(a, k) for _, a, k in pages] == [
        (Action.TRIGGER, "recmon/slo_burn/search/-"),
        (Action.RESOLVE, "recmon/slo_burn/search/-"),
    ]
    # 14.4% of the last 2 minutes failed 20 s into the outage (the 10 s window agreeing).
    assert pages[0][0] - (START + 3600) <= 25
    trigger = next(n for _, n in sent if n.rule == "slo_burn")
    assert trigger.severity.value == "critical" and trigger.tenant is None
    assert "99% over 1 day" in trigger.summary and "error budget burning" in trigger.summary


def test_the_windows_survive_a_restart_as_in_a_cronjob(tmp_path: Path) -> None:
    """Half a burn before the restart, half after: the page comes when it would have."""
    steady_clock = ManualClock(START)
    steady_sent: list[tuple[float, Notification]] = []
    steady = monitor(steady_clock, steady_sent)
    probe(steady, steady_clock, START + 3600, Outcome.OK)
    probe(steady, steady_clock, START + 3660, Outcome.HTTP_ERROR)

    clock = ManualClock(START)
    sent: list[tuple[float, Notification]] = []
    before = monitor(clock, sent)
    probe(before, clock, START + 3600, Outcome.OK)
    probe(before, clock, START + 3610, Outcome.HTTP_ERROR)  # 10 s: not yet a burn
    assert slo_pages(sent) == []
    store = StateStore.open(tmp_path / "state.db")
    Persistence(store, before.hub, before.metrics, before.tenant_source).save(counters=False)
    store.close()

    store = StateStore.open(tmp_path / "state.db")
    after = monitor(clock, sent)
    Persistence(store, after.hub, after.metrics, after.tenant_source).restore(counters=False)
    probe(after, clock, START + 3660, Outcome.HTTP_ERROR)
    store.close()
    assert slo_pages(sent) == slo_pages(steady_sent) != []


def test_a_paged_burn_the_saved_state_missed_still_resolves(tmp_path: Path) -> None:
    clock = ManualClock(START)
    sent: list[tuple[float, Notification]] = []
    before = monitor(clock, sent)
    probe(before, clock, START + 3600, Outcome.OK)
    probe(before, clock, START + 3660, Outcome.HTTP_ERROR)
    assert [a for _, a, _ in slo_pages(sent)] == [Action.TRIGGER]
    store = StateStore.open(tmp_path / "state.db")
    Persistence(store, before.hub, before.metrics, before.tenant_source).save(counters=False)
    store.put("slo", {"v": 1, "budgets": []})  # as if saved before the burn
    store.close()

    store = StateStore.open(tmp_path / "state.db")
    after = monitor(clock, sent)
    Persistence(store, after.hub, after.metrics, after.tenant_source).restore(counters=False)
    assert after.hub.firing >= 1
    probe(after, clock, START + 4000, Outcome.OK)
    store.close()
    assert [a for _, a, _ in slo_pages(sent)] == [Action.TRIGGER, Action.RESOLVE]
