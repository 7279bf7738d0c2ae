"""The detector: (series state, probe result, now) → (series state, alert events). Pure.

No I/O and no clock inside: `now` is an argument. The same code runs live, in `recmon once`
across CronJob runs (state persisted in between), and in virtual-time incident replays.
"""

from __future__ import annotations

import bisect
import functools
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.config.model import (
    AuthErrorsRule,
    EmptyResultsRule,
    ErrorRateRule,
    FailuresRule,
    LatencyDriftRule,
    LatencySloRule,
)
from monitor.config.units import format_duration
from monitor.core.notifications import Severity
from monitor.core.results import (
    CREDENTIAL_EITHER,
    CREDENTIAL_NONE,
    CREDENTIAL_TENANT,
    Outcome,
    ProbeResult,
)
from monitor.core.tenancy import tenant_named
from monitor.detect.lifecycle import (
    IMMEDIATE,
    Description,
    Subject,
    Thresholds,
    Verdict,
    advance,
)
from monitor.detect.rules import RuleSet, learning_phase
from monitor.detect.series import (
    NO_ALERTS,
    OUTCOME_OF_CODE,
    AlertEvent,
    AlertState,
    Bucket,
    Sample,
    SeriesState,
    Tally,
    appended_probe,
    dropped_before,
    leaving,
    series_state,
)
from monitor.detect.stats import WindowHistogram, wilson_lower, window_bucket

_MAX_REASON = 200
# A NamedTuple's own __new__ is a Python function: tuple.__new__ builds one in C.
_new_tuple = tuple.__new__
# An enum member's .value goes through a descriptor; a probe asked for it a dozen times.
_VALUE: dict[Outcome, str] = {o: o.value for o in Outcome}
_TIMED = frozenset((Outcome.OK, Outcome.EMPTY))
_OUTCOME: dict[str, Outcome] = {o.value: o for o in Outcome}
_RATE_IDS: dict[Outcome, str] = {o: f"error_rate:{o.value}" for o in Outcome}


@dataclass(frozen=True, slots=True)
class Parent:
    """The check this one runs after (search for recommendations), for correlation."""

    check: str
    state: SeriesState


def observe(
    state: SeriesState,
    result: ProbeResult,
    now: float,
    rules: RuleSet,
    parent: Parent | None = None,
) -> tuple[SeriesState, list[AlertEvent]]:
    """Record the probe, read every rule's verdict, move each rule's alert along the shared
    lifecycle (monitor/detect/lifecycle.py)."""
    state = _record(state, result, now, rules)
    # Most probes of a fleet: an ok answer to a series with no alert and nothing but ok
    # answers in its longest window (which holds every shorter one). Every count rule then
    # reads none of its outcome, so none is active and none has an alert to move along: only
    # the latency rules are read (the same verdicts, without building the others').
    quiet = (
        not state.alerts
        and result.outcome is Outcome.OK
        and _plan(rules).quiet_when_ok
        and state.tallies[0].counts.keys() <= _OK_ONLY
    )
    if not state.alerts and (
        _latency_calm(state, rules, result.tenant, result.check, parent)
        if quiet
        else _calm(state, now, rules, result, parent)
    ):
        # No alert to move along and no rule active: nothing changes but the recorded state
        # and no event follows (what the readings' loop and _slow_burn conclude), without
        # the loop, its Subject and the alerts' copy. Most probes of a fleet, also of series
        # with a failure in their windows.
        return state, []
    alerts = dict(state.alerts)
    subject = Subject(result.tenant, result.check)
    events: list[AlertEvent] = []
    readings = (
        _latency_verdicts(state, rules, subject, parent)
        if quiet
        else _fast_verdicts(state, now, rules, subject, parent, _credential(result, state))
    )
    for rule_id, verdict, severity, thresholds in readings:
        if not verdict.active and rule_id not in alerts:
            continue  # nothing wrong, nothing remembered: what advance would conclude
        event = advance(
            alerts,
            rule_id,
            verdict,
            severity=severity,
            now=now,
            subject=subject,
            thresholds=thresholds,
        )
        if event is not None:
            events.append(event)
    quiet_until = (
        state.slow_burn_quiet_until
        if quiet
        else _slow_burn(state, alerts, now, rules, subject, events)
    )
    if quiet_until == state.slow_burn_quiet_until and alerts == state.alerts:
        return state, events  # most probes: the recorded state is the state (one build, not two)
    return _with(state, alerts=alerts or NO_ALERTS, slow_burn_quiet_until=quiet_until), events


RuleReading = tuple[str, Verdict, Severity, Thresholds]

# A rule's reading when it is not active and has no alert to move along: what observe skips
# (one shared verdict, not a verdict and a page's text built for nothing on every probe);
# also a latency rule's without enough evidence (neither active nor clear).
NOTHING = Verdict(False, False)


def _fast_verdicts(
    state: SeriesState,
    now: float,
    rules: RuleSet,
    subject: Subject,
    parent: Parent | None,
    credential: str = CREDENTIAL_NONE,
) -> Iterator[RuleReading]:
    """The per-series rules that speak first: empty results, failures, refused credentials,
    latency."""
    tenant, check = subject.tenant or "", subject.check or ""
    if (empty := rules.empty_results) is not None:
        verdict = _empty_results(state, empty, now, tenant, check, parent)
        yield "empty_results", verdict, empty.severity, IMMEDIATE
    if (failures := rules.failures) is not None:
        verdict = _failures(state, failures, now, tenant, check)
        yield "failures", verdict, failures.severity, IMMEDIATE
    if (auth := rules.auth_errors) is not None:
        verdict = _auth_errors(state, auth, now, tenant, check, credential)
        yield "auth_errors", verdict, auth.severity, IMMEDIATE
    yield from _latency_verdicts(state, rules, subject, parent)


def _latency_verdicts(
    state: SeriesState, rules: RuleSet, subject: Subject, parent: Parent | None
) -> Iterator[RuleReading]:
    """The latency rules' readings (they read the window's latencies, not its outcomes)."""
    tenant, check = subject.tenant or "", subject.check or ""
    if (drift := rules.latency_drift) is not None:
        verdict = _latency_drift(state, drift, tenant, check, parent)
        yield "latency_drift", verdict, drift.severity, _thresholds(drift.for_, drift.resolve_for)
    if (slo := rules.latency_slo) is not None:
        verdict = _latency_slo(state, slo, tenant, check)
        yield "latency_slo", verdict, slo.severity, _thresholds(slo.for_, slo.resolve_for)


def _calm(
    state: SeriesState, now: float, rules: RuleSet, result: ProbeResult, parent: Parent | None
) -> bool:
    """Whether no rule is active, for a series with no alert (each rule's reading is then
    NOTHING, or an inactive verdict that observe skips; the error-rate rule reads only the
    active outcomes)."""
    tenant, check = result.tenant, result.check
    if (empty := rules.empty_results) is not None and _empty_results(
        state, empty, now, tenant, check, parent
    ).active:
        return False
    if (failures := rules.failures) is not None and _failures(
        state, failures, now, tenant, check
    ).active:
        return False
    if (auth := rules.auth_errors) is not None and _auth_errors(
        state, auth, now, tenant, check, result.credential or CREDENTIAL_NONE
    ).active:
        return False
    if (rate := rules.error_rate) is not None and _error_rates(state, rate, now, tenant, check):
        return False
    return _latency_calm(state, rules, tenant, check, parent)


def _latency_calm(
    state: SeriesState, rules: RuleSet, tenant: str, check: str, parent: Parent | None
) -> bool:
    """Whether no latency rule is active (what _latency_verdicts would read, without its
    readings: for a quiet series, the common case)."""
    drift = rules.latency_drift
    if drift is not None and _latency_drift(state, drift, tenant, check, parent).active:
        return False
    slo = rules.latency_slo
    return slo is None or not _latency_slo(state, slo, tenant, check).active


@functools.lru_cache(maxsize=64)
def _thresholds(hold: float, release: float) -> Thresholds:
    return Thresholds(hold, release)  # frozen: one per pair, not one per probe


def _slow_burn(
    state: SeriesState,
    alerts: dict[str, AlertState],
    now: float,
    rules: RuleSet,
    subject: Subject,
    events: list[AlertEvent],
) -> float:
    """The error-rate rule, one alert per outcome; returns until when it stays quiet. It stays
    quiet while a faster rule speaks for this series, and until that outage has left the
    slow-burn window."""
    rate = rules.error_rate
    quiet_until = state.slow_burn_quiet_until
    if rate is None:
        return quiet_until
    if any(alerts.get(r) is not None for r in ("empty_results", "failures", "auth_errors")):
        quiet_until = now + rate.window
    tenant, check = subject.tenant or "", subject.check or ""
    for outcome, verdict in _error_rates(state, rate, now, tenant, check).items():
        rule_id = _RATE_IDS[outcome]
        if now < quiet_until and rule_id not in alerts:
            continue
        event = advance(alerts, rule_id, verdict, severity=rate.severity, now=now, subject=subject)
        if event is not None:
            events.append(event)
    return quiet_until


def _with(state: SeriesState, **changes: Any) -> SeriesState:
    """dataclasses.replace, without its per-call introspection (this runs for every probe)."""
    fields: dict[str, Any] = {
        "buckets": state.buckets,
        "starts": state.starts,
        "tallies": state.tallies,
        "empty_streak": state.empty_streak,
        "failure_streak": state.failure_streak,
        "ok_streak": state.ok_streak,
        "baseline": state.baseline,
        "alerts": state.alerts,
        "learned_until": state.learned_until,
        "slow_burn_quiet_until": state.slow_burn_quiet_until,
        "window_p95": state.window_p95,
    }
    fields.update(changes)
    return series_state(**fields)


@dataclass(frozen=True, slots=True)
class _Plan:
    """The window lengths a RuleSet reads, longest first, and which of them a latency rule
    (or the p95 gauge) reads."""

    lengths: tuple[float, ...]
    timed: tuple[bool, ...]
    p95_window: float
    p95_at: int  # where p95_window is among lengths
    # Whether an ok probe over windows of ok probes leaves every count rule inactive (as
    # the configuration validates it: no rule counts "ok" as a failure, every threshold and
    # share above zero), so observe may read the latency rules alone.
    quiet_when_ok: bool = False


# Keyed by id, holding the RuleSet so the id cannot be reused (RuleSets are few and shared).
_PLANS: dict[int, tuple[RuleSet, _Plan]] = {}


def _plan(rules: RuleSet) -> _Plan:
    known = _PLANS.get(id(rules))
    if known is not None and known[0] is rules:
        return known[1]
    drift, slo = rules.latency_drift, rules.latency_slo
    p95_window = drift.window if drift is not None else rules.longest_window
    timed = {p95_window} | ({slo.window} if slo is not None else set())
    counted = (rules.empty_results, rules.failures, rules.auth_errors, rules.error_rate)
    lengths = sorted(
        {rules.longest_window, *timed, *(r.window for r in counted if r is not None)},
        reverse=True,
    )
    plan = _Plan(
        tuple(lengths),
        tuple(length in timed for length in lengths),
        p95_window,
        lengths.index(p95_window),
        _quiet_when_ok(rules),
    )
    if len(_PLANS) >= 1024:
        _PLANS.clear()
    _PLANS[id(rules)] = (rules, plan)
    return plan


_OK_ONLY = frozenset((Outcome.OK.value,))


def _quiet_when_ok(rules: RuleSet) -> bool:
    """Whether no count rule can be active, nor move an alert, on a window of ok probes."""
    streaks = (rules.empty_results, rules.failures, rules.auth_errors)
    if any(r is not None and (r.failure_threshold < 1 or r.share <= 0) for r in streaks):
        return False
    rate = rules.error_rate
    if rate is not None and (Outcome.OK in rate.outcomes or rate.threshold <= 0):
        return False
    return rules.failures is None or Outcome.OK not in rules.failures.outcomes


def _record(state: SeriesState, result: ProbeResult, now: float, rules: RuleSet) -> SeriesState:
    """The state with this probe recorded: the sample in, every window's tally moved on by
    the samples that left it, the baseline taught what left the drift window (learn_every
    of it at a time)."""
    # An empty answer is still a complete answer: its latency counts (in the incident, the
    # broken hop made recommendations both empty and slow).
    outcome = result.outcome
    timed = outcome in _TIMED
    latency = result.duration_s if timed and result.latency_trusted else None
    value = _VALUE[outcome]
    reason = result.reason[:_MAX_REASON]
    buckets, starts = appended_probe(state.buckets, state.starts, now, value, latency, reason)
    end = starts[-1] + len(buckets[-1])
    plan = _plan(rules)
    stepped = _stepped(state.tallies, plan, buckets, starts, end, now, value, latency)
    if stepped is None:  # restored, or the rules changed: counted again from the samples
        sample = Sample(now, value, latency, reason)
        tallies = _rebuilt(state, plan, buckets, starts, end, now, sample)
    else:
        tallies = stepped
    baseline, learned_until = state.baseline, state.learned_until
    drift = rules.latency_drift
    if drift is not None:
        cutoff = now - drift.window
        # Frozen while drift is pending or firing, so the drift never becomes the new normal.
        if state.alerts.get("latency_drift") is not None:
            learned_until = max(learned_until, cutoff)
        elif cutoff - learned_until >= rules.learn_every:
            # What left the drift window since it last learned, up to the series' own point
            # in learn_every (learning_phase), read in place before the samples past the
            # longest window are dropped (learn_every is never longer than the series
            # remembers a sample after it left: none leaves unlearned).
            every = rules.learn_every
            phase = learning_phase(result.tenant, result.check)
            edge = cutoff - (cutoff - phase) % every if every else cutoff
            left = leaving(buckets, starts, end, state.head, edge)
            # NaN (no latency) is unequal to itself.
            taught = [
                (at, seconds)
                for at, seconds, _ in left
                if at > learned_until and seconds == seconds
            ]
            if taught:
                baseline = baseline.learned(taught, drift.baseline_half_life)
            learned_until = max(learned_until, edge)
    buckets, starts = dropped_before(buckets, starts, tallies[0].cursor)
    histogram = tallies[plan.p95_at].latencies
    assert histogram is not None
    failures = rules.failures.outcomes if rules.failures is not None else ()
    # Every field in order (not _with's dict of the old ones): built once a probe.
    return series_state(
        buckets,
        starts,
        tuple(tallies),
        state.empty_streak + 1 if outcome is Outcome.EMPTY else 0,
        state.failure_streak + 1 if outcome in failures else 0,
        state.ok_streak + 1 if outcome is Outcome.OK else 0,
        baseline,
        learned_until,
        state.slow_burn_quiet_until,
        histogram.p95(),
        state.alerts,
    )


def _stepped(
    old: tuple[Tally, ...],
    plan: _Plan,
    buckets: tuple[Bucket, ...],
    starts: tuple[int, ...],
    end: int,
    now: float,
    value: str,
    latency: float | None,
) -> list[Tally] | None:
    """Every window's tally moved on by one probe (`value`, `latency`) and the records that
    left it, read in place. None when the tallies are not the plan's (restored, or the rules
    changed)."""
    if len(old) != len(plan.lengths):
        return None
    joining = None if latency is None else window_bucket(latency)
    tallies: list[Tally] = []
    for tally, length, timed_window in zip(old, plan.lengths, plan.timed, strict=True):
        histogram = tally.latencies
        if tally.length != length or (histogram is None) is timed_window:
            return None
        left = leaving(buckets, starts, end, tally.cursor, now - length)
        counts = tally.counts
        if len(left) != 1 or OUTCOME_OF_CODE[left[0][2]] != value:
            # Unless one alike left (most probes of a healthy series), the counts change.
            changed = dict(counts)
            changed[value] = changed.get(value, 0) + 1
            for record in left:
                outcome = OUTCOME_OF_CODE[record[2]]
                remaining = changed[outcome] - 1
                if remaining:
                    changed[outcome] = remaining
                else:
                    del changed[outcome]
            counts = _shared(changed)
        if histogram is not None:
            # NaN (no latency) is unequal to itself.
            out = [window_bucket(r[1]) for r in left if r[1] == r[1]]
            if joining is None:
                if out:
                    histogram = histogram.moved((), out)
            elif len(out) != 1 or out[0] != joining:
                histogram = histogram.moved((joining,), out)
        moved = (length, tally.cursor + len(left), tally.probes + 1 - len(left), counts, histogram)
        tallies.append(_new_tuple(Tally, moved))  # Tally(*moved), in C
    return tallies


def _rebuilt(
    state: SeriesState,
    plan: _Plan,
    buckets: tuple[Bucket, ...],
    starts: tuple[int, ...],
    end: int,
    now: float,
    sample: Sample,
) -> list[Tally]:
    """The plan's tallies counted again from every remembered sample and `sample`."""
    head = state.head
    joined = (*state.since(head), sample)
    tallies: list[Tally] = []
    for length, timed_window in zip(plan.lengths, plan.timed, strict=True):
        tally = Tally(length, head, latencies=WindowHistogram() if timed_window else None)
        left = _leaving(buckets, starts, end, head, now - length)
        tallies.append(_tallied(tally, joined, left))
    return tallies


def _leaving(
    buckets: tuple[Bucket, ...],
    starts: tuple[int, ...],
    end: int,
    cursor: int,
    since: float,
) -> list[Sample]:
    """The samples from sequence number `cursor` on that are no longer after `since`: those
    leaving a window (usually none or one)."""
    left: list[Sample] = []
    if cursor >= end:
        return left
    at = bisect.bisect_right(starts, cursor) - 1
    offset = cursor - starts[at]
    for bucket in buckets[at:]:
        for index in range(offset, len(bucket)):
            if bucket.at(index) > since:  # read in place: most probes, nothing leaves
                return left
            left.append(bucket[index])
        offset = 0
    return left


def _tallied(tally: Tally, joined: tuple[Sample, ...], left: list[Sample]) -> Tally:
    counts = tally.counts
    latencies = tally.latencies
    if len(joined) == 1 and len(left) == 1 and joined[0].outcome == left[0].outcome:
        pass  # one in, one alike out: the counts stay (most probes of a healthy series)
    elif joined or left:
        changed = dict(counts)
        for sample in joined:
            changed[sample.outcome] = changed.get(sample.outcome, 0) + 1
        for sample in left:
            remaining = changed[sample.outcome] - 1
            if remaining:
                changed[sample.outcome] = remaining
            else:
                del changed[sample.outcome]
        counts = _shared(changed)
    if latencies is not None and (joined or left):
        joining = [window_bucket(s.latency) for s in joined if s.latency is not None]
        leaving = [window_bucket(s.latency) for s in left if s.latency is not None]
        if joining != leaving:
            latencies = latencies.moved(joining, leaving)
    return Tally(
        tally.length,
        tally.cursor + len(left),
        tally.probes + len(joined) - len(left),
        counts,
        latencies,
    )


# Count mappings are never mutated, and most series of a fleet hold one of a few ({"ok": 15}
# for a healthy 60 s series' 15-minute window): each distinct one is kept once (~200 bytes
# a window of every series otherwise). Bounded: cleared when full, as _PLANS is.
_SHARED_COUNTS: dict[tuple[tuple[str, int], ...], Mapping[str, int]] = {}


def _shared(counts: dict[str, int]) -> Mapping[str, int]:
    key = tuple(sorted(counts.items()))
    known = _SHARED_COUNTS.get(key)
    if known is None:
        if len(_SHARED_COUNTS) >= 65_536:
            _SHARED_COUNTS.clear()
        known = _SHARED_COUNTS[key] = counts
    return known


def _window(state: SeriesState, length: float) -> Tally:
    """The tally of a window the rules read (every one is kept: _plan)."""
    tally = state.tally(length)
    assert tally is not None, f"no tally for a {length} s window"
    return tally


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}ms"


def baseline_p95(state: SeriesState, rules: RuleSet, now: float) -> float | None:
    """The learned baseline p95, or the configured seed until enough samples are learned."""
    drift = rules.latency_drift
    if drift is None:
        return None
    if state.baseline.weight >= drift.baseline_min_samples:
        return state.baseline.quantile(0.95)
    return drift.baseline


def _parent_note(parent: Parent | None, *, latency: bool = False) -> tuple[str, dict[str, Any]]:
    if parent is None or parent.state.last is None:
        return "", {}
    last = parent.state.last
    firing = parent.state.firing()
    # Healthy: answering now. Two good probes in a row count even while the parent's own
    # alert has yet to resolve (it lags recovery on purpose).
    healthy = last.outcome == Outcome.OK and (not firing or parent.state.ok_streak >= 2)
    if latency:
        # Answering is not enough to blame the hop for slowness: the parent must not be slow
        # itself (its own drift pending or firing means everything slowed down).
        healthy = healthy and not any(
            rule in parent.state.alerts for rule in ("latency_drift", "latency_slo")
        )
    details: dict[str, Any] = {"parent_check": parent.check, "parent_healthy": healthy}
    if not healthy:
        return "", details
    if latency:
        return (
            f"; {parent.check} latency is normal for this tenant, so the hop from the API to "
            f"this check's backend is the likely cause",
            details,
        )
    return (
        f"; {parent.check} is healthy for this tenant, so the hop from the API to this "
        f"check's backend is the likely cause",
        details,
    )


def _credential(result: ProbeResult, state: SeriesState) -> str:
    """Whose credential the latest refusal was: this probe's, or what the alert already says."""
    if result.credential:
        return result.credential
    alert = state.alerts.get("auth_errors")
    return str(alert.details.get("credential", CREDENTIAL_NONE)) if alert else CREDENTIAL_NONE


_AUTH = Outcome.AUTH_ERROR.value
_EMPTY = Outcome.EMPTY.value


def _trailing(state: SeriesState, outcome: str, enough: int) -> bool:
    """Whether at least `enough` of the latest remembered samples in a row ended in
    `outcome` (reads at most `enough` of them)."""
    count, seq = 0, state.end
    head = state.head
    for bucket in reversed(state.buckets):
        for index in range(len(bucket) - 1, -1, -1):
            seq -= 1
            if count >= enough:
                return True
            if seq < head or bucket.outcome(index) != outcome:
                return False
            count += 1
    return count >= enough


def _auth_errors(
    state: SeriesState, rule: AuthErrorsRule, now: float, tenant: str, check: str, scope: str
) -> Verdict:
    window = _window(state, rule.window)
    probes, refused = window.probes, window.count(_AUTH)
    share = refused / probes if probes else 0.0
    by_share = probes >= rule.min_probes and share >= rule.share
    active = _trailing(state, _AUTH, rule.failure_threshold) or by_share
    if not active and "auth_errors" not in state.alerts:
        return NOTHING
    clear = state.ok_streak >= rule.success_threshold and share < rule.share

    def describe() -> Description:
        samples = state.since(window.cursor)
        last_reason = next((s.reason for s in reversed(samples) if s.outcome == _AUTH), "")
        if scope == CREDENTIAL_TENANT:
            # One tenant's key: the platform answers, it refuses this tenant's credential.
            summary = (
                f"{check} rejects the credentials of {tenant_named(tenant)}: {refused} of "
                f"{probes} probes in the last {format_duration(rule.window)} "
                f"({last_reason}); check the tenant's key, not the platform"
            )
        elif scope == CREDENTIAL_EITHER:
            # The tenant's key and recmon's credential both went: one tenant alone refused
            # says the key more likely (recmon's would be refused for every tenant).
            summary = (
                f"{check} rejects the credentials sent for {tenant_named(tenant)}: {refused} "
                f"of {probes} probes in the last {format_duration(rule.window)} "
                f"({last_reason}); check the tenant's key first — if every tenant is refused, "
                "recmon's own"
            )
        else:
            summary = (
                f"probe credentials rejected: {check} refuses recmon's credentials for "
                f"{tenant_named(tenant)} ({last_reason}); renew recmon's credentials, not a "
                "platform outage"
            )
        details = {
            "refused_probes": refused,
            "probes": probes,
            "window_s": rule.window,
            "credential": scope,
            "last_reason": last_reason,
        }
        return summary, details

    return Verdict(active, clear, describe)


def _empty_results(
    state: SeriesState,
    rule: EmptyResultsRule,
    now: float,
    tenant: str,
    check: str,
    parent: Parent | None,
) -> Verdict:
    window = _window(state, rule.window)
    probes, empty = window.probes, window.count(_EMPTY)
    share = empty / probes if probes else 0.0
    by_share = probes >= rule.min_probes and share >= rule.share
    active = state.empty_streak >= rule.failure_threshold or by_share
    if not active and "empty_results" not in state.alerts:
        return NOTHING
    clear = state.ok_streak >= rule.success_threshold and share < rule.share

    def describe() -> Description:
        note, parent_details = _parent_note(parent)
        summary = (
            f"{check} returned no items for {tenant_named(tenant)}: {empty} of {probes} probes "
            f"in the last {format_duration(rule.window)}{note}"
        )
        details = {
            "empty_probes": empty,
            "probes": probes,
            "window_s": rule.window,
            "consecutive_empty": state.empty_streak,
            **parent_details,
        }
        return summary, details

    return Verdict(active, clear, describe)


def _failures(
    state: SeriesState, rule: FailuresRule, now: float, tenant: str, check: str
) -> Verdict:
    bad_outcomes = _values(tuple(rule.outcomes))
    window = _window(state, rule.window)
    probes = window.probes
    failed = sum(n for outcome, n in window.counts.items() if outcome in bad_outcomes)
    share = failed / probes if probes else 0.0
    by_share = probes >= rule.min_probes and share >= rule.share
    active = state.failure_streak >= rule.failure_threshold or by_share
    if not active and "failures" not in state.alerts:
        return NOTHING
    clear = state.ok_streak >= rule.success_threshold and share < rule.share

    def describe() -> Description:
        failing = [s for s in state.since(window.cursor) if s.outcome in bad_outcomes]
        outcomes = Counter(s.outcome for s in failing)
        top = outcomes.most_common(1)[0][0] if outcomes else "none"
        last_reason = failing[-1].reason if failing else ""
        summary = (
            f"{check} failing for {tenant_named(tenant)}: {failed} of {probes} probes failed in "
            f"the last {format_duration(rule.window)} (mostly {top}: {last_reason})"
        )
        details = {
            "failed_probes": failed,
            "probes": probes,
            "window_s": rule.window,
            "outcomes": dict(outcomes),
            "sample_errors": [f"{s.outcome}: {s.reason}" for s in failing[-3:]],
        }
        return summary, details

    return Verdict(active, clear, describe)


def _latency_drift(
    state: SeriesState,
    rule: LatencyDriftRule,
    tenant: str,
    check: str,
    parent: Parent | None,
) -> Verdict:
    learned = state.baseline
    # Its p95 field and total, as quantile(0.95) and weight read them (every probe).
    baseline = learned.p95 if learned.total >= rule.baseline_min_samples else rule.baseline
    latencies = _window(state, rule.window).latencies
    assert latencies is not None
    if baseline is None or latencies.total < rule.min_samples:
        # Not enough evidence either way: an active alert neither fires nor resolves.
        return NOTHING
    bound = latencies.p95_lower_bound(rule.confidence)
    assert bound is not None
    threshold = max(baseline * rule.ratio, baseline + rule.min_delta)
    active = bound > threshold
    if not active and "latency_drift" not in state.alerts:
        return NOTHING

    def describe() -> Description:
        p95 = latencies.p95()  # read for the page only (the bound decides)
        assert p95 is not None
        note, parent_details = _parent_note(parent, latency=True)
        summary = (
            f"{check} p95 latency {_ms(p95)} is {p95 / baseline:.1f}x its baseline "
            f"{_ms(baseline)} for {tenant_named(tenant)}{note}"
        )
        details = {
            "p95_s": round(p95, 6),
            "p95_lower_bound_s": round(bound, 6),
            "baseline_p95_s": round(baseline, 6),
            "ratio": round(p95 / baseline, 3),
            "threshold_s": round(threshold, 6),
            "samples": latencies.total,
            **parent_details,
        }
        return summary, details

    return Verdict(active, not active, describe)


def _latency_slo(state: SeriesState, rule: LatencySloRule, tenant: str, check: str) -> Verdict:
    latencies = _window(state, rule.window).latencies
    assert latencies is not None
    if rule.p95 is None or latencies.total < rule.min_samples:
        return NOTHING  # neither fires nor resolves, as for drift
    bound = latencies.p95_lower_bound(rule.confidence)
    assert bound is not None
    active = bound > rule.p95
    if not active and "latency_slo" not in state.alerts:
        return NOTHING
    objective = rule.p95

    def describe() -> Description:
        p95 = latencies.p95()  # read for the page only (the bound decides)
        assert p95 is not None
        summary = (
            f"{check} p95 latency {_ms(p95)} is {'above' if p95 > objective else 'within'} "
            f"the {_ms(objective)} objective for "
            f"{tenant_named(tenant)}"
        )
        details = {
            "p95_s": round(p95, 6),
            "p95_lower_bound_s": round(bound, 6),
            "objective_s": objective,
            "samples": latencies.total,
        }
        return summary, details

    return Verdict(active, not active, describe)


def _error_rates(
    state: SeriesState, rule: ErrorRateRule, now: float, tenant: str, check: str
) -> dict[Outcome, Verdict]:
    window = _window(state, rule.window)
    probes, counts = window.probes, window.counts  # keyed by the outcome's string value
    verdicts: dict[Outcome, Verdict] = {}
    tracked = _values(tuple(rule.outcomes))
    # Evaluate every tracked outcome that is present now or has an alert to resolve.
    present = {_OUTCOME[value] for value in counts if value in tracked}
    if state.alerts:
        present |= {
            Outcome(k.partition(":")[2]) for k in state.alerts if k.startswith("error_rate:")
        }
    for outcome in present:
        count = counts.get(_VALUE[outcome], 0)
        share = count / probes if probes else 0.0
        active = (
            probes >= rule.min_probes
            and share >= rule.threshold
            and wilson_lower(count, probes, rule.confidence) >= rule.threshold / 2
        )
        if not active and _RATE_IDS[outcome] not in state.alerts:
            continue  # nothing wrong, nothing remembered: what _slow_burn would skip
        clear = share < rule.threshold / 2
        verdicts[outcome] = Verdict(
            active,
            clear,
            _rate_description(outcome, share, counts, probes, rule, tenant, check),
        )
    return verdicts


@functools.lru_cache(maxsize=64)
def _values(outcomes: tuple[Outcome, ...]) -> frozenset[str]:
    return frozenset(_VALUE[o] for o in outcomes)


def _rate_description(
    outcome: Outcome,
    share: float,
    counts: Mapping[str, int],
    probes: int,
    rule: ErrorRateRule,
    tenant: str,
    check: str,
) -> Callable[[], Description]:
    def describe() -> Description:
        summary = (
            f"{check} {outcome.value} rate {share:.0%} over the last "
            f"{format_duration(rule.window)} for {tenant_named(tenant)} "
            f"({counts.get(outcome.value, 0)} of {probes} probes)"
        )
        details = {
            "outcome": outcome.value,
            "share": round(share, 4),
            "probes": probes,
            "window_s": rule.window,
        }
        return summary, details

    return describe
