"""recmon's own overload as a rule: it pages itself after `for`, resolves after `resolve_for`,
never as a tenant; the hub pages it alone and a restart keeps it resolvable."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from monitor.alerting.hub import AlertHub, AlertMemory
from monitor.config.model import AlertsSpec, OverloadRule
from monitor.core.clock import ManualClock
from monitor.core.notifications import Action, Notification
from monitor.detect.overload import (
    LoadReading,
    OverloadState,
    Tally,
    describe,
    observe_overload,
    overloaded,
    reading_between,
)
from monitor.detect.series import EventKind
from monitor.telemetry.metrics import Metrics

RULE = OverloadRule.model_validate({"for": 10, "resolve_for": 30})
BUSY = LoadReading(window_s=60, withheld_timeouts=519, probes=4000, loop_lag_s=1.1)
CALM = LoadReading(window_s=60, withheld_timeouts=0, probes=4000, loop_lag_s=0.002)
LAGGING = LoadReading(window_s=60, withheld_timeouts=0, probes=4000, loop_lag_s=0.3)


def test_overload_fires_after_its_hold_and_resolves_after_its_release() -> None:
    state = OverloadState()
    kinds = []
    for at, reading in [(0, BUSY), (5, BUSY), (10, BUSY), (20, CALM), (45, CALM), (50, CALM)]:
        state, events = observe_overload(state, reading, 1000.0 + at, RULE)
        kinds += [(at, e.kind) for e in events]
    assert kinds == [(10, EventKind.FIRING), (50, EventKind.RESOLVED)]


def test_a_lagging_loop_alone_is_overload_and_the_page_says_what_to_do() -> None:
    state, _ = observe_overload(OverloadState(), LAGGING, 0.0, RULE)
    state, (event,) = observe_overload(state, BUSY, 10.0, RULE)
    assert (event.rule, event.tenant, event.check) == ("overload", None, None)
    assert event.summary.startswith("recmon is overloaded: its event loop ran up to 1.10s late")
    assert "519 probe timeouts of 4519 in the last 60s were withheld" in event.summary
    assert "--shard i/n" in event.summary and "engine.transport: asyncio" in event.summary
    assert event.details["withheld_timeouts"] == 519


def hub(pages: list[Notification], clock: ManualClock) -> AlertHub:
    spec = AlertsSpec.model_validate({"overload": {"for": 1, "resolve_for": 1}})
    return AlertHub(
        spec,
        {},
        metrics=Metrics(CollectorRegistry()),
        clock=clock,
        route=lambda decision: pages.extend(decision.notifications),
    )


def test_the_hub_pages_overload_alone_and_a_restart_can_still_resolve_it() -> None:
    pages: list[Notification] = []
    clock = ManualClock(start=1000.0)
    first = hub(pages, clock)
    first.observe_load(BUSY)
    assert pages == []  # pending
    clock.advance(1)
    first.observe_load(BUSY)
    (page,) = pages
    assert (page.action, page.rule, page.key, page.tenant) == (
        Action.TRIGGER,
        "overload",
        "recmon/overload/-/-",
        None,
    )
    assert first.firing == 1
    memory: AlertMemory = first.memory()
    restarted = hub(pages, clock)
    restarted.restore(memory)
    clock.advance(5)
    restarted.observe_load(CALM)
    clock.advance(1)
    restarted.observe_load(CALM)
    assert [(p.action, p.rule) for p in pages] == [
        (Action.TRIGGER, "overload"),
        (Action.RESOLVE, "overload"),
    ]


# Falling behind the schedule: the loop may keep time while runs are skipped or start late.
def paced(
    *, started: int, skipped: int = 0, late: int = 0, untrusted: int = 0, interval: float = 1.0
) -> LoadReading:
    """A minute's reading from two tallies, as the monitor takes them."""
    earlier = Tally(at=100.0, finished=500, started={"search": 500}, skipped={"search": 7})
    later = Tally(
        at=160.0,
        finished=500 + started,
        untrusted=untrusted,
        started={"search": 500 + started},
        skipped={"search": 7 + skipped},
        late={"search": late},
    )
    return reading_between(earlier, later, intervals={"search": interval}, loop_lag_s=0.15)


def test_a_reading_is_the_difference_of_two_tallies() -> None:
    reading = paced(started=2600, skipped=3400, late=100, untrusted=40)
    (pace,) = reading.paces
    assert (reading.window_s, reading.probes, reading.untrusted) == (60.0, 2600, 40)
    assert (pace.check, pace.started, pace.skipped, pace.late, pace.due) == (
        "search",
        2600,
        3400,
        100,
        6000,
    )
    assert pace.achieved_s == pytest.approx(6000 / 2600)


def test_skipped_runs_are_overload_even_with_the_loop_on_time_and_the_page_says_by_how_much() -> (
    None
):
    behind = paced(started=2880, skipped=3120)  # 52% of 6,000 runs skipped
    assert behind.loop_lag_s < RULE.lag and behind.withheld_timeouts == 0
    state, events = observe_overload(OverloadState(), behind, 1000.0, RULE)
    assert events == []  # pending: `for` is 10 s
    state, (event,) = observe_overload(state, behind, 1010.0, RULE)
    assert event.kind is EventKind.FIRING
    assert event.summary.startswith(
        "recmon is overloaded: probing each tenant every 2.1 s on average, configured 1 s; "
        "52% of runs skipped in the last 60s; its event loop ran up to 0.15s late, so tenant "
        "alerts may be missing or late"
    )
    assert "--shard i/n" in event.summary
    assert event.details["configured_interval_s"] == 1.0
    assert event.details["achieved_interval_s"] == pytest.approx(2.083, abs=0.001)
    assert event.details["runs_skipped"] == 3120 and event.details["runs_due"] == 6000
    # Caught up: resolves after `resolve_for` (30 s).
    calm = paced(started=6000)
    state, events = observe_overload(state, calm, 1020.0, RULE)
    assert events == []
    state, (resolved,) = observe_overload(state, calm, 1050.0, RULE)
    assert resolved.kind is EventKind.RESOLVED


def test_sub_second_intervals_are_said_to_two_figures() -> None:
    # 6,000 runs due of a 0.25 s interval, 2,400 started: every 0.625 s on average.
    summary, _ = describe(paced(started=2400, skipped=3600, interval=0.25), RULE)
    assert summary.startswith(
        "recmon is overloaded: probing each tenant every 0.62 s on average, configured 0.25 s; "
    )


def test_a_few_skipped_runs_are_not_overload() -> None:
    assert not overloaded(paced(started=5700, skipped=300), RULE)  # 5% ≤ 10%
    assert overloaded(paced(started=5300, skipped=700), RULE)  # 11.7%
    # Too few runs to judge a share: one skipped of two.
    assert not overloaded(paced(started=1, skipped=1), RULE)


def test_most_runs_starting_late_is_overload() -> None:
    assert not overloaded(paced(started=6000, late=2900), RULE)
    late = paced(started=6000, late=4200)
    assert overloaded(late, RULE)
    summary, _ = describe(late, RULE)
    # Late but not skipped: the interval is kept, only the phase slips.
    assert summary.startswith(
        "recmon is overloaded: 70% of runs started over 50% of their interval late in the "
        "last 60s; "
    )


def test_most_latencies_withheld_is_overload() -> None:
    assert not overloaded(paced(started=6000, untrusted=2000), RULE)
    withheld = paced(started=6000, untrusted=5600)
    assert overloaded(withheld, RULE)
    summary, details = describe(withheld, RULE)
    assert "93% of latencies withheld as untrusted" in summary
    assert details["latencies_untrusted"] == 5600


def test_with_checks_at_different_intervals_the_page_names_the_slowest() -> None:
    earlier = Tally(at=0.0)
    later = Tally(
        at=60.0,
        finished=3100,
        started={"search": 3000, "recommendations": 100},
        skipped={"search": 0, "recommendations": 200},
    )
    reading = reading_between(
        earlier, later, intervals={"search": 1.0, "recommendations": 5.0}, loop_lag_s=0.01
    )
    summary, details = describe(reading, RULE)
    assert "probing each tenant's recommendations every 15 s on average, configured 5 s" in (
        summary
    )
    assert details["achieved_interval_s"] == 15.0


def test_no_run_started_at_all_is_said_so() -> None:
    reading = paced(started=0, skipped=600)
    assert overloaded(reading, RULE)
    summary, details = describe(reading, RULE)
    assert summary.startswith(
        "recmon is overloaded: no run of search started in the last 60s (configured every 1 s)"
    )
    assert details["achieved_interval_s"] is None


def test_one_pause_of_the_loop_does_not_page_sustained_lag_does() -> None:
    """The minute's reading remembers a 0.5 s pause for a minute; only the last 10 s count."""
    once = LoadReading(window_s=60, withheld_timeouts=0, probes=4000, loop_lag_s=0.5)
    state = OverloadState()
    fired = []
    for at in range(0, 61, 5):  # the pause at 0, then the loop on time
        reading = replace(once, recent_lag_s=0.5 if at < 10 else 0.01)
        state, events = observe_overload(state, reading, 1000.0 + at, RULE)
        fired += events
    assert fired == []
    for at in range(61, 130, 5):  # lagging in every span: fires after `for`
        reading = replace(once, recent_lag_s=0.4)
        state, events = observe_overload(state, reading, 1000.0 + at, RULE)
        fired += events
    assert [e.kind for e in fired] == [EventKind.FIRING]
    assert "its event loop ran up to 0.50s late" in fired[0].summary


def test_a_few_timeouts_withheld_a_while_ago_do_not_page() -> None:
    """Five timeouts withheld of 714 in the minute (seen on a loaded machine), none lately."""
    earlier = Tally(at=0.0, finished=0, started={"search": 0})
    ten_ago = Tally(at=50.0, finished=590, withheld=5, started={"search": 300})
    later = Tally(at=60.0, finished=709, withheld=5, started={"search": 360})
    reading = reading_between(
        earlier, later, intervals={"search": 1.0}, loop_lag_s=0.07, recent=ten_ago
    )
    assert (reading.withheld_timeouts, reading.recent_withheld) == (5, 0)
    assert not overloaded(reading, RULE)
    lately = Tally(at=50.0, finished=590, withheld=4, started={"search": 300})
    assert overloaded(
        reading_between(earlier, later, intervals={"search": 1.0}, loop_lag_s=0.07, recent=lately),
        RULE,
    )
