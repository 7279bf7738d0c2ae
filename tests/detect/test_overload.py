"""recmon's own overload as a rule: it pages itself after `for`, resolves after `resolve_for`,
never as a tenant; the hub pages it alone and a restart keeps it resolvable."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from monitor.alerting.hub import AlertHub, AlertMemory
from monitor.config.model import AlertsSpec, OverloadRule
from monitor.core.clock import ManualClock
from monitor.core.notifications import Action, Notification
from monitor.detect.overload import LoadReading, OverloadState, observe_overload
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
