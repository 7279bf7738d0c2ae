"""Scripted behaviour of a simulated multi-tenant service, and the scenarios recmon replays."""

from __future__ import annotations

from dataclasses import dataclass, field

HOUR = 3600.0
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How one tenant × check answers while a change is in force (healthy by default)."""

    empty: bool = False
    latency_factor: float = 1.0
    status: int | None = None  # answer this HTTP status instead of results


@dataclass(frozen=True, slots=True)
class Change:
    """From `at` seconds on, matching tenants and checks behave like this ("*" = all)."""

    at: float
    behaviour: Behaviour
    check: str = "*"
    tenants: str | tuple[str, ...] = "*"

    def applies(self, tenant: str, check: str) -> bool:
        return (self.check in ("*", check)) and (self.tenants == "*" or tenant in self.tenants)


@dataclass(frozen=True, slots=True)
class Signal:
    """A row of the replay's table: which alert should answer which fault."""

    name: str
    rule: str
    check: str
    fault_start: float
    fault_end: float


@dataclass(frozen=True, slots=True)
class Noise:
    """What healthy traffic looks like: jitter, lone slow outliers, rare blips, a daily cycle."""

    jitter_sigma: float = 0.12  # lognormal spread of every latency
    outlier_rate: float = 0.003  # share of probes 3-10x slower
    blip_rate: float = 0.0005  # share of probes answering 503
    daily_amplitude: float = 0.25  # latency +25% at the daily peak


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    tenants: int
    duration: float
    interval: float = 60.0
    base_latency: dict[str, float] = field(
        default_factory=lambda: {"search": 0.040, "recommendations": 0.060}
    )
    noise: Noise = Noise()
    changes: tuple[Change, ...] = ()
    signals: tuple[Signal, ...] = ()

    def behaviour(self, tenant: str, check: str, at: float) -> Behaviour:
        current = Behaviour()
        for change in self.changes:
            if change.at <= at and change.applies(tenant, check):
                current = change.behaviour
        return current


def incident() -> Scenario:
    """The post-mortem: the proxy between the API and the recommendations service broke, so
    recommendations came back empty (HTTP 200, []) for every tenant and their latency doubled
    from 60 ms to 120 ms; search stayed healthy. Repaired 30 minutes later."""
    broken = 2 * HOUR
    repaired = 2.5 * HOUR
    return Scenario(
        name="incident",
        description="recommendations empty for every tenant and p95 60 → 120 ms, then repaired",
        tenants=50,
        duration=3.5 * HOUR,
        changes=(
            Change(broken, Behaviour(empty=True, latency_factor=2.0), check="recommendations"),
            Change(repaired, Behaviour(), check="recommendations"),
        ),
        signals=(
            Signal("recommendations missing", "empty_results", "recommendations", broken, repaired),
            Signal(
                "recommendations p95 drift", "latency_drift", "recommendations", broken, repaired
            ),
        ),
    )


def latency_only() -> Scenario:
    """Latency doubles for recommendations while results stay correct."""
    start, end = 2 * HOUR, 3 * HOUR
    return Scenario(
        name="latency",
        description="recommendations p95 60 → 120 ms for every tenant for an hour",
        tenants=20,
        duration=4 * HOUR,
        changes=(
            Change(start, Behaviour(latency_factor=2.0), check="recommendations"),
            Change(end, Behaviour(), check="recommendations"),
        ),
        signals=(
            Signal("recommendations p95 drift", "latency_drift", "recommendations", start, end),
        ),
    )


def healthy_week(tenants: int = 10) -> Scenario:
    return Scenario(
        name="healthy-week",
        description="seven days of healthy, noisy traffic: no page expected",
        tenants=tenants,
        duration=7 * DAY,
    )


SCENARIOS = {"incident": incident, "latency": latency_only, "healthy-week": healthy_week}
