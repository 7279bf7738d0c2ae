"""The cross-tenant judgement: pure (state, result, now) → (state, events), with virtual time."""

from __future__ import annotations

from monitor.config.model import FallbackRule
from monitor.core.conditions import compile_condition
from monitor.core.notifications import Severity
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.content import (
    Answer,
    ContentSpec,
    ContentState,
    PMap,
    forget_tenant,
    observe,
    pack_ids,
)
from monitor.detect.series import AlertEvent, EventKind

INTERVAL = 60.0
TENANTS = [f"t{i:03d}" for i in range(1, 41)]
POPULAR = ("p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8")
SPEC = ContentSpec("recommendations", INTERVAL, fallback=FallbackRule())
PATTERN = compile_condition("item-ids-belong-to-tenant", "$.r[*].id", "matches", "^{tenant}-")


def own(tenant: str, round_: int) -> tuple[str, ...]:
    """A tenant's healthy answer: its own items, different for each product asked."""
    return tuple(f"{tenant}-p{(round_ + i) % 20:02d}" for i in range(5))


def result(
    tenant: str, ids: tuple[str, ...], round_: int, outcome: Outcome = Outcome.OK
) -> ProbeResult:
    return ProbeResult(
        tenant,
        "recommendations",
        outcome,
        0.05,
        0.0,
        items=len(ids),
        item_ids=ids,
        asked=f"product-{round_ % 10}",
    )


class Fleet:
    def __init__(
        self, spec: ContentSpec = SPEC, tenants: list[str] = TENANTS, probed: int = 0
    ) -> None:
        self.spec, self.tenants, self.probed = spec, tenants, probed
        self.state = ContentState()
        self.now = 0.0
        self.events: list[tuple[float, AlertEvent]] = []

    def round(self, answer: dict[str, tuple[str, ...]] | None = None, n: int = 0) -> None:
        """Every tenant once, spread over the interval."""
        step = INTERVAL / len(self.tenants)
        for tenant in self.tenants:
            ids = (answer or {}).get(tenant) or own(tenant, n)
            outcome = Outcome.OK
            if self.spec.tenant_pattern is not None and not all(i.startswith(tenant) for i in ids):
                outcome = Outcome.WRONG_CONTENT
            self.state, events = observe(
                self.state, result(tenant, ids, n, outcome), self.now, self.spec, self.probed
            )
            self.events += [(self.now, e) for e in events]
            self.now += step

    def rounds(
        self, count: int, answer: dict[str, tuple[str, ...]] | None = None, start: int = 0
    ) -> None:
        for n in range(start, start + count):
            self.round(answer, n)


def test_healthy_per_product_lists_for_an_hour_raise_nothing() -> None:
    fleet = Fleet(
        ContentSpec("recommendations", INTERVAL, FallbackRule(), PATTERN, True, 6 * 3600.0)
    )
    fleet.rounds(60)
    assert fleet.events == []


def test_one_list_for_all_tenants_is_one_page_with_the_scope_within_two_intervals() -> None:
    fleet = Fleet()
    fleet.rounds(3)
    started = fleet.now
    fleet.rounds(3, dict.fromkeys(TENANTS, POPULAR), start=3)
    ((at, event),) = fleet.events
    assert event.kind is EventKind.FIRING and event.rule == "fallback" and event.tenant is None
    assert event.severity is Severity.CRITICAL
    assert at - started <= 2 * INTERVAL
    assert event.summary.startswith(
        "recommendations are one identical list for all 40 tenants (fingerprint "
    )
    assert event.summary.endswith(
        "8 items: p1, p2, p3, p4, p5 …) — a fallback or cache is answering"
    )
    fleet.events.clear()
    fleet.rounds(3, start=6)
    ((at, resolved),) = fleet.events
    assert resolved.kind is EventKind.RESOLVED and resolved.key == event.key


def test_a_fallback_already_answering_at_start_is_said_for_the_whole_fleet() -> None:
    """Right after a start (a CronJob's round) the first answers are all alike: the page
    waits for the fleet it speaks of, never 'all 3 tenants'."""
    fleet = Fleet(probed=len(TENANTS))
    fleet.round(dict.fromkeys(TENANTS, POPULAR))
    ((at, event),) = fleet.events
    assert "for all 40 tenants" in event.summary
    assert at == fleet.now - INTERVAL / len(TENANTS)  # when the last tenant answered


def test_most_tenants_is_said_as_a_share() -> None:
    fleet = Fleet()
    fleet.rounds(2)
    fallback = {t: POPULAR for t in TENANTS[:38]}
    fleet.rounds(3, fallback, start=2)
    firing = [e for _, e in fleet.events if e.kind is EventKind.FIRING]
    assert len(firing) == 1
    assert "for 38 of 40 tenants (95%)" in firing[0].summary


def test_a_few_tenants_sharing_a_list_is_no_fleet_fallback() -> None:
    fleet = Fleet()
    fleet.rounds(2, {t: POPULAR for t in TENANTS[:2]})
    assert fleet.events == []


def test_one_tenant_answering_every_product_with_one_list() -> None:
    fleet = Fleet()
    fleet.rounds(2)
    fleet.rounds(4, {"t007": POPULAR}, start=2)
    ((_, event),) = fleet.events
    assert event.rule == "fallback" and event.tenant == "t007"
    assert (
        "for tenant t007 are one identical list for 3 different requests in a row" in event.summary
    )


def test_the_same_product_answered_alike_every_round_is_no_fallback() -> None:
    fleet = Fleet()
    for _ in range(10):
        fleet.round(n=0)  # product never rotates: the same question, the same answer
    assert fleet.events == []


def test_another_tenants_items_page_at_once_naming_both_tenants() -> None:
    spec = ContentSpec("recommendations", INTERVAL, FallbackRule(), tenant_pattern=PATTERN)
    fleet = Fleet(spec)
    fleet.rounds(2)
    started = fleet.now
    fleet.rounds(2, {"t002": own("t004", 3)}, start=2)
    ((at, event),) = fleet.events
    assert at - started <= INTERVAL
    assert event.rule == "foreign_items" and event.tenant == "t002"
    assert event.severity is Severity.CRITICAL
    assert "for tenant t002 carry items of tenant t004 (t004-p03" in event.summary
    assert "a data leak between tenants" in event.summary
    fleet.events.clear()
    fleet.rounds(3, start=4)
    ((_, resolved),) = fleet.events
    assert resolved.kind is EventKind.RESOLVED


def test_a_fallback_whose_items_fit_no_tenant_is_no_leak() -> None:
    spec = ContentSpec("recommendations", INTERVAL, FallbackRule(), tenant_pattern=PATTERN)
    fleet = Fleet(spec)
    fleet.rounds(2)
    fleet.rounds(3, dict.fromkeys(TENANTS, POPULAR), start=2)
    assert {e.rule for _, e in fleet.events} == {"fallback"}


def test_disjoint_catalogues_leak_after_two_probes_and_a_fleet_fallback_does_not() -> None:
    spec = ContentSpec("recommendations", INTERVAL, FallbackRule(), disjoint=True)
    fleet = Fleet(spec)
    fleet.rounds(2)
    fleet.rounds(2, {"t002": own("t004", 2)}, start=2)
    foreign = [e for _, e in fleet.events if e.rule == "foreign_items"]
    assert len(foreign) == 1 and "t002" in foreign[0].summary and "t004" in foreign[0].summary

    everyone = Fleet(spec)
    everyone.rounds(2)
    everyone.rounds(3, dict.fromkeys(TENANTS, POPULAR), start=2)
    assert {e.rule for _, e in everyone.events} == {"fallback"}


def test_frozen_answers() -> None:
    spec = ContentSpec("recommendations", INTERVAL, None, changes_within=600.0)
    fleet = Fleet(spec, TENANTS[:3])
    fleet.rounds(12, {"t001": POPULAR})
    frozen = [e for _, e in fleet.events if e.rule == "frozen"]
    assert [e.tenant for e in frozen] == ["t001"]
    assert "have not changed for 10m" in frozen[0].summary


def test_a_removed_tenant_resolves_and_leaves_the_counts() -> None:
    spec = ContentSpec("recommendations", INTERVAL, FallbackRule(), tenant_pattern=PATTERN)
    fleet = Fleet(spec)
    fleet.rounds(1)
    fleet.rounds(1, {"t002": own("t004", 3)}, start=1)
    state, events = forget_tenant(fleet.state, "t002", fleet.now, spec)
    assert [e.kind for e in events] == [EventKind.RESOLVED]
    assert state.answers.get("t002") is None and len(state.answers) == 39


def test_pmap_is_persistent() -> None:
    empty: PMap[str, int] = PMap()
    one = empty.set("a", 1)
    two = one.set("b", 2).set("a", 3)
    assert empty.get("a") is None and one.get("a") == 1 and two.get("a") == 3
    assert len(empty) == 0 and len(one) == 1 and len(two) == 2
    assert len(two.without("a")) == 1 and two.get("a") == 3


def test_the_state_survives_the_state_file() -> None:
    from monitor.detect.content import content_from_json, content_to_json

    spec = ContentSpec("recommendations", INTERVAL, FallbackRule(), PATTERN, True, 600.0)
    fleet = Fleet(spec)
    fleet.rounds(2)
    fleet.rounds(2, dict.fromkeys(TENANTS, POPULAR), start=2)
    assert fleet.state.alerts.get(("fallback", "")) is not None
    restored = content_from_json(content_to_json({"recommendations": fleet.state}))
    state = restored["recommendations"]
    assert dict(state.answers.items()) == dict(fleet.state.answers.items())
    assert dict(state.counts.items()) == dict(fleet.state.counts.items())
    assert dict(state.alerts.items()) == dict(fleet.state.alerts.items())
    assert state.candidate == fleet.state.candidate
    # and the restored judgement resolves the alert it remembers
    fleet.state, fleet.events = state, []
    fleet.rounds(3, start=4)
    assert [e.kind for _, e in fleet.events] == [EventKind.RESOLVED]


def test_an_unchanged_answer_keeps_its_packed_ids_not_the_results() -> None:
    # The ids are kept once, packed (one joined string), not as the result's tuple of
    # strings parsed from the JSON: the ledger keeps the latest result without them.
    spec = ContentSpec("recommendations", INTERVAL, fallback=FallbackRule(min_requests=3))
    first = result("t001", ("t001-a", "t001-b"), 1)
    state, _ = observe(ContentState(), first, 0.0, spec)
    answer = state.answers.get("t001")
    assert answer is not None and answer.packed == "t001-a\x1ft001-b"
    packed = answer.packed
    again = result("t001", tuple(["t001-a", "t001-b"]), 1)  # equal, another tuple
    before = state
    state, _ = observe(state, again, 60.0, spec)
    # Nothing changed (same list, same request): the state is left as it was, the record's
    # `at` included (when the answer last changed, not when it was last probed).
    assert state is before
    answer = state.answers.get("t001")
    assert answer is not None
    assert answer.packed is packed and answer.ids == ("t001-a", "t001-b")
    # The count's key is the answer's fingerprint string itself, not another copy of it.
    assert [(k is answer.fingerprint, n) for k, n in state.counts.items()] == [(True, 1)]
    assert (answer.at, answer.same_since, answer.asks) == (0.0, 0.0, ("product-1",))
    for n, at in ((2, 120.0), (3, 180.0), (2, 240.0)):
        state, _ = observe(state, result("t001", ("t001-a", "t001-b"), n), at, spec)
    answer = state.answers.get("t001")
    assert answer is not None
    # Different requests in a row, each once, capped at min_requests; `at` is when the last
    # new request was recorded (180), not the capped probe after it (240).
    assert answer.asks == ("product-1", "product-2", "product-3")
    assert (answer.at, answer.same_since) == (180.0, 0.0)
    state, _ = observe(state, result("t001", ("t001-c",), 1), 300.0, spec)
    answer = state.answers.get("t001")
    assert answer is not None and (answer.at, answer.same_since) == (300.0, 300.0)


def test_ids_holding_the_separator_are_kept_as_they_are() -> None:
    spec = ContentSpec("recommendations", INTERVAL, fallback=FallbackRule(min_requests=3))
    ids = ("t001-a\x1fb", "t001-c")
    state, _ = observe(ContentState(), result("t001", ids, 1), 0.0, spec)
    answer = state.answers.get("t001")
    assert answer is not None and answer.ids == ids
    assert pack_ids(("",)) == "" and Answer("f", pack_ids(("",)), 0, 0, ()).ids == ("",)


def test_the_counts_are_the_answers_fingerprints_whatever_the_answers_do() -> None:
    # An unchanged list leaves the counts as they are (no recount on the common path): they
    # must still equal a count of the answers after lists change, return, and disappear.
    from collections import Counter

    spec = ContentSpec("recommendations", INTERVAL, fallback=FallbackRule())
    state = ContentState()
    lists = [("a", "b"), ("a", "b"), ("c",), ("a", "b"), (), ("c",), ("c",)]
    for n, ids in enumerate(lists):
        for i, tenant in enumerate(TENANTS[:5]):
            answer = ids if (n + i) % 3 else tuple(reversed(ids))
            outcome = Outcome.OK if answer else Outcome.EMPTY
            state, _ = observe(state, result(tenant, answer, n, outcome), 60.0 * n + i, spec)
            recount = Counter(a.fingerprint for _, a in state.answers.items())
            assert dict(state.counts.items()) == dict(recount)
    assert len(state.answers) == 5
