from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor.core.results import Outcome, ProbeResult
from monitor.telemetry.metrics import (
    ALL_TENANTS,
    PER_TENANT_HISTOGRAMS_UP_TO,
    Metrics,
    latency_buckets,
)
from monitor.telemetry.push import pushable


def result(
    tenant: str,
    outcome: Outcome = Outcome.OK,
    *,
    check: str = "search",
    items: int | None = 3,
    trusted: bool = True,
) -> ProbeResult:
    return ProbeResult(
        tenant, check, outcome, 0.061, 0.0, status=200, items=items, latency_trusted=trusted
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_top_finite_bucket_is_above_the_largest_timeout() -> None:
    assert latency_buckets(5.0)[-1] == 10.0
    assert latency_buckets(4.0)[-1] == 5.0
    assert latency_buckets(30.0)[-1] == 60.0
    assert list(latency_buckets(5.0)) == sorted(latency_buckets(5.0))


def test_record_sets_counter_gauges_and_histogram() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.record(result("acme"))
    metrics.record(result("acme", Outcome.EMPTY, items=0))
    assert sample(metrics, "recmon_probes_total", tenant="acme", check="search", outcome="ok") == 1
    assert (
        sample(metrics, "recmon_probes_total", tenant="acme", check="search", outcome="empty") == 1
    )
    assert sample(metrics, "recmon_probe_success", tenant="acme", check="search") == 0
    assert sample(metrics, "recmon_probe_items", tenant="acme", check="search") == 0
    assert (
        sample(metrics, "recmon_probe_duration_seconds_count", tenant="acme", check="search") == 2
    )
    assert (
        sample(
            metrics,
            "recmon_probe_duration_seconds_bucket",
            tenant="acme",
            check="search",
            le="0.075",
        )
        == 2
    )


def test_a_checks_untrusted_count_is_exported_at_zero_once_it_has_a_latency() -> None:
    """Every latency trusted: the count reads 0, so its ratio in Prometheus reads 0 too (the
    series absent, the recording rule had no data: a dashboard panel empty on a healthy
    monitor)."""
    metrics = Metrics(CollectorRegistry())
    assert sample(metrics, "recmon_latency_untrusted_total", check="search") is None
    metrics.record(result("acme"))
    assert sample(metrics, "recmon_latency_untrusted_total", check="search") == 0


def test_untrusted_latency_is_counted_not_observed() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.record(result("acme", trusted=False))
    count = sample(metrics, "recmon_probe_duration_seconds_count", tenant="acme", check="search")
    assert count is None
    assert sample(metrics, "recmon_latency_untrusted_total", check="search") == 1
    assert sample(metrics, "recmon_probes_total", tenant="acme", check="search", outcome="ok") == 1
    # The check's counter is kept after its first count: each later one counts, and so do
    # counts restored from a CronJob run's snapshot.
    metrics.restore_counters({"recmon_latency_untrusted": [(["search"], 3.0)]})
    metrics.record(result("globex", trusted=False))
    assert sample(metrics, "recmon_latency_untrusted_total", check="search") == 5


def test_histograms_per_check_only_when_switched_off() -> None:
    metrics = Metrics(CollectorRegistry(), per_tenant_histograms=False)
    metrics.record(result("acme"))
    metrics.record(result("globex"))
    assert (
        sample(metrics, "recmon_probe_duration_seconds_count", tenant=ALL_TENANTS, check="search")
        == 2
    )
    assert (
        sample(metrics, "recmon_probes_total", tenant="globex", check="search", outcome="ok") == 1
    )


@pytest.mark.parametrize(
    ("setting", "tenants", "per_tenant", "said"),
    [
        (None, PER_TENANT_HISTOGRAMS_UP_TO, True, False),
        (None, PER_TENANT_HISTOGRAMS_UP_TO + 1, False, True),
        (True, 10_000, True, False),
        (False, 10, False, False),
    ],
    ids=["unset-at-the-limit", "unset-above-it", "on-by-choice", "off-by-choice"],
)
def test_per_tenant_histograms_unset_are_on_up_to_the_documented_tenant_count(
    setting: bool | None,
    tenants: int,
    per_tenant: bool,
    said: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics(CollectorRegistry(), per_tenant_histograms=setting)
    metrics.record(result("acme"))  # a restored or early observation, before the count
    with caplog.at_level("INFO", logger="recmon.metrics"):
        metrics.size_for(tenants)
        metrics.size_for(tenants * 20)  # decided once: a later count changes nothing
    metrics.record(result("globex"))
    for tenant in ("acme", "globex"):
        count = sample(
            metrics, "recmon_probe_duration_seconds_count", tenant=tenant, check="search"
        )
        assert count == (1 if per_tenant else None)
    if not per_tenant and setting is None:
        assert (
            sample(
                metrics, "recmon_probe_duration_seconds_count", tenant=ALL_TENANTS, check="search"
            )
            == 1
        )
    lines = [r.getMessage() for r in caplog.records]
    if said:
        (line,) = lines
        assert f"above {PER_TENANT_HISTOGRAMS_UP_TO}" in line
        assert "metrics.per_tenant_histograms: true" in line  # how to override
    else:
        assert lines == []


def test_forget_tenant_removes_every_series_of_it() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.record(result("acme"))
    metrics.record(result("globex"))
    metrics.forget_tenant("acme")
    text = generate_latest(metrics.registry).decode()
    assert 'tenant="acme"' not in text
    assert 'tenant="globex"' in text
    metrics.record(result("acme"))
    assert sample(metrics, "recmon_probes_total", tenant="acme", check="search", outcome="ok") == 1


def test_pushable_registry_has_no_histograms() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.record(result("acme"))
    text = generate_latest(pushable(metrics.registry)).decode()
    assert "recmon_probes_total" in text
    assert "recmon_probe_duration_seconds" not in text
    assert "_bucket" not in text


def test_recorded_latencies_count_as_histogram_observe_counts_them() -> None:
    """record() observes through a closure over the histogram's values (its bucket found by
    bisection): the same buckets, sum and count as prometheus_client's own observe(), also
    for latencies exactly on a bound, below the first and above the last finite bound."""
    recorded = Metrics(CollectorRegistry())
    observed = Metrics(CollectorRegistry())
    bounds = latency_buckets(10.0)
    latencies = [0.0, 1e-6, *bounds[:3], bounds[3] + 1e-9, 0.061, bounds[-2], 1e6]
    for latency in latencies:
        probe = ProbeResult("acme", "search", Outcome.OK, latency, 0.0, status=200, items=3)
        recorded.record(probe)
        observed.probe_duration.labels("acme", "search").observe(latency)

    def histogram(metrics: Metrics) -> list[tuple[str, dict[str, str], float]]:
        return [
            (s.name, s.labels, s.value)
            for family in metrics.probe_duration.collect()
            for s in family.samples
            if not s.name.endswith("_created")
        ]

    assert histogram(recorded) == histogram(observed)
    assert sample(recorded, "recmon_probe_duration_seconds_count", tenant="acme", check="search")
    # NaN (no latency): no bucket moves, as with observe(); the sums both turn NaN.
    nan = float("nan")
    recorded.record(ProbeResult("acme", "search", Outcome.OK, nan, 0.0, status=200, items=3))
    observed.probe_duration.labels("acme", "search").observe(nan)
    buckets = [entry for entry in histogram(recorded) if not entry[0].endswith("_sum")]
    assert buckets == [entry for entry in histogram(observed) if not entry[0].endswith("_sum")]


def test_backend_probes_count_each_result_by_address_and_outcome() -> None:
    metrics = Metrics(CollectorRegistry())
    for outcome, address, proxy in [
        (Outcome.OK, "10.0.0.1", False),
        (Outcome.OK, "10.0.0.1", False),
        (Outcome.TIMEOUT, "10.0.0.1", False),
        (Outcome.OK, "10.0.0.2", True),
    ]:
        probe = ProbeResult("acme", "search", outcome, 0.05, 0.0, target="api", address=address)
        metrics.record(replace(probe, via_proxy=proxy))

    def probes(address: str, outcome: str) -> float | None:
        labels = {"target": "api", "address": address, "outcome": outcome}
        return sample(metrics, "recmon_backend_probes_total", **labels)

    assert probes("10.0.0.1", "ok") == 2.0
    assert probes("10.0.0.1", "timeout") == 1.0
    assert probes("10.0.0.2 (proxy)", "ok") == 1.0
