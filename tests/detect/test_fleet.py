"""The fleet rule over generated probe streams in virtual time: a third of every tenant's
probes failing is one fleet incident within two intervals, stating the share and every
tenant; 1% noise, a few broken tenants, or a whole outage (left to the storm) are none; it
resolves within three intervals of recovery."""

from __future__ import annotations

import random
from collections.abc import Callable

from monitor.config.model import FleetRule
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.fleet import FleetWatch, share_words
from monitor.detect.series import AlertEvent, EventKind
from monitor.detect.stats import wilson_lower

TENANTS = [f"t{i:03}" for i in range(40)]
INTERVAL = 2.0


def watch() -> FleetWatch:
    fleet = FleetWatch(
        FleetRule(),
        {"search": INTERVAL, "recommendations": INTERVAL},
        counting_checks=frozenset({"search", "recommendations"}),
        fleet_share=0.8,
    )
    fleet.set_total_tenants(len(TENANTS))
    return fleet


def run(
    fleet: FleetWatch,
    start: float,
    seconds: float,
    outcome_of: Callable[[str, random.Random], Outcome],
    rng: random.Random,
) -> list[tuple[float, AlertEvent]]:
    """Every tenant's search once per interval, spread over it (as the scheduler does)."""
    events: list[tuple[float, AlertEvent]] = []
    rounds = round(seconds / INTERVAL)
    for n in range(rounds):
        for i, tenant in enumerate(TENANTS):
            now = start + n * INTERVAL + i * INTERVAL / len(TENANTS)
            outcome = outcome_of(tenant, rng)
            result = ProbeResult(
                tenant,
                "search",
                outcome,
                0.05,
                now,
                status=503 if outcome is Outcome.HTTP_ERROR else 200,
            )
            events += [(now, e) for e in fleet.observe(result, now)]
    return events


def healthy(tenant: str, rng: random.Random) -> Outcome:
    return Outcome.OK


def third_failing(tenant: str, rng: random.Random) -> Outcome:
    return Outcome.HTTP_ERROR if rng.random() < 1 / 3 else Outcome.OK


def test_a_third_failing_everywhere_is_one_fleet_incident_within_two_intervals() -> None:
    fleet, rng = watch(), random.Random(7)
    assert run(fleet, 0.0, 60.0, healthy, rng) == []
    events = run(fleet, 60.0, 20.0, third_failing, rng)
    (fired_at, fired), *rest = events
    assert fired.kind is EventKind.FIRING and fired.rule == "fleet_failures"
    assert fired_at - 60.0 <= 2 * INTERVAL
    assert fired.tenant is None and fired.check == "search"
    assert "search failing for " in fired.summary
    assert "across all 40 tenants" in fired.summary and "http_error 503" in fired.summary
    assert 0.15 < fired.details["share"] < 0.5
    assert rest == []  # no flapping while the outage lasts
    recovered = run(fleet, 80.0, 10.0, healthy, rng)
    ((resolved_at, resolved),) = recovered
    assert resolved.kind is EventKind.RESOLVED and resolved_at - 80.0 <= 3 * INTERVAL
    # A resolve says what holds now, not the share it fired with.
    assert resolved.summary.startswith("resolved: search failing across the fleet; now ")
    assert "probes failed in the last" in resolved.summary


def test_one_percent_noise_for_ten_minutes_never_fires() -> None:
    fleet, rng = watch(), random.Random(3)

    def noise(tenant: str, rng: random.Random) -> Outcome:
        return Outcome.HTTP_ERROR if rng.random() < 0.01 else Outcome.OK

    assert run(fleet, 0.0, 600.0, noise, rng) == []


def test_a_few_broken_tenants_are_theirs_not_the_fleets() -> None:
    fleet, rng = watch(), random.Random(5)

    def broken(tenant: str, rng: random.Random) -> Outcome:
        return Outcome.HTTP_ERROR if tenant in TENANTS[:6] else Outcome.OK

    assert run(fleet, 0.0, 120.0, broken, rng) == []


def test_a_whole_outage_is_left_to_the_storm() -> None:
    fleet, rng = watch(), random.Random(5)
    run(fleet, 0.0, 20.0, healthy, rng)
    assert run(fleet, 20.0, 60.0, lambda t, r: Outcome.TIMEOUT, rng) == []


def test_empty_answers_pool_into_their_own_rule() -> None:
    fleet, rng = watch(), random.Random(11)

    def some_empty(tenant: str, rng: random.Random) -> Outcome:
        return Outcome.EMPTY if rng.random() < 0.3 else Outcome.OK

    events = run(fleet, 0.0, 20.0, some_empty, rng)
    assert [e.rule for _, e in events] == ["fleet_empty"]
    assert "search returned no items for " in events[0][1].summary


def test_share_words_and_the_bound() -> None:
    assert share_words(1 / 3) == "1 in 3 requests (33%)"
    assert share_words(0.45) == "45% of requests"
    assert share_words(0.9) == "90% of requests"
    assert wilson_lower(0, 100, 0.99) == 0.0
    assert 0.2 < wilson_lower(40, 100, 0.99) < 0.4
