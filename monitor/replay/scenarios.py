"""Scripted behaviour of a simulated multi-tenant service, and the scenarios recmon replays."""

from __future__ import annotations

from dataclasses import dataclass, field

HOUR = 3600.0
DAY = 86400.0
FLEET = "fleet-wide"


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How one tenant × check answers while a change is in force (healthy by default)."""

    empty: bool = False
    latency_factor: float = 1.0
    status: int | None = None  # answer this HTTP status instead of results
    # Share of requests that land on a backend whose certificate clients reject.
    tls_error_share: float = 0.0
    # A fallback answers: one popular list, whatever the tenant or product (HTTP 200, items).
    fallback: bool = False


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
    # "fleet-wide": the storm's escalation stating its scope, not the storm's own page.
    scope: str = ""


@dataclass(frozen=True, slots=True)
class Noise:
    """What healthy traffic looks like: jitter, lone slow outliers, rare blips, a daily cycle."""

    jitter_sigma: float = 0.12  # lognormal spread of every latency
    outlier_rate: float = 0.003  # share of probes 3-10x slower
    blip_rate: float = 0.0005  # share of probes answering 503
    daily_amplitude: float = 0.25  # latency +25% at the daily peak


@dataclass(frozen=True, slots=True)
class Rotation:
    """Certificates of one host's backends over time: every address serves the old
    certificate until it is rotated (`rotated_at`; absent = never) to the new one."""

    host: str
    addresses: tuple[str, ...]
    old_expires: float  # seconds since the scenario start
    new_expires: float
    rotated_at: dict[str, float]
    interval: float = 300.0


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
    rotation: Rotation | None = None
    # Probes start here (certificate checks run from 0): long scenarios simulate only the
    # hours of HTTP traffic that matter, after a warm-up for baselines.
    http_start: float = 0.0

    def behaviour(self, tenant: str, check: str, at: float) -> Behaviour:
        current = Behaviour()
        for change in self.changes:
            if change.at <= at and change.applies(tenant, check):
                current = change.behaviour
        return current


def incident() -> Scenario:
    """The post-mortem, in order. Day 0: a certificate rotation reaches two of the three
    backends of the API; the third keeps the old certificate. Day 20: the old certificate
    expires and a third of search requests — every tenant's — fail on that backend. Two hours
    later the repair installs the new certificate there but breaks the proxy between the API
    and the recommendations service: recommendations come back empty (HTTP 200, []) for every
    tenant and their latency doubles from 60 to 120 ms, while search is healthy again. The
    proxy is fixed 30 minutes later."""
    expiry = 20 * DAY
    repair = expiry + 2 * HOUR
    proxy_fixed = repair + 0.5 * HOUR
    return Scenario(
        name="incident",
        description="half-finished certificate rotation, expiry, then the broken proxy",
        tenants=50,
        duration=proxy_fixed + HOUR,
        http_start=expiry - 2 * HOUR,
        rotation=Rotation(
            host="api.example.com:443",
            addresses=("10.0.0.1", "10.0.0.2", "10.0.0.3"),
            old_expires=expiry,
            new_expires=expiry + 365 * DAY,
            rotated_at={"10.0.0.1": 0.0, "10.0.0.2": 0.0, "10.0.0.3": repair},
        ),
        changes=(
            Change(expiry, Behaviour(tls_error_share=1 / 3), check="search"),
            Change(repair, Behaviour(), check="search"),
            Change(repair, Behaviour(empty=True, latency_factor=2.0), check="recommendations"),
            Change(proxy_fixed, Behaviour(), check="recommendations"),
        ),
        signals=(
            Signal("rotation left a backend behind", "tls_inconsistent", "tls", 0.0, repair),
            Signal(
                "old certificate expiring",
                "tls_expiring",
                "tls",
                expiry - 14 * DAY,
                expiry - 3 * DAY,
            ),
            Signal(
                "old certificate expiring soon",
                "tls_expiring_soon",
                "tls",
                expiry - 3 * DAY,
                expiry,
            ),
            Signal("expired certificate served", "tls_invalid", "tls", expiry, repair),
            # A third of every tenant's searches fail: one fleet incident says so.
            Signal(
                "search failing (expired cert)", "fleet_failures", "search", expiry, repair, FLEET
            ),
            Signal(
                "recommendations missing", "empty_results", "recommendations", repair, proxy_fixed
            ),
            Signal(
                "  ...all tenants", "empty_results", "recommendations", repair, proxy_fixed, FLEET
            ),
            Signal(
                "recommendations p95 drift", "latency_drift", "recommendations", repair, proxy_fixed
            ),
            Signal(
                "  ...all tenants", "latency_drift", "recommendations", repair, proxy_fixed, FLEET
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
            Signal("  ...all tenants", "latency_drift", "recommendations", start, end, FLEET),
        ),
    )


def fallback() -> Scenario:
    """The incident's second act as the next platform will play it: the proxy between the API
    and the recommendations service breaks, and instead of an empty list a fallback answers
    (one popular list for every product of every tenant, HTTP 200) for 30 minutes."""
    start, end = 2 * HOUR, 2.5 * HOUR
    return Scenario(
        name="fallback",
        description="the proxy breaks and one popular list answers every tenant for 30 min",
        tenants=40,
        duration=4 * HOUR,
        changes=(
            Change(start, Behaviour(fallback=True), check="recommendations"),
            Change(end, Behaviour(), check="recommendations"),
        ),
        signals=(Signal("recommendations a fallback", "fallback", "recommendations", start, end),),
    )


def healthy_week(tenants: int = 10) -> Scenario:
    return Scenario(
        name="healthy-week",
        description="seven days of healthy, noisy traffic: no page expected",
        tenants=tenants,
        duration=7 * DAY,
    )


SCENARIOS = {
    "incident": incident,
    "latency": latency_only,
    "healthy-week": healthy_week,
    "fallback": fallback,
}
