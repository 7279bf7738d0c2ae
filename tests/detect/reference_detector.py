"""The detector as it was before it kept running tallies (recmon at commit 4856ad1): a
verbatim copy of monitor/detect/detector.py, SeriesState's sample-tuple form from
monitor/detect/series.py and its encoding from monitor/detect/codec.py, kept as the reference
the incremental detector is checked against (tests/detect/test_differential.py) and as the
writer of today's state-file fixture (tests/state). Not used by recmon itself; do not change
its logic — it is the specification the new detector must agree with.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
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
from monitor.core.results import CREDENTIAL_NONE, CREDENTIAL_TENANT, Outcome, ProbeResult
from monitor.core.tenancy import tenant_named
from monitor.detect.codec import alert_to_json
from monitor.detect.lifecycle import (
    IMMEDIATE,
    Description,
    Subject,
    Thresholds,
    Verdict,
    advance,
)
from monitor.detect.rules import RuleSet, learning_phase
from monitor.detect.series import AlertEvent, AlertState, AlertStatus, Sample
from monitor.detect.stats import (
    DecayingHistogram,
    p95_lower_bound,
    p95_nearest_rank,
    wilson_lower,
)


@dataclass(frozen=True, slots=True)
class SeriesState:
    samples: tuple[Sample, ...] = ()
    empty_streak: int = 0
    failure_streak: int = 0
    ok_streak: int = 0
    baseline: DecayingHistogram = DecayingHistogram()
    # Samples join the baseline only once they leave the short window, and only if drift was
    # not suspected meanwhile: a slowdown is judged before it can become the new normal.
    learned_until: float = 0.0
    # The slow-burn error-rate rule stays quiet until the outage a faster rule paged for has
    # left its (longer) window, so recovering from one outage does not page a second time.
    slow_burn_quiet_until: float = 0.0
    # p95 of the short window as of the last probe (the recmon_latency_p95_seconds gauge).
    window_p95: float | None = None
    # rule id ("empty_results", "error_rate:timeout", ...) → state; absent = inactive.
    alerts: Mapping[str, AlertState] = field(default_factory=dict)

    @property
    def last(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def firing(self) -> dict[str, AlertState]:
        return {k: a for k, a in self.alerts.items() if a.status is AlertStatus.FIRING}

    def latencies(self, since: float) -> list[float]:
        """Trusted ok latencies of samples after `since` (a window is (now - length, now])."""
        return [s.latency for s in self.samples if s.at > since and s.latency is not None]

    def window(self, since: float) -> list[Sample]:
        return [s for s in self.samples if s.at > since]


_MAX_REASON = 200
# An enum member's .value goes through a descriptor; a probe asked for it a dozen times.
_VALUE: dict[Outcome, str] = {o: o.value for o in Outcome}
_TIMED = frozenset((Outcome.OK, Outcome.EMPTY))


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
    state, latencies = _record(state, result, now, rules)
    alerts = dict(state.alerts)
    subject = Subject(result.tenant, result.check)
    events: list[AlertEvent] = []
    for rule_id, verdict, severity, thresholds in _fast_verdicts(
        state, latencies, now, rules, subject, parent, _credential(result, state)
    ):
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
    quiet_until = _slow_burn(state, alerts, now, rules, subject, events)
    return _with(state, alerts=alerts, slow_burn_quiet_until=quiet_until), events


RuleReading = tuple[str, Verdict, Severity, Thresholds]


def _fast_verdicts(
    state: SeriesState,
    latencies: list[float],
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
    if (drift := rules.latency_drift) is not None:
        verdict = _latency_drift(state, latencies, drift, tenant, check, parent)
        yield "latency_drift", verdict, drift.severity, Thresholds(drift.for_, drift.resolve_for)
    if (slo := rules.latency_slo) is not None:
        verdict = _latency_slo(state, slo, now, tenant, check)
        yield "latency_slo", verdict, slo.severity, Thresholds(slo.for_, slo.resolve_for)


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
        rule_id = f"error_rate:{outcome.value}"
        if now < quiet_until and rule_id not in alerts:
            continue
        event = advance(alerts, rule_id, verdict, severity=rate.severity, now=now, subject=subject)
        if event is not None:
            events.append(event)
    return quiet_until


def _with(state: SeriesState, **changes: Any) -> SeriesState:
    """dataclasses.replace, without its per-call introspection (this runs for every probe)."""
    fields: dict[str, Any] = {
        "samples": state.samples,
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
    return SeriesState(**fields)


def _record(
    state: SeriesState, result: ProbeResult, now: float, rules: RuleSet
) -> tuple[SeriesState, list[float]]:
    """The state with this probe recorded, and the short window's latencies, sorted (the p95
    gauge and both latency rules read them)."""
    # An empty answer is still a complete answer: its latency counts (in the incident, the
    # broken hop made recommendations both empty and slow).
    outcome = result.outcome
    timed = outcome in _TIMED
    latency = result.duration_s if timed and result.latency_trusted else None
    sample = Sample(now, _VALUE[outcome], latency, result.reason[:_MAX_REASON])
    horizon = now - rules.longest_window
    samples = (*(s for s in state.samples if s.at > horizon), sample)
    failures = rules.failures.outcomes if rules.failures is not None else ()
    baseline, learned_until = state.baseline, state.learned_until
    drift = rules.latency_drift
    if drift is not None:
        # Frozen while drift is pending or firing, so the drift never becomes the new normal.
        suspected = state.alerts.get("latency_drift") is not None
        cutoff = now - drift.window
        # Learned rules.learn_every of the series' time at a time, up to its own point in it
        # (the same floats as adding each in turn): what left the drift window, of what the
        # series remembered until now.
        if suspected:
            learned_until = max(learned_until, cutoff)
        elif cutoff - learned_until >= rules.learn_every:
            every = rules.learn_every
            phase = learning_phase(result.tenant, result.check)
            edge = cutoff - (cutoff - phase) % every if every else cutoff
            for old in (*state.samples, sample):
                if learned_until < old.at <= edge and old.latency is not None:
                    baseline = baseline.add(old.latency, old.at, drift.baseline_half_life)
            learned_until = max(learned_until, edge)
    since = now - (drift.window if drift is not None else rules.longest_window)
    latencies = sorted(s.latency for s in samples if s.at > since and s.latency is not None)
    recorded = _with(
        state,
        samples=samples,
        empty_streak=state.empty_streak + 1 if result.outcome is Outcome.EMPTY else 0,
        failure_streak=state.failure_streak + 1 if result.outcome in failures else 0,
        ok_streak=state.ok_streak + 1 if result.ok else 0,
        baseline=baseline,
        learned_until=learned_until,
        window_p95=p95_nearest_rank(latencies),
    )
    return recorded, latencies


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


def _trailing(samples: tuple[Sample, ...], outcome: str) -> int:
    """How many of the latest samples in a row ended in `outcome`."""
    count = 0
    for sample in reversed(samples):
        if sample.outcome != outcome:
            break
        count += 1
    return count


def _auth_errors(
    state: SeriesState, rule: AuthErrorsRule, now: float, tenant: str, check: str, scope: str
) -> Verdict:
    samples, refused = _share_rule(state, now, rule.window, lambda s: s.outcome == _AUTH)
    share = refused / len(samples) if samples else 0.0
    by_share = len(samples) >= rule.min_probes and share >= rule.share
    active = _trailing(state.samples, _AUTH) >= rule.failure_threshold or by_share
    clear = state.ok_streak >= rule.success_threshold and share < rule.share

    def describe() -> Description:
        last_reason = next((s.reason for s in reversed(samples) if s.outcome == _AUTH), "")
        if scope == CREDENTIAL_TENANT:
            # One tenant's key: the platform answers, it refuses this tenant's credential.
            summary = (
                f"{check} rejects the credentials of {tenant_named(tenant)}: {refused} of "
                f"{len(samples)} probes in the last {format_duration(rule.window)} "
                f"({last_reason}); check the tenant's key, not the platform"
            )
        else:
            summary = (
                f"probe credentials rejected: {check} refuses recmon's credentials for tenant "
                f"{tenant} ({last_reason}); renew recmon's credentials, not a platform outage"
            )
        details = {
            "refused_probes": refused,
            "probes": len(samples),
            "window_s": rule.window,
            "credential": scope,
            "last_reason": last_reason,
        }
        return summary, details

    return Verdict(active, clear, describe)


def _share_rule(
    state: SeriesState,
    now: float,
    window: float,
    is_bad: Callable[[Sample], bool],
) -> tuple[list[Sample], int]:
    samples = state.window(now - window)
    return samples, sum(1 for s in samples if is_bad(s))


def _empty_results(
    state: SeriesState,
    rule: EmptyResultsRule,
    now: float,
    tenant: str,
    check: str,
    parent: Parent | None,
) -> Verdict:
    samples, empty = _share_rule(state, now, rule.window, lambda s: s.outcome == Outcome.EMPTY)
    share = empty / len(samples) if samples else 0.0
    by_share = len(samples) >= rule.min_probes and share >= rule.share
    active = state.empty_streak >= rule.failure_threshold or by_share
    clear = state.ok_streak >= rule.success_threshold and share < rule.share

    def describe() -> Description:
        note, parent_details = _parent_note(parent)
        summary = (
            f"{check} returned no items for {tenant_named(tenant)}: {empty} of "
            f"{len(samples)} probes in the last {format_duration(rule.window)}{note}"
        )
        details = {
            "empty_probes": empty,
            "probes": len(samples),
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
    samples, failed = _share_rule(state, now, rule.window, lambda s: s.outcome in bad_outcomes)
    share = failed / len(samples) if samples else 0.0
    by_share = len(samples) >= rule.min_probes and share >= rule.share
    active = state.failure_streak >= rule.failure_threshold or by_share
    clear = state.ok_streak >= rule.success_threshold and share < rule.share

    def describe() -> Description:
        failing = [s for s in samples if s.outcome in bad_outcomes]
        outcomes = Counter(s.outcome for s in failing)
        top = outcomes.most_common(1)[0][0] if outcomes else "none"
        last_reason = failing[-1].reason if failing else ""
        summary = (
            f"{check} failing for {tenant_named(tenant)}: {failed} of {len(samples)} probes "
            f"failed in the last {format_duration(rule.window)} (mostly {top}: {last_reason})"
        )
        details = {
            "failed_probes": failed,
            "probes": len(samples),
            "window_s": rule.window,
            "outcomes": dict(outcomes),
            "sample_errors": [f"{s.outcome}: {s.reason}" for s in failing[-3:]],
        }
        return summary, details

    return Verdict(active, clear, describe)


def _latency_drift(
    state: SeriesState,
    latencies: list[float],
    rule: LatencyDriftRule,
    tenant: str,
    check: str,
    parent: Parent | None,
) -> Verdict:
    baseline = (
        state.baseline.quantile(0.95)
        if state.baseline.weight >= rule.baseline_min_samples
        else rule.baseline
    )
    if baseline is None or len(latencies) < rule.min_samples:
        # Not enough evidence either way: an active alert neither fires nor resolves.
        return Verdict(False, False)
    bound = p95_lower_bound(latencies, rule.confidence)
    p95 = p95_nearest_rank(latencies)
    assert bound is not None and p95 is not None
    threshold = max(baseline * rule.ratio, baseline + rule.min_delta)
    active = bound > threshold

    def describe() -> Description:
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
            "samples": len(latencies),
            **parent_details,
        }
        return summary, details

    return Verdict(active, not active, describe)


def _latency_slo(
    state: SeriesState, rule: LatencySloRule, now: float, tenant: str, check: str
) -> Verdict:
    latencies = state.latencies(now - rule.window)
    if rule.p95 is None or len(latencies) < rule.min_samples:
        return Verdict(False, False)
    bound = p95_lower_bound(latencies, rule.confidence)
    p95 = p95_nearest_rank(latencies)
    assert bound is not None and p95 is not None
    active = bound > rule.p95
    objective = rule.p95

    def describe() -> Description:
        summary = (
            f"{check} p95 latency {_ms(p95)} is above the {_ms(objective)} objective for "
            f"{tenant_named(tenant)}"
        )
        details = {
            "p95_s": round(p95, 6),
            "p95_lower_bound_s": round(bound, 6),
            "objective_s": objective,
            "samples": len(latencies),
        }
        return summary, details

    return Verdict(active, not active, describe)


def _error_rates(
    state: SeriesState, rule: ErrorRateRule, now: float, tenant: str, check: str
) -> dict[Outcome, Verdict]:
    samples = state.window(now - rule.window)
    counts = Counter(s.outcome for s in samples)  # keyed by the outcome's string value
    verdicts: dict[Outcome, Verdict] = {}
    tracked = _values(tuple(rule.outcomes))
    # Evaluate every tracked outcome that is present now or has an alert to resolve.
    present = {Outcome(value) for value in counts if value in tracked}
    if state.alerts:
        present |= {
            Outcome(k.partition(":")[2]) for k in state.alerts if k.startswith("error_rate:")
        }
    for outcome in present:
        count = counts.get(_VALUE[outcome], 0)
        share = count / len(samples) if samples else 0.0
        active = (
            len(samples) >= rule.min_probes
            and share >= rule.threshold
            and wilson_lower(count, len(samples), rule.confidence) >= rule.threshold / 2
        )
        clear = share < rule.threshold / 2
        verdicts[outcome] = Verdict(
            active,
            clear,
            _rate_description(outcome, share, counts, len(samples), rule, tenant, check),
        )
    return verdicts


@functools.lru_cache(maxsize=64)
def _values(outcomes: tuple[Outcome, ...]) -> frozenset[str]:
    return frozenset(_VALUE[o] for o in outcomes)


def _rate_description(
    outcome: Outcome,
    share: float,
    counts: Counter[str],
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


# The state's encoding (monitor/detect/codec.py at 4856ad1): today's state file.


def series_to_json(state: SeriesState) -> dict[str, Any]:
    """The whole state in one document (series_head_to_json with the samples as "s")."""
    return {"s": [sample_to_json(s) for s in state.samples], **series_head_to_json(state)}


def series_head_to_json(state: SeriesState) -> dict[str, Any]:
    """Everything but the samples, which the state file keeps as rows of their own (a save
    then writes the samples added since the last one, not the window again)."""
    return {**series_core_to_json(state), **baseline_to_json(state)}


def series_core_to_json(state: SeriesState) -> dict[str, Any]:
    """The head without the baseline: a few numbers, and the alerts."""
    return {
        "streaks": [state.empty_streak, state.failure_streak, state.ok_streak],
        "quiet_until": state.slow_burn_quiet_until,
        "p95": state.window_p95,
        "alerts": {k: alert_to_json(a) for k, a in state.alerts.items()},
    }


def baseline_to_json(state: SeriesState) -> dict[str, Any]:
    """The learned baseline and how far it has learned: a pair, written and read together (a
    restored older pair learns again the samples after `learned_until` still in the window).
    Most of a head's bytes, and it changes with every sample learned."""
    return {
        "b": [state.baseline.updated_at, [[i, w] for i, w in state.baseline.buckets]],
        "learned_until": state.learned_until,
    }


def sample_to_json(sample: Sample) -> list[Any]:
    return [sample.at, sample.outcome, sample.latency, sample.reason]
