"""Answers judged across requests and tenants: a fallback list, foreign items, a frozen answer.

Pure, like the detector: (state, result, now, spec) → (state, events). One state per check.
recmon probes every tenant of one platform, so it alone sees that most tenants got the same
list (a fallback or a cache answering instead of the recommendations service), or that one
tenant got another's items (a leak between tenants: always critical).

- fallback, fleet: one fingerprint (the item ids, order kept) is the latest answer of at least
  `min_tenants` and `share` of the tenants answering a list. One alert for the check, fired
  once every answering tenant answered it or an interval passed since it crossed (so its
  title states the scope); it resolves an interval after the share falls below.
- fallback, within a tenant: one list answered `min_requests` different requests in a row (the
  product rotating through the search results). Not while the fleet alert covers that list.
- foreign items: an item that fails the tenant pattern (`^{tenant}-`) and fits another known
  tenant's pages at once; with `expect.items_disjoint_across_tenants` an item id answered to
  two tenants pages when it happens on two probes in a row and the list is no fleet fallback.
- frozen: the same answer for `changes_within`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from monitor.config.model import FallbackRule
from monitor.config.units import format_duration
from monitor.core.conditions import Condition
from monitor.core.notifications import Severity
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.codec import alert_from_json, alert_to_json
from monitor.detect.lifecycle import Description, Subject, Thresholds, Verdict, advance
from monitor.detect.series import AlertEvent, AlertState, EventKind

FALLBACK = "fallback"
FOREIGN = "foreign_items"
FROZEN = "frozen"
RULES = (FALLBACK, FOREIGN, FROZEN)
# Items named in a page: enough to recognise the list.
SHOWN_ITEMS = 5
# Tenants an item id remembers having been answered to (disjoint catalogues).
_OWNERS = 4
_FANOUT = 32

K = TypeVar("K")
V = TypeVar("V")


_EMPTY_LEAVES: tuple[dict[Any, Any], ...] = tuple({} for _ in range(_FANOUT))
_EMPTY_ROOT = tuple(_EMPTY_LEAVES for _ in range(_FANOUT))


@dataclass(frozen=True, slots=True)
class PMap(Generic[K, V]):
    """A persistent mapping, a two-level trie of 32 x 32 dicts: `set` returns a new map that
    copies two 32-slot tuples and one small dict and shares the rest, so a state with 10,000
    tenants is updated in about a microsecond, not by copying 10,000 entries."""

    root: tuple[tuple[dict[K, V], ...], ...] = _EMPTY_ROOT
    size: int = 0

    def get(self, key: K) -> V | None:
        if not self.size:
            return None  # most lookups: a judgement's alerts, none of them (no hash, no walk)
        h = hash(key)
        return self.root[h % _FANOUT][(h // _FANOUT) % _FANOUT].get(key)

    def set(self, key: K, value: V) -> PMap[K, V]:
        h = hash(key)
        i, j = h % _FANOUT, (h // _FANOUT) % _FANOUT
        # Copied as lists and back: ~0.3 us less than splicing the tuples (every probe).
        root = list(self.root)
        inner = list(root[i])
        leaf = dict(inner[j])
        grew = key not in leaf
        leaf[key] = value
        inner[j] = leaf
        root[i] = tuple(inner)
        return PMap(tuple(root), self.size + grew)

    def without(self, key: K) -> PMap[K, V]:
        h = hash(key)
        i, j = h % _FANOUT, (h // _FANOUT) % _FANOUT
        inner = self.root[i]
        if key not in inner[j]:
            return self
        leaf = dict(inner[j])
        del leaf[key]
        inner = (*inner[:j], leaf, *inner[j + 1 :])
        return PMap((*self.root[:i], inner, *self.root[i + 1 :]), self.size - 1)

    def items(self) -> Iterator[tuple[K, V]]:
        for inner in self.root:
            for leaf in inner:
                yield from leaf.items()

    def __len__(self) -> int:
        return self.size


@dataclass(frozen=True, slots=True)
class ContentSpec:
    """What one check's answers are judged on (from its expect and alerts.fallback)."""

    check: str
    interval: float
    fallback: FallbackRule | None = None
    tenant_pattern: Condition | None = None
    disjoint: bool = False
    changes_within: float | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """A tenant's latest list."""

    fingerprint: str
    # The item ids (`ids`), packed: one string joined by _SEPARATOR (what the fingerprint
    # hashes), or the tuple when an id holds the separator itself. A tuple of the strings
    # parsed from the JSON was ~1 KB a tenant's list; the joined string ~250 bytes.
    packed: str | tuple[str, ...]
    # When this answer last changed: its list, or a request it had not answered yet (an
    # unchanged answer leaves the record, and the state, as they were). No judgement reads it.
    at: float
    same_since: float  # answered this list, unchanged, since
    # Different requests it answered in a row (capped), first asked first: a tuple, not a
    # frozenset (48 bytes against 216 for the one request a tenant is usually asked).
    asks: tuple[str, ...]
    shared_streak: int = 0  # probes in a row sharing an item with another tenant

    @property
    def ids(self) -> tuple[str, ...]:
        packed = self.packed
        return tuple(packed.split(_SEPARATOR)) if isinstance(packed, str) else packed


_SEPARATOR = "\x1f"


def pack_ids(ids: tuple[str, ...], joined: str | None = None) -> str | tuple[str, ...]:
    """Answer.packed for `ids` (`joined`: _SEPARATOR.join(ids), if already made)."""
    if joined is None:
        joined = _SEPARATOR.join(ids)
    return joined if joined.count(_SEPARATOR) == len(ids) - 1 else ids


@dataclass(frozen=True, slots=True)
class Candidate:
    """A list that crossed the fleet bar: since when, and the tenants answering then."""

    fingerprint: str
    since: float


@dataclass(frozen=True, slots=True)
class ContentState:
    answers: PMap[str, Answer] = field(default_factory=PMap)
    counts: PMap[str, int] = field(default_factory=PMap)  # fingerprint → latest answers
    owners: PMap[str, tuple[tuple[str, float], ...]] = field(default_factory=PMap)
    candidate: Candidate | None = None
    # (rule, tenant; "" for the check's fleet alert) → state
    alerts: PMap[tuple[str, str], AlertState] = field(default_factory=PMap)
    # Tenants probed (the caller's count): the fleet's size also before all have answered,
    # so the first few answers after a start can never read as "all 3 tenants".
    tenants: int = 0

    @property
    def total(self) -> int:
        return max(len(self.answers), self.tenants)


def _with(state: ContentState, **changes: Any) -> ContentState:
    """dataclasses.replace without its per-call introspection (it runs several times a probe)."""
    fields: dict[str, Any] = {
        "answers": state.answers,
        "counts": state.counts,
        "owners": state.owners,
        "candidate": state.candidate,
        "alerts": state.alerts,
        "tenants": state.tenants,
    }
    fields.update(changes)
    return ContentState(**fields)


def fingerprint(ids: tuple[str, ...]) -> str:
    return _fingerprint(_SEPARATOR.join(ids))


def _fingerprint(joined: str) -> str:
    return hashlib.blake2b(joined.encode(), digest_size=8).hexdigest()


def listed(ids: tuple[str, ...]) -> str:
    shown = ", ".join(ids[:SHOWN_ITEMS])
    return shown + (" …" if len(ids) > SHOWN_ITEMS else "")


def observe(
    state: ContentState, result: ProbeResult, now: float, spec: ContentSpec, tenants: int = 0
) -> tuple[ContentState, list[AlertEvent]]:
    """Record the tenant's answer, judge fallback, foreign items and frozen answers.
    `tenants`: how many tenants are probed (0: those that answered)."""
    if tenants != state.tenants:
        state = _with(state, tenants=tenants)
    tenant = result.tenant
    previous = state.answers.get(tenant)
    has_list = result.outcome in (Outcome.OK, Outcome.WRONG_CONTENT) and bool(result.item_ids)
    state, answer = _record(state, tenant, previous, result if has_list else None, now, spec)
    events: list[AlertEvent] = []
    if spec.fallback is not None:
        state = _fleet(state, answer, now, spec, spec.fallback, events)
        state = _tenant_fallback(state, tenant, answer, now, spec, spec.fallback, events)
    if spec.tenant_pattern is not None or spec.disjoint:
        state = _foreign(state, tenant, answer, result, now, spec, events)
    if spec.changes_within is not None:
        state = _frozen(state, tenant, answer, now, spec, spec.changes_within, events)
    return state, events


def _record(
    state: ContentState,
    tenant: str,
    previous: Answer | None,
    result: ProbeResult | None,
    now: float,
    spec: ContentSpec,
) -> tuple[ContentState, Answer | None]:
    """The state with the tenant's answer recorded, and that answer (None: no list)."""
    counts = state.counts
    if result is not None:
        ids = result.item_ids
        joined = _SEPARATOR.join(ids)
        if previous is not None and (joined == previous.packed or ids == previous.packed):
            print_ = previous.fingerprint  # the list as before (most probes): not hashed again
        else:
            print_ = _fingerprint(joined)
        if previous is not None and previous.fingerprint == print_:
            # The same list: its count stays, and the answer keeps the previous one's
            # fingerprint (the counts' key) and packed ids: no second copy of either.
            asks = previous.asks
            cap = spec.fallback.min_requests if spec.fallback is not None else 1
            if len(asks) >= cap or result.asked in asks:
                # Nothing to record (most probes): the state stays as it is, no new objects.
                return state, previous
            answer = Answer(
                previous.fingerprint,
                previous.packed,
                now,
                previous.same_since,
                (*asks, result.asked),
                previous.shared_streak,
            )
            # Every field named (not _with's dict): most probes of a judged check come here.
            return ContentState(
                state.answers.set(tenant, answer),
                state.counts,
                state.owners,
                state.candidate,
                state.alerts,
                state.tenants,
            ), answer
    if previous is None and result is None:
        return state, None  # no list now nor before (a check answering none): nothing changes
    if previous is not None:
        counts = _uncounted(counts, previous.fingerprint)
    if result is None:
        return _with(state, answers=state.answers.without(tenant), counts=counts), None
    counts = counts.set(print_, (counts.get(print_) or 0) + 1)
    answer = Answer(print_, pack_ids(ids, joined), now, now, (result.asked,))
    return _with(state, answers=state.answers.set(tenant, answer), counts=counts), answer


def _uncounted(counts: PMap[str, int], print_: str) -> PMap[str, int]:
    """The counts with one answer of `print_` fewer."""
    left = (counts.get(print_) or 1) - 1
    return counts.set(print_, left) if left else counts.without(print_)


def _alert(
    state: ContentState,
    rule: str,
    tenant: str,
    verdict: Verdict,
    now: float,
    spec: ContentSpec,
    severity: Severity,
    events: list[AlertEvent],
) -> ContentState:
    key = (rule, tenant)
    current = state.alerts.get(key)
    if current is None and not verdict.active:
        return state  # the common case: nothing wrong, nothing to remember
    alerts = {rule: current} if current is not None else {}
    event = advance(
        alerts,
        rule,
        verdict,
        severity=severity,
        now=now,
        subject=Subject(tenant or None, spec.check),
        # One good answer never resolves: the recovery holds for an interval (two probes).
        thresholds=Thresholds(0.0, spec.interval),
    )
    if event is not None:
        events.append(event)
    updated = alerts.get(rule)
    return _with(
        state,
        alerts=state.alerts.set(key, updated) if updated is not None else state.alerts.without(key),
    )


def _bar(state: ContentState, rule: FallbackRule) -> float:
    return max(rule.min_tenants, rule.share * state.total)


def _fleet(
    state: ContentState,
    answer: Answer | None,
    now: float,
    spec: ContentSpec,
    rule: FallbackRule,
    events: list[AlertEvent],
) -> ContentState:
    firing = state.alerts.get((FALLBACK, ""))
    if answer is None and firing is None and state.candidate is None:
        return state  # no list to watch (a check answering none): what the bar would conclude
    watched = (
        str(firing.details.get("fingerprint", ""))
        if firing is not None
        else state.candidate.fingerprint
        if state.candidate is not None
        else answer.fingerprint
        if answer is not None
        else ""
    )
    count = state.counts.get(watched) or 0
    crossed = bool(watched) and count >= _bar(state, rule)
    if not crossed and firing is None and state.candidate is None:
        return state  # the common case: no list near the bar, nothing to remember or resolve
    candidate = state.candidate
    if not crossed:
        candidate = None
    elif candidate is None or candidate.fingerprint != watched:
        candidate = Candidate(watched, now)
    if candidate is not state.candidate:
        state = _with(state, candidate=candidate)
    # The title states the scope: every answering tenant on the list, or an interval since.
    settled = candidate is not None and (
        count >= state.total or now - candidate.since >= spec.interval
    )
    total = state.total

    def describe() -> Description:
        # Only for an alert pending or firing: a walk over the answers.
        ids = _ids_of(state, watched)
        # The peak, as storms say it: a recovery under way does not shrink what was paged.
        peak, of = count, total
        if firing is not None and int(firing.details.get("tenant_count", 0)) > count:
            peak = int(firing.details["tenant_count"])
            of = int(firing.details.get("total_tenants", total))
        summary = (
            f"{spec.check} are one identical list for {_scope(peak, of)} "
            f"(fingerprint {watched}, {len(ids)} items: {listed(ids)}) — a fallback or cache "
            "is answering"
        )
        return summary, {
            "fingerprint": watched,
            "tenant_count": peak,
            "total_tenants": of,
            "share": round(peak / of, 4) if of else 0.0,
            "items": list(ids[:SHOWN_ITEMS]),
        }

    verdict = Verdict(crossed and (settled or firing is not None), not crossed, describe)
    return _alert(state, FALLBACK, "", verdict, now, spec, rule.severity, events)


def _scope(count: int, total: int) -> str:
    if count >= total:
        return f"all {total} tenants"
    return f"{count} of {total} tenants ({count / total:.0%})"


def _ids_of(state: ContentState, print_: str) -> tuple[str, ...]:
    """The items of a fingerprint, from a tenant answering it (the fleet alert's own tenant
    is not known; the first found is as good as any)."""
    for _, answer in state.answers.items():
        if answer.fingerprint == print_:
            return answer.ids
    return ()


def _tenant_fallback(
    state: ContentState,
    tenant: str,
    answer: Answer | None,
    now: float,
    spec: ContentSpec,
    rule: FallbackRule,
    events: list[AlertEvent],
) -> ContentState:
    if (answer is None or len(answer.asks) < rule.min_requests) and (
        state.alerts.get((FALLBACK, tenant)) is None
    ):
        return state  # not active, no alert to resolve: what _alert would conclude
    fleet = state.alerts.get((FALLBACK, ""))
    covered = answer is not None and (
        (fleet is not None and fleet.details.get("fingerprint") == answer.fingerprint)
        or (state.candidate is not None and state.candidate.fingerprint == answer.fingerprint)
    )
    active = answer is not None and len(answer.asks) >= rule.min_requests and not covered

    def describe() -> Description:
        assert answer is not None
        summary = (
            f"{spec.check} for tenant {tenant} are one identical list for "
            f"{len(answer.asks)} different requests in a row (fingerprint {answer.fingerprint}, "
            f"{len(answer.ids)} items: {listed(answer.ids)}) — a fallback or cache is answering"
        )
        return summary, {
            "fingerprint": answer.fingerprint,
            "requests": len(answer.asks),
            "items": list(answer.ids[:SHOWN_ITEMS]),
        }

    return _alert(
        state,
        FALLBACK,
        tenant,
        Verdict(active, not active, describe),
        now,
        spec,
        rule.severity,
        events,
    )


def _owner_of(item: str, tenant: str, state: ContentState, pattern: Condition) -> str | None:
    """The other known tenant whose pattern the item fits, or None."""
    extract = _extractor(pattern)
    match = extract.match(item) if extract is not None else None
    if match is None:
        return None
    other = match.group("tenant")
    if other == tenant or state.answers.get(other) is None:
        return None
    mine = pattern.expected_for({"tenant": other})
    return other if isinstance(mine, re.Pattern) and mine.search(item) else None


_EXTRACTORS: dict[str, re.Pattern[str] | None] = {}


def _extractor(pattern: Condition) -> re.Pattern[str] | None:
    """The tenant pattern with {tenant} as a capture group: which tenant an item claims."""
    text = pattern.template.text if pattern.template is not None else ""
    if text not in _EXTRACTORS:
        regex = re.sub(r"\{tenant\}", "(?P<tenant>[A-Za-z0-9][A-Za-z0-9_.-]*?)", text, count=1)
        regex = re.sub(r"\{[A-Za-z_][A-Za-z0-9_.-]*\}", ".*?", regex)
        try:
            _EXTRACTORS[text] = re.compile(regex)
        except re.error:
            _EXTRACTORS[text] = None
    return _EXTRACTORS[text]


def _foreign(
    state: ContentState,
    tenant: str,
    answer: Answer | None,
    result: ProbeResult,
    now: float,
    spec: ContentSpec,
    events: list[AlertEvent],
) -> ContentState:
    found: dict[str, list[str]] = {}  # other tenant → its items answered here
    pattern = spec.tenant_pattern
    if pattern is not None and result.outcome is Outcome.WRONG_CONTENT and answer is not None:
        for item in answer.ids:
            other = _owner_of(item, tenant, state, pattern)
            if other is not None:
                found.setdefault(other, []).append(item)
    if spec.disjoint and answer is not None:
        state, shared = _shared(state, tenant, answer, now, spec)
        fleet = spec.fallback is not None and (state.counts.get(answer.fingerprint) or 0) >= _bar(
            state, spec.fallback
        )
        streak = 0 if not shared or fleet else answer.shared_streak + 1
        answer = replace(answer, shared_streak=streak)
        state = _with(state, answers=state.answers.set(tenant, answer))
        if streak >= 2:
            for other, items in shared.items():
                found.setdefault(other, []).extend(
                    i for i in items if i not in found.get(other, [])
                )
    active = bool(found)
    total = len(answer.ids) if answer is not None else 0

    def describe() -> Description:
        others = sorted(found)
        items = [i for o in others for i in found[o]]
        summary = (
            f"{spec.check} for tenant {tenant} carry items of tenant "
            f"{', '.join(others)} ({listed(tuple(items))}; {len(items)} of {total} items) — "
            "a data leak between tenants: treat it as a security incident"
        )
        return summary, {"other_tenants": others, "items": items[:SHOWN_ITEMS]}

    return _alert(
        state,
        FOREIGN,
        tenant,
        Verdict(active, not active, describe),
        now,
        spec,
        Severity.CRITICAL,
        events,
    )


def _shared(
    state: ContentState, tenant: str, answer: Answer, now: float, spec: ContentSpec
) -> tuple[ContentState, dict[str, list[str]]]:
    """Record who got each item; the other tenants that got one of these lately."""
    horizon = now - 2 * spec.interval
    owners = state.owners
    shared: dict[str, list[str]] = {}
    for item in answer.ids:
        seen = owners.get(item) or ()
        kept = tuple((t, at) for t, at in seen if at > horizon and t != tenant)
        for other, _ in kept:
            shared.setdefault(other, []).append(item)
        owners = owners.set(item, ((tenant, now), *kept)[:_OWNERS])
    return _with(state, owners=owners), shared


def _frozen(
    state: ContentState,
    tenant: str,
    answer: Answer | None,
    now: float,
    spec: ContentSpec,
    within: float,
    events: list[AlertEvent],
) -> ContentState:
    active = answer is not None and now - answer.same_since >= within

    def describe() -> Description:
        assert answer is not None
        summary = (
            f"{spec.check} for tenant {tenant} have not changed for "
            f"{format_duration(now - answer.same_since)} (fingerprint {answer.fingerprint}, "
            f"{len(answer.ids)} items: {listed(answer.ids)}) — a stale cache may be answering"
        )
        return summary, {"fingerprint": answer.fingerprint, "since": answer.same_since}

    return _alert(
        state,
        FROZEN,
        tenant,
        Verdict(active, not active, describe),
        now,
        spec,
        Severity.WARNING,
        events,
    )


def covers(state: ContentState, result: ProbeResult) -> bool:
    """Whether this result's wrongness is already an alert of these rules: its list is the
    fleet's fallback (firing, or crossing), or its tenant's foreign-items alert fires. The
    per-tenant failure rules then need not page it again (one incident, one alert)."""
    if not result.item_ids:
        return False
    foreign = state.alerts.get((FOREIGN, result.tenant))
    if foreign is not None:
        return True
    answer = state.answers.get(result.tenant)
    if answer is None:
        return False
    fleet = state.alerts.get((FALLBACK, ""))
    if fleet is not None and fleet.details.get("fingerprint") == answer.fingerprint:
        return True
    return state.candidate is not None and state.candidate.fingerprint == answer.fingerprint


def forget_tenant(
    state: ContentState, tenant: str, now: float, spec: ContentSpec
) -> tuple[ContentState, list[AlertEvent]]:
    """A tenant no longer probed: its answer leaves the counts, its alerts resolve."""
    previous = state.answers.get(tenant)
    if previous is not None:
        left = (state.counts.get(previous.fingerprint) or 1) - 1
        counts = (
            state.counts.set(previous.fingerprint, left)
            if left
            else state.counts.without(previous.fingerprint)
        )
        state = _with(state, answers=state.answers.without(tenant), counts=counts)
    events: list[AlertEvent] = []
    alerts = state.alerts
    for rule in RULES:
        alert = alerts.get((rule, tenant))
        if alert is None:
            continue
        alerts = alerts.without((rule, tenant))
        if alert.fired_at is not None:
            events.append(_resolved(rule, tenant, spec.check, alert, now))
    return _with(state, alerts=alerts), events


def _resolved(rule: str, tenant: str, check: str, alert: AlertState, now: float) -> AlertEvent:
    return AlertEvent(
        EventKind.RESOLVED,
        rule,
        tenant or None,
        check,
        alert.severity,
        alert.fired_at or now,
        now,
        f"resolved (tenant no longer monitored): {alert.summary}",
    )


def adopt(state: ContentState, event: AlertEvent, alert: AlertState) -> ContentState:
    """After a restart: a paged alert of these rules is firing here too, so it can resolve."""
    key = (event.rule, event.tenant or "")
    if state.alerts.get(key) is not None:
        return state
    return _with(state, alerts=state.alerts.set(key, alert))


def alerts_of(state: ContentState) -> Iterator[tuple[str, str, AlertState]]:
    """(rule, tenant; "" for the fleet alert, state) of every pending or firing alert."""
    for (rule, tenant), alert in state.alerts.items():
        yield rule, tenant, alert


# --- the state file ------------------------------------------------------------------------
# One JSON entry ("content") per monitor: {check: state}. Counts are rebuilt from the answers.


def content_to_json(states: Mapping[str, ContentState]) -> dict[str, Any]:
    return {
        check: {
            "answers": {
                tenant: [
                    a.fingerprint,
                    list(a.ids),
                    a.at,
                    a.same_since,
                    sorted(a.asks),
                    a.shared_streak,
                ]
                for tenant, a in state.answers.items()
            },
            "owners": {item: [list(o) for o in seen] for item, seen in state.owners.items()},
            "candidate": (
                None
                if state.candidate is None
                else [state.candidate.fingerprint, state.candidate.since]
            ),
            "alerts": [
                [rule, tenant, alert_to_json(alert)]
                for (rule, tenant), alert in state.alerts.items()
            ],
        }
        for check, state in states.items()
    }


def content_from_json(data: object) -> dict[str, ContentState]:
    """Raises ValueError for anything that is not what content_to_json wrote."""
    if not isinstance(data, dict):
        raise ValueError("expected an object of checks")
    states: dict[str, ContentState] = {}
    try:
        for check, saved in data.items():
            state = ContentState()
            for tenant, (print_, ids, at, same_since, asks, streak) in saved["answers"].items():
                answer = Answer(
                    str(print_),
                    pack_ids(tuple(map(str, ids))),
                    float(at),
                    float(same_since),
                    tuple(dict.fromkeys(map(str, asks))),
                    int(streak),
                )
                counts = state.counts.set(
                    answer.fingerprint, (state.counts.get(answer.fingerprint) or 0) + 1
                )
                state = _with(state, answers=state.answers.set(str(tenant), answer), counts=counts)
            owners = state.owners
            for item, seen in saved.get("owners", {}).items():
                owners = owners.set(str(item), tuple((str(t), float(at)) for t, at in seen))
            alerts = state.alerts
            for rule, tenant, alert in saved.get("alerts", []):
                alerts = alerts.set((str(rule), str(tenant)), alert_from_json(alert))
            candidate = saved.get("candidate")
            states[str(check)] = _with(
                state,
                owners=owners,
                alerts=alerts,
                candidate=None
                if candidate is None
                else Candidate(str(candidate[0]), float(candidate[1])),
            )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"unreadable content state: {exc}") from None
    return states
