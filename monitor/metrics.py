"""The Prometheus metrics contract (DESIGN.md), recorded into a registry that is passed in."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from monitor import __version__
from monitor.results import Outcome, ProbeResult
from monitor.tls.certinfo import CertificateInfo

ALL_TENANTS = "_all"  # tenant label of the per-check histogram when per-tenant ones are off
_BASE_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
_TOP_CANDIDATES = (5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def latency_buckets(max_timeout: float) -> tuple[float, ...]:
    """Base buckets plus one finite bucket above the largest timeout, so a timeout never lands
    only in +Inf (where histogram_quantile cannot place it)."""
    top = next((c for c in _TOP_CANDIDATES if c > max_timeout), max_timeout * 2)
    return (*(b for b in _BASE_BUCKETS if b < top), top)


@dataclass(slots=True)
class _Series:
    histogram: Histogram
    success: Gauge
    items: Gauge
    outcomes: dict[Outcome, Counter] = field(default_factory=dict)


class Metrics:
    """Every metric recmon exports. One instance per registry."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        max_timeout: float = 5.0,
        per_tenant_histograms: bool = True,
    ) -> None:
        self.registry = registry
        self.per_tenant_histograms = per_tenant_histograms
        tc = ("tenant", "check")
        self.probe_duration = Histogram(
            "recmon_probe_duration_seconds",
            "Probe latency as the target showed it (from in-flight slot to last body byte).",
            tc,
            buckets=latency_buckets(max_timeout),
            registry=registry,
        )
        self.probes = Counter(
            "recmon_probes_total", "Probes by outcome.", (*tc, "outcome"), registry=registry
        )
        self.probe_success = Gauge(
            "recmon_probe_success", "1 if the last probe was ok, else 0.", tc, registry=registry
        )
        self.probe_items = Gauge(
            "recmon_probe_items", "Items in the last response.", tc, registry=registry
        )
        self.latency_p95 = Gauge(
            "recmon_latency_p95_seconds",
            "p95 latency over the short detection window.",
            tc,
            registry=registry,
        )
        self.latency_baseline_p95 = Gauge(
            "recmon_latency_baseline_p95_seconds",
            "Learned baseline p95 latency.",
            tc,
            registry=registry,
        )
        self.probe_retries = Counter(
            "recmon_probe_retries_total",
            "Attempts that were retried, by their outcome.",
            ("check", "outcome"),
            registry=registry,
        )
        self.probes_skipped = Counter(
            "recmon_probes_skipped_total",
            "Probes not sent, by reason (missing_variable, overrun).",
            ("check", "reason"),
            registry=registry,
        )
        self.untrusted_latency = Counter(
            "recmon_latency_untrusted_total",
            "Probe latencies not recorded because the monitor itself was lagging.",
            ("check",),
            registry=registry,
        )
        self.tls_not_after = Gauge(
            "recmon_tls_cert_not_after_timestamp_seconds",
            "Leaf certificate expiry.",
            ("host", "address"),
            registry=registry,
        )
        self.tls_info = Gauge(
            "recmon_tls_cert_info",
            "Leaf certificate served, value 1.",
            ("host", "address", "fingerprint_sha256", "serial", "issuer"),
            registry=registry,
        )
        self.tls_cert_valid = Gauge(
            "recmon_tls_cert_valid",
            "1 if the address served a certificate clients accept, else 0.",
            ("host", "address"),
            registry=registry,
        )
        self._tls_info_labels: dict[tuple[str, str], tuple[str, str, str, str, str]] = {}
        self.alerts_firing = Gauge(
            "recmon_alerts_firing",
            "Alerts firing now.",
            ("alert", "tenant", "check", "severity"),
            registry=registry,
        )
        self.notifications = Counter(
            "recmon_notifications_total",
            "Notification deliveries by sink and result.",
            ("sink", "result"),
            registry=registry,
        )
        self.event_loop_lag = Gauge(
            "recmon_event_loop_lag_seconds",
            "How late the event loop ran a timer, recent maximum.",
            registry=registry,
        )
        self.schedule_lag = Histogram(
            "recmon_schedule_lag_seconds",
            "Delay from a probe's scheduled time to its start.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=registry,
        )
        self.tenants = Gauge("recmon_tenants", "Tenants this replica probes.", registry=registry)
        self.tenant_source_errors = Counter(
            "recmon_tenant_source_errors_total", "Failed tenant list refreshes.", registry=registry
        )
        self.internal_errors = Counter(
            "recmon_internal_errors_total",
            "Unexpected errors inside recmon (bugs).",
            ("component",),
            registry=registry,
        )
        self.build_info = Gauge(
            "recmon_build_info", "Version of recmon, value 1.", ("version",), registry=registry
        )
        self.build_info.labels(__version__).set(1)
        self._series: dict[tuple[str, str], _Series] = {}

    def _series_for(self, tenant: str, check: str) -> _Series:
        key = (tenant, check)
        series = self._series.get(key)
        if series is None:
            hist_tenant = tenant if self.per_tenant_histograms else ALL_TENANTS
            series = _Series(
                histogram=self.probe_duration.labels(hist_tenant, check),
                success=self.probe_success.labels(tenant, check),
                items=self.probe_items.labels(tenant, check),
            )
            self._series[key] = series
        return series

    def record(self, result: ProbeResult) -> None:
        series = self._series_for(result.tenant, result.check)
        counter = series.outcomes.get(result.outcome)
        if counter is None:
            counter = self.probes.labels(result.tenant, result.check, result.outcome.value)
            series.outcomes[result.outcome] = counter
        counter.inc()
        if result.latency_trusted:
            series.histogram.observe(result.duration_s)
        else:
            self.untrusted_latency.labels(result.check).inc()
        series.success.set(1.0 if result.outcome is Outcome.OK else 0.0)
        if result.items is not None:
            series.items.set(result.items)
        if result.first_outcome is not None:
            self.probe_retries.labels(result.check, result.first_outcome.value).inc()

    def persistent_counters(self) -> list[Counter]:
        """Counters a CronJob run continues from the previous run's values (so rate() works
        on what it pushes)."""
        return [
            self.probes,
            self.probe_retries,
            self.probes_skipped,
            self.untrusted_latency,
            self.notifications,
            self.internal_errors,
        ]

    def counter_snapshot(self) -> dict[str, list[tuple[list[str], float]]]:
        snapshot: dict[str, list[tuple[list[str], float]]] = {}
        for counter in self.persistent_counters():
            rows = snapshot.setdefault(counter._name, [])
            for family in counter.collect():
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        labels = [sample.labels[name] for name in counter._labelnames]
                        rows.append((labels, sample.value))
        return snapshot

    def restore_counters(self, snapshot: dict[str, list[tuple[list[str], float]]]) -> None:
        by_name = {counter._name: counter for counter in self.persistent_counters()}
        for name, rows in snapshot.items():
            counter = by_name.get(name)
            if counter is None:
                continue
            for labels, value in rows:
                if len(labels) == len(counter._labelnames) and value > 0:
                    counter.labels(*labels).inc(value)

    def record_tls(
        self, host: str, address: str, cert: CertificateInfo | None, valid: bool
    ) -> None:
        """Expiry and identity of what an address serves — also when it is invalid."""
        self.tls_cert_valid.labels(host, address).set(1.0 if valid else 0.0)
        if cert is None:
            return
        self.tls_not_after.labels(host, address).set(cert.not_after)
        labels = (host, address, cert.fingerprint_sha256, cert.serial, cert.issuer)
        previous = self._tls_info_labels.get((host, address))
        if previous is not None and previous != labels:
            # A rotated certificate: the old fingerprint must not linger.
            with contextlib.suppress(KeyError):
                self.tls_info.remove(*previous)
        self._tls_info_labels[(host, address)] = labels
        self.tls_info.labels(*labels).set(1)

    def set_alert(self, alert: str, tenant: str, check: str, severity: str, firing: bool) -> None:
        if firing:
            self.alerts_firing.labels(alert, tenant, check, severity).set(1)
        else:
            with contextlib.suppress(KeyError):
                self.alerts_firing.remove(alert, tenant, check, severity)

    def set_latency(
        self, tenant: str, check: str, p95: float | None, baseline: float | None
    ) -> None:
        if p95 is not None:
            self.latency_p95.labels(tenant, check).set(p95)
        if baseline is not None:
            self.latency_baseline_p95.labels(tenant, check).set(baseline)

    def tenants_seen(self) -> set[str]:
        """Tenants any per-tenant counter has a series for (also restored ones)."""
        return {
            sample.labels["tenant"]
            for family in self.probes.collect()
            for sample in family.samples
            if sample.labels.get("tenant")
        }

    def forget_tenant(self, tenant: str) -> None:
        """Drop every series of a tenant that is no longer probed."""
        for key in [k for k in self._series if k[0] == tenant]:
            del self._series[key]
        per_tenant: list[MetricWrapperBase] = [
            self.probes,
            self.probe_success,
            self.probe_items,
            self.latency_p95,
            self.latency_baseline_p95,
            self.alerts_firing,
        ]
        if self.per_tenant_histograms:
            per_tenant.append(self.probe_duration)
        for metric in per_tenant:
            _remove_matching(metric, "tenant", tenant)


def _remove_matching(metric: MetricWrapperBase, label: str, value: str) -> None:
    index = metric._labelnames.index(label)
    with metric._lock:
        stale = [key for key in metric._metrics if key[index] == value]
    for key in stale:
        metric.remove(*key)
