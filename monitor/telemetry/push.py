"""CronJob mode's export: push to a Pushgateway or write a textfile, without histograms.

The Pushgateway keeps the last push forever, so it should hold gauges and cumulative counters,
not histograms (docs/ARCHITECTURE.md). PUT replaces the whole group: tenants gone from this
run disappear.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import push_to_gateway
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from monitor.telemetry.exposition import with_labels


class WithoutHistograms(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return (
            m for m in self._registry.collect() if m.type not in ("histogram", "gaugehistogram")
        )


def pushable(
    registry: CollectorRegistry, labels: Mapping[str, str] | None = None
) -> CollectorRegistry:
    out = CollectorRegistry(auto_describe=False)
    out.register(WithoutHistograms(with_labels(registry, labels)))
    return out


def push(
    registry: CollectorRegistry,
    gateway: str,
    *,
    job: str,
    grouping_key: dict[str, str],
    timeout: float = 10.0,
    labels: Mapping[str, str] | None = None,
) -> None:
    """PUT this run's metrics as the group (job, grouping_key), replacing the previous run's."""
    push_to_gateway(
        gateway,
        job=job,
        registry=pushable(registry, labels),
        grouping_key=grouping_key,
        timeout=timeout,
    )


def write_textfile(
    registry: CollectorRegistry,
    path: str | os.PathLike[str],
    labels: Mapping[str, str] | None = None,
) -> None:
    """Atomically write the metrics (node_exporter textfile collector format)."""
    target = Path(path)
    body = generate_latest(pushable(registry, labels))
    with tempfile.NamedTemporaryFile(
        dir=target.parent or ".", prefix=f".{target.name}.", delete=False
    ) as tmp:
        tmp.write(body)
    os.replace(tmp.name, target)
