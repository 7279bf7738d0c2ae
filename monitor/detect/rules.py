"""Rule parameters for one tenant × check: the global rules with matching overrides applied."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, TypeVar

from monitor.config.model import (
    AlertOverride,
    AlertsSpec,
    AuthErrorsRule,
    EmptyResultsRule,
    ErrorRateRule,
    FailuresRule,
    LatencyDriftRule,
    LatencySloRule,
    Model,
)

M = TypeVar("M", bound=Model)


# The learned baseline takes in the samples that left the drift window five minutes of them
# at a time, not one a probe: learning one was ~5 us of every probe of a fleet once its
# windows were full (issue 22), and a baseline whose half-life is hours is no different for
# taking them in a few minutes later. Less when the series remembers less past its drift
# window (RuleSet.learn_every), so none leaves before it is learned.
LEARN_EVERY_S = 300.0


def learning_phase(tenant: str, check: str) -> float:
    """Where in every LEARN_EVERY_S a series' baseline learns (seconds, from its names): a
    fleet whose series started together learns a fifth of them in each minute, not all of
    them in every fifth minute."""
    return float(zlib.crc32(f"{tenant}/{check}".encode()) % int(LEARN_EVERY_S))


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules that apply to one series; None means the rule is off for it."""

    empty_results: EmptyResultsRule | None
    failures: FailuresRule | None
    error_rate: ErrorRateRule | None
    latency_drift: LatencyDriftRule | None
    latency_slo: LatencySloRule | None
    auth_errors: AuthErrorsRule | None = None

    # The longest of their windows: how far back a series must remember (every probe asks).
    longest_window: float = field(init=False)
    # How much of the series' time the baseline learns at once: LEARN_EVERY_S, or what the
    # longest window remembers past the drift window if that is less (0: every probe).
    learn_every: float = field(init=False)

    def __post_init__(self) -> None:
        windows = [
            rule.window
            for rule in (
                self.empty_results,
                self.failures,
                self.error_rate,
                self.latency_drift,
                self.latency_slo,
                self.auth_errors,
            )
            if rule is not None
        ]
        longest = max(windows, default=300.0)
        object.__setattr__(self, "longest_window", longest)
        drift = self.latency_drift
        slack = longest - drift.window if drift is not None else 0.0
        object.__setattr__(self, "learn_every", min(LEARN_EVERY_S, slack))


def _matches(patterns: list[str] | None, value: str) -> bool:
    return patterns is None or any(fnmatchcase(value, p) for p in patterns)


def _merge(base: M, partial: Model | None) -> M:
    if partial is None:
        return base
    changes: dict[str, Any] = {k: v for k, v in partial if v is not None}
    return base.model_copy(update=changes)


class Rulebook:
    """Resolves (and caches) the RuleSet of each tenant × check."""

    def __init__(self, spec: AlertsSpec, counting_checks: frozenset[str]) -> None:
        self.spec = spec
        # The empty-results rule needs a check that counts items.
        self.counting_checks = counting_checks
        self._cache: dict[tuple[str, str], RuleSet] = {}
        self._by_overrides: dict[tuple[int, ...], RuleSet] = {}
        # No override picks tenants: a check's rules are every tenant's, cached by check
        # (an entry a series was ~100 bytes a series for the same few RuleSets).
        self._by_check: dict[str, RuleSet] | None = (
            {} if all(o.tenants is None for o in spec.overrides) else None
        )

    def for_series(self, tenant: str, check: str) -> RuleSet:
        if self._by_check is not None:
            rules = self._by_check.get(check)
            if rules is None:
                rules = self._by_check[check] = self._rules_of(tenant, check)
            return rules
        key = (tenant, check)
        rules = self._cache.get(key)
        if rules is None:
            rules = self._cache[key] = self._rules_of(tenant, check)
        return rules

    def _rules_of(self, tenant: str, check: str) -> RuleSet:
        matching = tuple(
            i
            for i, o in enumerate(self.spec.overrides)
            if _matches(o.tenants, tenant) and _matches(o.checks, check)
        )
        # Most tenants share a handful of override combinations: share their RuleSets too.
        signature = (*matching, -1 if check in self.counting_checks else -2)
        rules = self._by_overrides.get(signature)
        if rules is None:
            rules = self._resolve([self.spec.overrides[i] for i in matching], check)
            self._by_overrides[signature] = rules
        return rules

    def forget_tenant(self, tenant: str) -> None:
        for key in [k for k in self._cache if k[0] == tenant]:
            del self._cache[key]

    def _resolve(self, overrides: list[AlertOverride], check: str) -> RuleSet:
        spec = self.spec
        empty, failures, rate = spec.empty_results, spec.failures, spec.error_rate
        drift, slo, auth = spec.latency_drift, spec.latency_slo, spec.auth_errors
        for override in overrides:
            auth = _merge(auth, override.auth_errors)
            empty = _merge(empty, override.empty_results)
            failures = _merge(failures, override.failures)
            rate = _merge(rate, override.error_rate)
            drift = _merge(drift, override.latency_drift)
            slo = _merge(slo, override.latency_slo)
        return RuleSet(
            empty_results=empty if empty.enabled and check in self.counting_checks else None,
            failures=failures if failures.enabled else None,
            error_rate=rate if rate.enabled else None,
            latency_drift=drift if drift.enabled else None,
            latency_slo=slo if slo.p95 is not None else None,
            auth_errors=auth if auth.enabled else None,
        )
