"""The /metrics text, with the per-tenant series written by a fast path.

prometheus_client's generate_latest builds a Sample and a label dict for every series and
escapes every label value on every scrape: about 4 µs a series, 0.4 s for 10,000 tenants × 2
checks — while the scrape thread holds the GIL the probing loop waits, and probes in flight
read late. The per-tenant series are plain dicts (metrics.TenantSeries), so their lines are
written straight from them, each series' label text escaped once and cached. Everything else
still goes through generate_latest; the output is the same exposition format.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol, cast

from prometheus_client import CollectorRegistry, generate_latest, utils
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# The value format generate_latest uses (Go's: +Inf, NaN, 1e+06).
format_value = cast(Callable[[float], str], utils.floatToGoString)

_rendering = threading.local()


def skipping_fast_series() -> bool:
    """True while this thread renders the fast series itself (their collect() yields none)."""
    return bool(getattr(_rendering, "active", False))


@contextlib.contextmanager
def _fast_series_rendered_here() -> Iterator[None]:
    _rendering.active = True
    try:
        yield
    finally:
        _rendering.active = False


def escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def label_text(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    """`{a="x",b="y"}` with names sorted, as generate_latest writes them."""
    pairs = sorted(zip(names, values, strict=True))
    return "{" + ",".join(f'{name}="{escape_label_value(value)}"' for name, value in pairs) + "}"


def family_text(
    name: str,
    help_text: str,
    kind: str,
    rows: list[tuple[str, float]],
) -> str:
    """One metric family; rows are (label text, value)."""
    head = f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"
    return head + "".join(f"{name}{labels} {format_value(value)}\n" for labels, value in rows)


class FastSeries(Protocol):
    """A collector with a fast path (metrics.TenantSeries): its collect() yields nothing
    while skipping_fast_series(), and exposition() writes its families as text."""

    def exposition(self) -> str: ...


class _Labelled(Collector):
    """A registry's metrics with labels added to every sample (a series' own label wins)."""

    def __init__(self, registry: CollectorRegistry, labels: Mapping[str, str]) -> None:
        self._registry = registry
        self._labels = dict(labels)

    def collect(self) -> Iterable[Metric]:
        for metric in self._registry.collect():
            out = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            out.samples = [
                sample._replace(labels={**self._labels, **sample.labels})
                for sample in metric.samples
            ]
            yield out


def with_labels(registry: CollectorRegistry, labels: Mapping[str, str] | None) -> CollectorRegistry:
    """The registry as it is exported: with `labels` on every series (prometheus_client has
    no constant labels of its own). Without labels, the registry itself."""
    if not labels:
        return registry
    out = CollectorRegistry(auto_describe=False)
    out.register(_Labelled(registry, labels))
    return out


def render(
    registry: CollectorRegistry, fast: FastSeries, labels: Mapping[str, str] | None = None
) -> bytes:
    """The registry's exposition; `fast` must be registered in it and carry `labels` itself."""
    with _fast_series_rendered_here():
        rest = generate_latest(with_labels(registry, labels))
    return rest + fast.exposition().encode()
