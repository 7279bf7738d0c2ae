"""Storm grouping, group wait and maintenance, in virtual time."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from monitor.alerting.planner import PlannerState, Policy, plan
from monitor.config.model import MaintenanceWindow, StormSpec
from monitor.core.notifications import Action, Notification, Severity
from monitor.detect.series import AlertEvent, EventKind

T0 = 1_700_000_000.0


def event(
    tenant: str, kind: EventKind = EventKind.FIRING, at: float = T0, rule: str = "empty_results"
) -> AlertEvent:
    return AlertEvent(
        kind=kind,
        rule=rule,
        tenant=tenant,
        check="recommendations",
        severity=Severity.CRITICAL,
        started_at=at,
        at=at,
        summary=f"recommendations returned no items for tenant {tenant}",
        details={"parent_check": "search", "parent_healthy": True},
    )


POLICY = Policy(StormSpec(min_tenants=5, group_wait=30), total_tenants=50)


class Run:
    def __init__(self, policy: Policy = POLICY) -> None:
        self.state = PlannerState()
        self.policy = policy
        self.sent: list[Notification] = []

    def __call__(
        self, events: list[AlertEvent], now: float, *, flush: bool = False
    ) -> list[Notification]:
        self.state, out = plan(self.state, events, now, self.policy, flush=flush)
        self.sent += out
        return out


def test_a_single_alert_pages_after_group_wait() -> None:
    run = Run()
    assert run([event("t1")], T0) == []
    assert run([], T0 + 29) == []
    (trigger,) = run([], T0 + 30)
    assert trigger.action is Action.TRIGGER
    assert trigger.key == "recmon/empty_results/recommendations/t1"
    assert trigger.id.endswith(":trigger")
    (resolve,) = run([event("t1", EventKind.RESOLVED, T0 + 300)], T0 + 300)
    assert resolve.action is Action.RESOLVE
    assert resolve.key == trigger.key
    assert resolve.id != trigger.id
    assert resolve.started_at == trigger.started_at


def test_an_alert_resolved_within_group_wait_never_pages() -> None:
    run = Run()
    run([event("t1")], T0)
    run([event("t1", EventKind.RESOLVED, T0 + 10)], T0 + 10)
    run([], T0 + 100)
    assert run.sent == []


def test_many_tenants_at_once_make_one_grouped_page_and_one_fleet_wide_escalation() -> None:
    run = Run()
    for i in range(50):
        run([event(f"t{i:02d}", at=T0 + i)], T0 + i)
    triggers = [n for n in run.sent if n.action is Action.TRIGGER]
    assert len(triggers) == 2  # the storm at its first page, then its scope
    group, fleet = triggers
    assert group.key == "recmon/empty_results/recommendations/multiple-tenants"
    assert group.tenant is None
    assert group.details["tenants"] == [f"t{i:02d}" for i in range(5)]
    assert group.summary.startswith(
        "recommendations returned no items for 5 tenants (t00, t01, t02, t03, t04)"
    )
    assert "search is healthy for 5 of them" in group.summary
    # every tenant fires: the escalation is sent at once, under a key of its own
    assert fleet.at == T0 + 49
    assert fleet.key == "recmon/empty_results/recommendations/multiple-tenants/fleet-wide"
    assert fleet.summary.startswith("recommendations returned no items for all 50 tenants")
    assert fleet.labels == {"grouped": "true", "scope": "fleet-wide"}
    assert fleet.details["tenant_count"] == 50 and fleet.details["total_tenants"] == 50
    assert fleet.details["tenants"] == [f"t{i:02d}" for i in range(50)]
    run([], T0 + 200)
    assert len(run.sent) == 2
    # what is paged now lists the whole storm, under the same incident ids
    paged = {n.key: n for n in run.state.active_triggers()}
    assert paged[group.key].id == group.id and paged[group.key].details["tenant_count"] == 50
    assert paged[fleet.key].id == fleet.id
    # recovery: both resolve when the last tenant recovers, not before
    for i in range(49):
        run([event(f"t{i:02d}", EventKind.RESOLVED, T0 + 500)], T0 + 500)
    assert len(run.sent) == 2
    resolves = run([event("t49", EventKind.RESOLVED, T0 + 600)], T0 + 600)
    assert [(n.action, n.key) for n in resolves] == [
        (Action.RESOLVE, group.key),
        (Action.RESOLVE, fleet.key),
    ]
    # What is true now, and what it was at its peak (no stale cause note).
    assert resolves[0].summary == (
        "resolved: recommendations returned no items for all 50 tenants at its peak; none of "
        "them fires now"
    )


def test_a_storm_short_of_every_tenant_escalates_one_probe_interval_after_crossing() -> None:
    policy = replace(POLICY, intervals={"recommendations": 30.0})
    run = Run(policy)
    for i in range(40):  # 40 of 50: the fleet share (80%) is crossed at the 40th
        run([event(f"t{i:02d}", at=T0 + i)], T0 + i)
    assert [n.key.rsplit("/", 1)[-1] for n in run.sent] == ["multiple-tenants"]
    run([event("t40", at=T0 + 50)], T0 + 50)  # still growing: wait for the round
    assert len(run.sent) == 1
    (fleet,) = run([], T0 + 39 + 30)
    assert fleet.summary.startswith("recommendations returned no items for 41 of 50 tenants (82%)")
    assert fleet.details["scope"] == "fleet-wide" and fleet.details["share"] == 0.82
    run([], T0 + 1000)
    assert len(run.sent) == 2  # never more than two incidents for one outage


def test_a_storm_paged_whole_needs_no_escalation() -> None:
    run = Run(replace(POLICY, total_tenants=8))
    run([event(f"t{i}") for i in range(8)], T0, flush=True)
    (group,) = run.sent
    assert group.summary.startswith("recommendations returned no items for all 8 tenants")
    assert group.details["scope"] == "all"
    run([], T0 + 1000)
    assert len(run.sent) == 1


def test_a_storm_that_shrinks_below_the_fleet_share_before_settling_does_not_escalate() -> None:
    run = Run(replace(POLICY, intervals={"recommendations": 30.0}))
    run([event(f"t{i:02d}") for i in range(5)], T0)
    run([event(f"t{i:02d}") for i in range(5, 41)], T0 + 10)
    run([event(f"t{i:02d}", EventKind.RESOLVED, T0 + 20) for i in range(30, 41)], T0 + 20)
    run([], T0 + 100)
    assert [n.key.endswith("fleet-wide") for n in run.sent] == [False]


def test_a_growing_storm_keeps_the_identity_it_was_paged_with() -> None:
    """Slow-burn (warning) alerts open the storm, fast (critical) ones join it: the incident
    keeps its severity, so Alertmanager sees one alert from trigger to resolve."""
    run = Run()

    def failing(tenant: str, rule: str, severity: Severity) -> AlertEvent:
        variant = "timeout" if rule == "error_rate" else ""
        return replace(event(tenant, rule=rule), check="search", severity=severity, variant=variant)

    run([failing(f"t{i}", "error_rate", Severity.WARNING) for i in range(5)], T0)
    (paged,) = run.sent
    assert paged.severity is Severity.WARNING and paged.rule == "failures"
    run([failing(f"t{i}", "failures", Severity.CRITICAL) for i in range(5, 20)], T0 + 60)
    (active,) = run.state.active_triggers()
    assert active.details["tenant_count"] == 20
    assert (active.id, active.severity, active.labels) == (paged.id, paged.severity, paged.labels)


def test_alerts_paged_before_the_storm_resolve_on_their_own() -> None:
    run = Run()
    run([event("early")], T0)
    run([], T0 + 30)
    assert [n.key.rsplit("/", 1)[1] for n in run.sent] == ["early"]
    for i in range(5):
        run([event(f"t{i}")], T0 + 60)
    assert [n.key.rsplit("/", 1)[1] for n in run.sent] == ["early", "multiple-tenants"]
    run([event("early", EventKind.RESOLVED)], T0 + 100)
    assert run.sent[-1].action is Action.RESOLVE and run.sent[-1].key.endswith("/early")


def test_share_threshold_for_small_fleets() -> None:
    policy = Policy(StormSpec(min_tenants=50, min_share=0.3, group_wait=30), total_tenants=10)
    run = Run(policy)
    for i in range(3):
        run([event(f"t{i}")], T0)
    assert len(run.sent) == 1 and run.sent[0].tenant is None


def test_flush_releases_held_alerts_at_once() -> None:
    run = Run()
    (trigger,) = run([event("t1")], T0, flush=True)
    assert trigger.tenant == "t1"


def test_maintenance_holds_pages_until_the_window_ends() -> None:
    window = MaintenanceWindow(
        tenants=["t*"],
        checks=["recommendations"],
        start=datetime.fromtimestamp(T0 - 10, UTC),
        end=datetime.fromtimestamp(T0 + 3600, UTC),
    )
    run = Run(Policy(StormSpec(group_wait=30), 50, (window,)))
    run([event("t1")], T0)
    run([], T0 + 1800)
    assert run.sent == []
    (trigger,) = run([], T0 + 3600)
    assert trigger.tenant == "t1"


def test_maintenance_resolved_alert_never_pages() -> None:
    window = MaintenanceWindow(
        start=datetime.fromtimestamp(T0 - 10, UTC), end=datetime.fromtimestamp(T0 + 3600, UTC)
    )
    run = Run(Policy(StormSpec(group_wait=30), 50, (window,)))
    run([event("t1")], T0)
    run([event("t1", EventKind.RESOLVED)], T0 + 600)
    run([], T0 + 4000)
    assert run.sent == []


def test_active_triggers_lists_what_is_paged_now() -> None:
    run = Run()
    run([event("t1")], T0, flush=True)
    for i in range(5):
        run([event(f"g{i}", rule="latency_drift")], T0 + 1)
    keys = sorted(n.key for n in run.state.active_triggers())
    assert keys == [
        "recmon/empty_results/recommendations/t1",
        "recmon/latency_drift/recommendations/multiple-tenants",
    ]


def test_sharded_replicas_keep_their_storms_apart() -> None:
    run = Run(Policy(StormSpec(min_tenants=5, group_wait=30), total_tenants=50, shard="1/3"))
    for i in range(5):
        run([event(f"t{i}")], T0)
    (group,) = run.sent
    assert group.key == "recmon/empty_results/recommendations/multiple-tenants/shard-1-of-3"
    assert group.labels == {"grouped": "true", "shard": "1/3"}
    alone = Run(Policy(StormSpec(group_wait=30), total_tenants=50, shard="1/3"))
    alone([event("t1")], T0, flush=True)
    assert alone.sent[0].labels == {"shard": "1/3"}
    assert (
        alone.sent[0].key == "recmon/empty_results/recommendations/t1"
    )  # tenants belong to one shard


def auth_event(tenant: str, credential: str, at: float = T0) -> AlertEvent:
    return replace(
        event(tenant, at=at, rule="auth_errors"),
        check="search",
        summary=f"search rejects the credentials of tenant {tenant}",
        details={"credential": credential},
    )


def test_every_tenant_refused_pages_probe_credentials_rejected() -> None:
    run = Run(Policy(StormSpec(min_tenants=5, group_wait=30), total_tenants=5))
    for i in range(5):
        run([auth_event(f"t{i}", "tenant", T0 + i)], T0 + i)
    (page,) = run.sent
    assert page.key == "recmon/auth_errors/search/multiple-tenants"
    assert page.summary.startswith(
        "probe credentials rejected: search refuses recmon's credentials for all 5 tenants"
    )


def test_some_tenants_refused_point_at_their_keys() -> None:
    run = Run()  # 50 tenants; 5 refused, each with its own key
    for i in range(5):
        run([auth_event(f"t{i}", "tenant", T0 + i)], T0 + i)
    (page,) = run.sent
    assert page.summary.startswith("search rejects the credentials of 5 tenants (t0, t1")
    assert "those tenants' keys" in page.summary
    assert "probe credentials rejected" not in page.summary


def test_a_refused_shared_credential_is_recmons_even_for_some_tenants() -> None:
    run = Run()
    for i in range(5):
        run([auth_event(f"t{i}", "shared", T0 + i)], T0 + i)
    (page,) = run.sent
    assert page.summary.startswith("probe credentials rejected: search refuses recmon's")


def test_tenants_a_check_skips_are_not_counted_and_are_named_as_skipped() -> None:
    # 20 tenants, one of them without a key: the other 19 all failing is "all 19 tenants",
    # paged the moment the 19th fires (not one interval later as "19 of 20 (95%)").
    policy = Policy(
        StormSpec(min_tenants=5, group_wait=30),
        total_tenants=20,
        intervals={"recommendations": 30.0},
        not_probed={"recommendations": {"t19": "no credential {api_key}"}},
    )
    run = Run(policy)
    for i in range(19):
        run([event(f"t{i:02d}", at=T0 + i)], T0 + i)
    group, fleet = run.sent
    assert fleet.at == T0 + 18  # at once
    assert fleet.summary.startswith("recommendations returned no items for all 19 tenants")
    assert fleet.summary.endswith("(t19 skipped, not probed)")
    assert fleet.details["scope"] == "all"
    assert (fleet.details["tenant_count"], fleet.details["total_tenants"]) == (19, 19)
    assert fleet.details["not_probed"] == {"t19": "no credential {api_key}"}
    # the storm's first page ("5 tenants (...)") states no total: the skip only in its details
    assert "skipped" not in group.summary and group.details["total_tenants"] == 19
    # the same storm with every tenant probed: 19 of 20, one interval after crossing
    alone = Run(replace(policy, not_probed={}))
    for i in range(19):
        alone([event(f"t{i:02d}", at=T0 + i)], T0 + i)
    alone([], T0 + 40)
    assert len(alone.sent) == 1
    (late,) = alone([], T0 + 16 + 30)
    assert late.summary.startswith("recommendations returned no items for 19 of 20 tenants (95%)")


def test_a_skipped_tenant_still_firing_counts_as_probed() -> None:
    # Its key went after it fired: it is still in the storm, so never "all 20 of 19".
    policy = Policy(
        StormSpec(min_tenants=5, group_wait=30),
        total_tenants=20,
        not_probed={"recommendations": {"t19": "no credential {api_key}"}},
    )
    run = Run(policy)
    run([event(f"t{i:02d}") for i in range(20)], T0)
    (page,) = run.sent
    assert "for all 20 tenants" in page.summary and "skipped" not in page.summary
    assert page.details["total_tenants"] == 20 and "not_probed" not in page.details


def fleet_event(kind: EventKind = EventKind.FIRING, at: float = T0) -> AlertEvent:
    return AlertEvent(
        kind=kind,
        rule="fleet_empty",
        tenant=None,
        check="recommendations",
        severity=Severity.CRITICAL,
        started_at=T0,
        at=at,
        summary="recommendations returned no items for 1 in 3 requests (33%) across all 50 tenants",
    )


def test_a_fleet_incident_folds_the_tenant_alerts_it_explains() -> None:
    """One partial outage, one page: tenant alerts waiting (or firing later) under a firing
    fleet incident never page alone nor as a storm, also after the fleet incident resolved,
    until they resolve themselves."""
    run = Run()
    run([event("t1")], T0)  # waiting its group wait when the fleet incident opens
    (fleet,) = run([fleet_event()], T0 + 1)
    assert fleet.action is Action.TRIGGER and fleet.labels == {"scope": "fleet-wide"}
    later = [event(f"t{i}", at=T0 + 2) for i in range(2, 12)]  # a storm's worth
    assert run(later, T0 + 2) == []
    assert run([], T0 + 100) == []
    assert set(run.state.folded) == {e.key for e in [event("t1"), *later]}
    (resolved,) = run([fleet_event(EventKind.RESOLVED, T0 + 200)], T0 + 200)
    assert resolved.action is Action.RESOLVE and resolved.key == fleet.key
    assert run([], T0 + 400) == []  # still firing tenant alerts stay folded
    run([event(f"t{i}", EventKind.RESOLVED, T0 + 500) for i in range(1, 12)], T0 + 500)
    assert run.state.folded == {}
    assert [n.action for n in run.sent] == [Action.TRIGGER, Action.RESOLVE]


def test_a_tenant_alert_paged_before_the_fleet_incident_resolves_on_its_own() -> None:
    run = Run()
    run([event("t1")], T0)
    (alone,) = run([], T0 + 30)
    (fleet,) = run([fleet_event(at=T0 + 40)], T0 + 40)
    assert fleet.rule == "fleet_empty"
    (resolve,) = run([event("t1", EventKind.RESOLVED, T0 + 50)], T0 + 50)
    assert resolve.key == alone.key and resolve.action is Action.RESOLVE


def test_a_flapping_alert_is_held_open_and_resolved_once_after_a_stable_period() -> None:
    """Fires, resolves, fires again within the flapping window: the second page says it is
    flapping, and from then on it resolves only after `stable_for` clear; firing again
    before that says nothing. One resolve for the whole second incident."""
    run = Run()
    run([event("t1")], T0)
    (first,) = run([], T0 + 30)
    (resolved,) = run([event("t1", EventKind.RESOLVED, T0 + 100)], T0 + 100)
    assert resolved.action is Action.RESOLVE
    run([event("t1", at=T0 + 200)], T0 + 200)
    (second,) = run([], T0 + 230)
    assert second.action is Action.TRIGGER and second.details["flapping"] is True
    assert "flapping: paged again 3m after its last incident" in second.summary
    assert "held open until clear for 10m" in second.summary
    # Churn from here on says nothing...
    for n in range(5):
        at = T0 + 300 + n * 120
        assert run([event("t1", EventKind.RESOLVED, at)], at) == []
        assert run([event("t1", at=at + 60)], at + 60) == []
    assert second in run.state.active_triggers()  # still open for Alertmanager's re-send
    # ...until it stays clear for stable_for (600 s).
    clear_at = T0 + 1000
    assert run([event("t1", EventKind.RESOLVED, clear_at)], clear_at) == []
    assert run([], clear_at + 599) == []
    (final,) = run([], clear_at + 600)
    assert final.action is Action.RESOLVE and final.key == second.key
    assert [n.action for n in run.sent] == [Action.TRIGGER, Action.RESOLVE] * 2
    assert first.key == second.key


def test_an_alert_paged_again_after_the_flapping_window_is_not_flapping() -> None:
    run = Run()
    run([event("t1")], T0)
    run([], T0 + 30)
    run([event("t1", EventKind.RESOLVED, T0 + 100)], T0 + 100)
    later = T0 + 100 + 1800 + 60
    run([event("t1", at=later)], later)
    (again,) = run([], later + 30)
    assert "flapping" not in again.summary
    (resolve,) = run([event("t1", EventKind.RESOLVED, later + 100)], later + 100)
    assert resolve.action is Action.RESOLVE


def test_a_checks_slo_burning_folds_its_tenants_own_burns() -> None:
    """per_tenant objectives: the fleet's burn is the page; each tenant's burn of the same
    check is folded under it, not a storm of its own; other rules are not."""
    run = Run()
    fleet_slo = replace(fleet_event(), rule="slo_burn", summary="recommendations: burning")
    (page,) = run([fleet_slo], T0)
    assert page.rule == "slo_burn" and page.tenant is None
    tenants = [event(f"t{i}", at=T0 + 1, rule="slo_burn") for i in range(8)]
    tickets = [event(f"t{i}", at=T0 + 1, rule="slo_slow_burn") for i in range(8)]
    assert run([*tenants, *tickets], T0 + 1) == []
    assert run([], T0 + 100) == []
    assert set(run.state.folded) == {e.key for e in [*tenants, *tickets]}
    (storm,) = run([event(f"t{i}", at=T0 + 101) for i in range(8)], T0 + 101)
    assert storm.rule == "empty_results"  # not explained by the objective's burn
