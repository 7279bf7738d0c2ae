"""The /metrics fast path writes exactly what generate_latest would."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.core.results import Outcome, ProbeResult
from monitor.telemetry.exposition import label_text
from monitor.telemetry.metrics import Metrics

Samples = list[tuple[str, tuple[tuple[str, str], ...], float]]


def samples(body: bytes) -> Samples:
    return sorted(
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    )


def families(body: bytes) -> dict[str, tuple[str, str]]:
    return {
        f.name: (f.type, f.documentation) for f in text_string_to_metric_families(body.decode())
    }


def populated() -> Metrics:
    metrics = Metrics(CollectorRegistry(), per_tenant_histograms=False)
    for tenant in ("acme", "globex", "initech"):
        for check, outcome in (("search", Outcome.OK), ("recommendations", Outcome.EMPTY)):
            metrics.record(ProbeResult(tenant, check, outcome, 0.061, 0.0, status=200, items=0))
        metrics.set_latency(tenant, "search", 0.0661234, 0.0642)
    metrics.set_latency("acme", "recommendations", math.inf, None)  # Go's +Inf
    return metrics


def test_fast_render_is_the_same_exposition_as_generate_latest() -> None:
    metrics = populated()
    standard = generate_latest(metrics.registry)
    fast = metrics.render()
    assert samples(fast) == samples(standard)
    assert families(fast) == families(standard)
    assert len(samples(fast)) > 20  # the comparison compared something
    assert b'recmon_latency_p95_seconds{check="recommendations",tenant="acme"} +Inf\n' in fast


def test_rendering_twice_uses_the_cache_and_stays_current() -> None:
    metrics = populated()
    metrics.render()
    metrics.record(ProbeResult("acme", "search", Outcome.TIMEOUT, 5.0, 0.0))
    body = metrics.render()
    assert b'recmon_probes_total{check="search",outcome="timeout",tenant="acme"} 1.0\n' in body
    assert samples(body) == samples(generate_latest(metrics.registry))


def test_a_forgotten_tenant_leaves_the_output_and_the_cache() -> None:
    metrics = populated()
    metrics.render()
    metrics.forget_tenant("globex")
    body = metrics.render()
    assert b"globex" not in body
    assert not [key for key in metrics.series.rows if key[0] == "globex"]


def test_collect_outside_a_render_still_yields_the_series() -> None:
    metrics = populated()
    metrics.render()
    value = metrics.registry.get_sample_value(
        "recmon_probes_total", {"tenant": "acme", "check": "search", "outcome": "ok"}
    )
    assert value == 1.0


def test_label_values_are_escaped_like_the_text_format_wants() -> None:
    text = label_text(("tenant", "check"), ('a"b\\c\nd', "search"))
    assert text == '{check="search",tenant="a\\"b\\\\c\\nd"}'
    parsed = samples(f"m{text} 1.0\n".encode())
    assert parsed == [("m", (("check", "search"), ("tenant", 'a"b\\c\nd')), 1.0)]


@pytest.mark.parametrize(
    "const", [{}, {"location": "eu-1"}, {"a": "first"}, {"zone": "z,\\"}, {"outcome_x": "o"}]
)
def test_outcome_label_texts_are_label_texts_wherever_outcome_sorts(const: dict[str, str]) -> None:
    # recmon_probes_total's label text is the series' own with the outcome's pair put where
    # the names sort: the same as label_text builds it, escapes and commas in values included.
    metrics = Metrics(CollectorRegistry(), per_tenant_histograms=False, const_labels=const)
    tenants = ("acme", 'a,b="c"', "x\\y\nz", "")
    for tenant in tenants:
        metrics.record(ProbeResult(tenant, "search", Outcome.OK, 0.06, 0.0, items=3))
        metrics.record(ProbeResult(tenant, "search", Outcome.TIMEOUT, 5.0, 0.0))
        metrics.set_latency(tenant, "search", 0.07, 0.05)
    body = metrics.render().decode()
    names = ("tenant", "check", "outcome", *const)
    for tenant in tenants:
        for outcome in ("ok", "timeout"):
            text = label_text(names, (tenant, "search", outcome, *const.values()))
            assert f"recmon_probes_total{text} 1.0\n" in body
        text = label_text(("tenant", "check", *const), (tenant, "search", *const.values()))
        assert f"recmon_probe_items{text} 3.0\n" in body
    fast = metrics.series.exposition().encode()
    assert samples(fast) == [
        s for s in samples(generate_latest(metrics.registry)) if s[0] in samples_names(fast)
    ]


def samples_names(body: bytes) -> set[str]:
    return {name for name, _, _ in samples(body)}


def test_a_series_row_holds_every_value_in_slots() -> None:
    # One slotted record per series, no per-series dict until an outcome other than ok.
    metrics = populated()
    row = metrics.series.rows[("acme", "search")]
    assert not hasattr(row, "__dict__")
    assert row.others is None and row.ok == 1.0
    assert metrics.series.rows[("acme", "recommendations")].others == {"empty": 1.0}
