"""Detection rules in virtual time: exact, no sleeps."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable

import pytest

from monitor.alerting.tracker import AlertTracker
from monitor.config.model import AlertsSpec
from monitor.core.notifications import Severity
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.rules import learning_phase
from monitor.detect.series import AlertEvent, EventKind
from monitor.detect.stats import WINDOW_RELATIVE_ERROR, lower_bound_rank, p95_lower_bound

T0 = 1_700_000_000.0
E, O, X = Outcome.EMPTY, Outcome.OK, Outcome.TIMEOUT  # noqa: E741


def tracker(**alerts: object) -> AlertTracker:
    spec = AlertsSpec.model_validate(alerts)
    return AlertTracker(
        spec, counting_checks={"search", "recommendations"}, parents={"recommendations": "search"}
    )


def result(
    outcome: Outcome, latency: float = 0.06, *, tenant: str = "acme", check: str = "recommendations"
) -> ProbeResult:
    return ProbeResult(
        tenant,
        check,
        outcome,
        latency,
        0.0,
        status=200,
        reason="" if outcome is O else f"{outcome.value} happened",
    )


def feed(
    t: AlertTracker,
    outcomes: Iterable[Outcome],
    *,
    start: float = 0.0,
    every: float = 60.0,
    latency: float = 0.06,
    check: str = "recommendations",
) -> list[tuple[float, AlertEvent]]:
    events = []
    now = T0 + start
    for outcome in outcomes:
        for event in t.observe(result(outcome, latency, check=check), now):
            events.append((now - T0, event))
        now += every
    return events


def kinds(events: list[tuple[float, AlertEvent]]) -> list[tuple[float, str, str]]:
    return [(at, e.rule, e.kind.value) for at, e in events]


def test_one_empty_blip_never_pages() -> None:
    t = tracker()
    assert feed(t, [O] * 5 + [E] + [O] * 5) == []


def test_two_empty_probes_in_a_row_fire_and_two_ok_resolve() -> None:
    t = tracker()
    events = feed(t, [O, O, E, E, O, O, O])
    assert kinds(events) == [
        (180.0, "empty_results", "firing"),
        (300.0, "empty_results", "resolved"),
    ]
    firing = events[0][1]
    assert firing.severity is Severity.CRITICAL
    assert firing.key == "recmon/empty_results/recommendations/acme"
    assert (
        "recommendations returned no items for tenant acme: 2 of 4 probes in the last 5m"
        in firing.summary
    )
    assert firing.details["consecutive_empty"] == 2


def test_one_good_probe_does_not_resolve_a_real_outage() -> None:
    t = tracker()
    events = feed(t, [E, E, O, E, E, O])
    assert kinds(events) == [(60.0, "empty_results", "firing")]


def test_share_of_empty_fires_without_a_streak() -> None:
    t = tracker()
    events = feed(t, [O] * 6 + [E, O, E, O, E])
    assert kinds(events) == [(600.0, "empty_results", "firing")]


def test_correlation_names_the_recommendations_hop_when_search_is_healthy() -> None:
    t = tracker()
    now = T0
    events: list[AlertEvent] = []
    for _ in range(2):
        t.observe(result(O, check="search"), now)
        events += t.observe(result(E), now + 1)
        now += 60
    assert (
        "search is healthy for this tenant, "
        "so the hop from the API to this check's backend is the likely cause" in events[0].summary
    )
    assert events[0].details["parent_healthy"] is True


def test_no_correlation_claim_when_search_fails_too() -> None:
    t = tracker()
    now = T0
    events: list[AlertEvent] = []
    for _ in range(3):
        t.observe(result(Outcome.HTTP_ERROR, check="search"), now)
        events += t.observe(result(E), now + 1)
        now += 60
    assert "healthy" not in events[0].summary
    assert events[0].details["parent_healthy"] is False


def test_failures_fire_after_three_and_carry_sample_errors() -> None:
    t = tracker()
    events = feed(t, [O, X, X, X, O, O, O])
    # resolves once two probes are ok and failures are below half of the window again
    assert kinds(events) == [(180.0, "failures", "firing"), (360.0, "failures", "resolved")]
    assert events[0][1].details["sample_errors"][-1] == "timeout: timeout happened"
    assert events[0][1].details["outcomes"] == {"timeout": 3}


def test_empty_is_not_also_a_failure() -> None:
    t = tracker()
    assert {e.rule for _, e in feed(t, [E] * 6)} == {"empty_results"}


def test_error_rate_catches_the_slow_burn() -> None:
    t = tracker()
    pattern = [O, O, X] * 8  # a third timing out, never two in a row
    events = feed(t, pattern)
    assert [e.rule for _, e in events] == ["error_rate"]
    event = events[0][1]
    assert event.variant == "timeout"
    assert event.key == "recmon/error_rate/recommendations/acme/timeout"
    assert event.severity is Severity.WARNING
    later = feed(t, [O] * 20, start=len(pattern) * 60)
    assert kinds(later)[0][1:] == ("error_rate", "resolved")


def learn(t: AlertTracker, samples: int = 120, latency: float = 0.06) -> float:
    feed(t, [O] * samples, latency=latency)
    return samples * 60.0


def drift_events(
    t: AlertTracker, latencies: list[float], start: float
) -> list[tuple[float, AlertEvent]]:
    events = []
    for i, latency in enumerate(latencies):
        now = T0 + start + i * 60
        events += [(now - T0 - start, e) for e in t.observe(result(O, latency), now)]
    return events


def test_latency_doubling_pages_within_five_minutes_and_resolves() -> None:
    t = tracker()
    start = learn(t)
    events = drift_events(t, [0.12] * 10 + [0.06] * 10, start)
    fired = [(at, e) for at, e in events if e.kind is EventKind.FIRING]
    resolved = [(at, e) for at, e in events if e.kind is EventKind.RESOLVED]
    assert len(fired) == 1 and len(resolved) == 1
    assert fired[0][0] <= 300
    event = fired[0][1]
    assert event.rule == "latency_drift"
    assert event.details["baseline_p95_s"] == pytest.approx(0.06, rel=0.05)
    assert event.details["p95_s"] == pytest.approx(0.12, rel=WINDOW_RELATIVE_ERROR)
    assert "recommendations p95 latency 120ms is 2.0x its baseline" in event.summary
    assert resolved[0][0] > 600


@pytest.mark.parametrize("search_slow", [False, True], ids=["search-normal", "search-slow-too"])
def test_latency_correlation_blames_the_hop_only_when_search_is_not_slow(
    search_slow: bool,
) -> None:
    t = tracker()
    for i in range(120):  # both checks learn 60 ms
        t.observe(result(O, check="search"), T0 + i * 60)
        t.observe(result(O), T0 + i * 60 + 1)
    fired: list[AlertEvent] = []
    for i in range(120, 130):
        now = T0 + i * 60
        t.observe(result(O, 0.12 if search_slow else 0.06, check="search"), now)
        fired += [e for e in t.observe(result(O, 0.12), now + 1) if e.kind is EventKind.FIRING]
    (event,) = [e for e in fired if e.check == "recommendations"]
    hop = "search latency is normal for this tenant, so the hop"
    assert (hop in event.summary) is not search_slow
    assert event.details["parent_healthy"] is not search_slow


def test_baseline_is_frozen_while_drift_fires() -> None:
    t = tracker()
    start = learn(t)
    drift_events(t, [0.12] * 120, start)  # two hours slow
    _, baseline = t.latency("acme", "recommendations", T0 + start + 120 * 60)
    assert baseline == pytest.approx(0.06, rel=0.05)
    assert [rule for _, rule, _ in t.firing()] == ["latency_drift"]


def test_single_slow_outliers_never_page() -> None:
    t = tracker()
    start = learn(t)
    latencies = [0.06] * 200
    for i in range(0, 200, 7):
        latencies[i] = 0.6
    assert drift_events(t, latencies, start) == []


def test_small_absolute_changes_do_not_page() -> None:
    t = tracker()
    start = learn(t, latency=0.005)
    assert drift_events(t, [0.009] * 20, start) == []  # 1.8x, but only 4 ms


def test_no_drift_paging_before_a_baseline_exists_unless_seeded() -> None:
    assert drift_events(tracker(), [0.12] * 10, 0) == []
    seeded = tracker(latency_drift={"baseline": "60ms"})
    assert [e.rule for _, e in drift_events(seeded, [0.12] * 10, 0)] == ["latency_drift"]


def test_overrides_apply_per_tenant_and_check() -> None:
    t = tracker(
        overrides=[
            {"tenants": ["acme"], "checks": ["recommendations"], "latency_drift": {"ratio": 3}}
        ]
    )
    start = learn(t)
    assert drift_events(t, [0.12] * 10, start) == []
    other = tracker(overrides=[{"tenants": ["other-*"], "latency_drift": {"ratio": 3}}])
    start = learn(other)
    assert len(drift_events(other, [0.12] * 10, start)) == 1


def test_an_override_by_check_alone_applies_to_every_tenant_of_that_check_only() -> None:
    t = tracker(overrides=[{"checks": ["recommendations"], "latency_drift": {"ratio": 3}}])
    start = learn(t)
    assert drift_events(t, [0.12] * 10, start) == []  # acme's recommendations: ratio 3
    book = t.rulebook
    assert book.for_series("globex", "recommendations") is book.for_series(
        "acme", "recommendations"
    )
    search = book.for_series("acme", "search")
    assert search.latency_drift is not None and search.latency_drift.ratio != 3
    drift = book.for_series("acme", "recommendations").latency_drift
    assert drift is not None and drift.ratio == 3


def test_latency_slo_is_absolute() -> None:
    t = tracker(latency_slo={"p95": "100ms", "for": "2m"})
    events = drift_events(t, [0.05] * 5 + [0.15] * 10, 0)
    assert [(e.rule, e.kind.value) for _, e in events] == [("latency_slo", "firing")]


def test_untrusted_latencies_are_ignored() -> None:
    t = tracker()
    start = learn(t)
    now = T0 + start
    for i in range(10):
        r = ProbeResult("acme", "recommendations", O, 0.5, 0.0, latency_trusted=False)
        assert t.observe(r, now + i * 60) == []


def test_forgetting_a_tenant_resolves_its_alerts() -> None:
    t = tracker()
    feed(t, [E, E])
    events = t.forget_tenant("acme", T0 + 200)
    assert [(e.rule, e.kind) for e in events] == [("empty_results", EventKind.RESOLVED)]
    assert t.series == {}


@pytest.mark.parametrize("n, rank", [(2, 1), (3, 2), (5, 3), (10, 7), (20, 16)])
def test_p95_lower_bound_rank(n: int, rank: int) -> None:
    assert lower_bound_rank(n, 0.99) == rank


def test_p95_lower_bound_ignores_one_outlier_in_five() -> None:
    assert p95_lower_bound([0.06, 0.06, 0.06, 0.06, 5.0], 0.99) == 0.06
    assert p95_lower_bound([0.06, 0.06, 0.12, 0.12, 0.12], 0.99) == 0.12


def test_recovering_from_an_outage_does_not_page_again_as_error_rate() -> None:
    t = tracker()
    events = feed(t, [O] * 10 + [X] * 8 + [O] * 30)
    assert [(e.rule, e.kind.value) for _, e in events] == [
        ("failures", "firing"),
        ("failures", "resolved"),
    ]


A = Outcome.AUTH_ERROR


def auth_result(tenant: str, credential: str, outcome: Outcome = A) -> ProbeResult:
    return ProbeResult(
        tenant,
        "search",
        outcome,
        0.05,
        0.0,
        status=401 if outcome is A else 200,
        reason="status 401: the tenant's {api_key} (header X-Api-Key) rejected"
        if outcome is A
        else "",
        credential=credential if outcome is A else "",
    )


def test_error_rate_needs_its_window_to_show_the_share_with_confidence() -> None:
    """3 timeouts in 15 probes (20%, the threshold) is what a 1% background gives some tenant
    of 10,000 every few minutes: no alert. A third timing out fires once the window shows it
    (4 of 10 probes: its 99% lower bound, 0.14, is above half the threshold)."""
    thin = tracker()
    assert feed(thin, ([X] + [O] * 4) * 3) == []
    shown = tracker()
    events = feed(shown, [X, O, O] * 5)
    assert [e.rule for _, e in events] == ["error_rate"]
    assert events[0][0] == 9 * 60.0  # the 4th timeout: 4 of 10 probes


def test_refused_credentials_page_as_auth_errors_never_as_failures() -> None:
    t = tracker()
    events = []
    for i, outcome in enumerate([O, A, A, A, A, A, A, A, A, O, O, O]):
        events += t.observe(auth_result("acme", "tenant", outcome), T0 + 60 * i)
    assert [(e.rule, e.kind.value) for e in events] == [
        ("auth_errors", "firing"),
        ("auth_errors", "resolved"),
    ]
    firing = events[0]
    assert firing.at == T0 + 120  # the second refusal in a row
    assert firing.summary.startswith("search rejects the credentials of tenant acme")
    assert "check the tenant's key" in firing.summary
    assert firing.details["credential"] == "tenant"


def test_refused_shared_credentials_say_probe_credentials_rejected() -> None:
    t = tracker()
    events = []
    for i in range(3):
        events += t.observe(auth_result("acme", "shared"), T0 + 60 * i)
    assert [e.rule for e in events] == ["auth_errors"]
    assert events[0].summary.startswith("probe credentials rejected: search refuses recmon's")


def test_refused_credentials_sent_together_name_the_key_first_and_recmons_if_all() -> None:
    """The tenant's key and recmon's token both sent: one tenant refused points at its key
    first, and says a refusal of every tenant would be recmon's own."""
    t = tracker()
    events = []
    for i in range(3):
        events += t.observe(auth_result("acme", "either"), T0 + 60 * i)
    assert [e.rule for e in events] == ["auth_errors"]
    summary = events[0].summary
    assert summary.startswith("search rejects the credentials sent for tenant acme"), summary
    assert "check the tenant's key first — if every tenant is refused, recmon's own" in summary
    assert events[0].details["credential"] == "either"


def test_refusals_in_a_row_count_only_what_the_series_remembers() -> None:
    # 30 s windows, probes 40 s apart: the refusal before the last has left every window
    # (though it shares the last one's bucket), so the last is the first in a row.
    windows = {"window": "30s", "min_probes": 3}
    t = tracker(
        auth_errors=windows,
        empty_results=windows,
        failures=windows,
        latency_drift={"window": "30s"},
        error_rate={"enabled": False},
    )
    assert t.observe(auth_result("acme", "tenant", A), T0) == []
    assert t.observe(auth_result("acme", "tenant", A), T0 + 40) == []
    events = t.observe(auth_result("acme", "tenant", A), T0 + 50)
    assert [(e.rule, e.kind.value) for e in events] == [("auth_errors", "firing")]


def baseline_weights(t: AlertTracker, probes: int, every: float = 60.0) -> list[float]:
    """The learned baseline's weight after each of `probes` 60 ms probes."""
    weights = []
    for i in range(probes):
        t.observe(result(O), T0 + i * every)
        weights.append(t.series[("acme", "recommendations")].baseline.weight)
    return weights


def test_the_baseline_learns_what_left_the_drift_window_five_minutes_at_a_time() -> None:
    # 60 s probes, a 5 m drift window: a sample leaves it a minute; the baseline takes them in
    # five at a time, at the series' own point in the five minutes.
    weights = baseline_weights(tracker(), 32)
    learned_at = [i for i in range(1, 32) if weights[i] != weights[i - 1]]
    assert len(learned_at) == 5 and learned_at[0] <= 10
    assert [b - a for a, b in itertools.pairwise(learned_at)] == [5] * 4
    # Every sample that had left the window by the series' point is in, and no other.
    cutoff = T0 + learned_at[-1] * 60 - 300
    edge = cutoff - (cutoff - learning_phase("acme", "recommendations")) % 300
    assert weights[-1] == pytest.approx((edge - T0) // 60 + 1, rel=3e-2)  # decayed a little


def test_a_fleet_started_together_learns_a_fifth_of_its_series_each_minute() -> None:
    phases = [
        learning_phase(f"tenant-{i:04}", check)
        for i in range(1000)
        for check in ("search", "recommendations")
    ]
    per_minute = Counter(int(phase // 60) for phase in phases)
    assert sorted(per_minute) == [0, 1, 2, 3, 4]
    assert all(320 < count < 480 for count in per_minute.values()), per_minute  # 400 each


def test_a_drift_window_as_long_as_the_series_remembers_still_learns_every_sample() -> None:
    # Every other window shorter: a sample leaves the drift window as the series forgets it,
    # so it is learned on that very probe (it once was not learned at all).
    t = tracker(error_rate={"enabled": False})
    assert t.rulebook.for_series("acme", "recommendations").learn_every == 0.0
    weights = baseline_weights(t, 40)
    assert weights[:5] == [0.0] * 5
    assert weights[5:8] == pytest.approx([1.0, 2.0, 3.0], rel=1e-2)
    assert weights[-1] == pytest.approx(33.9, rel=1e-2)  # 35 samples, decayed
