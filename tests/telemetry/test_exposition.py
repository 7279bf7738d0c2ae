"""The /metrics fast path writes exactly what generate_latest would."""

from __future__ import annotations

import math

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
    assert not [key for key in metrics.series._label_text if key[0] == "globex"]


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
