"""The Prometheus metrics contract (docs/ARCHITECTURE.md), recorded into a registry that is
passed in."""

from __future__ import annotations

import bisect
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.core.certinfo import CertificateInfo
from monitor.core.results import Outcome, ProbeResult
from monitor.telemetry.exposition import (
    escape_label_value,
    family_text,
    render,
    skipping_fast_series,
)

log = logging.getLogger("recmon.metrics")
# metrics.per_tenant_histograms unset: on up to this many tenants (in this process's shard).
# At 10,000 tenants x 2 checks they make a 39 MB scrape rendered in 3.7 s, against 7.4 MB in
# 0.17 s off (docs/BENCHMARKS.md, "/metrics and per-tenant histograms").
PER_TENANT_HISTOGRAMS_UP_TO = 1_000

ALL_TENANTS = "_all"  # tenant label of the per-check histogram when per-tenant ones are off
_BASE_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
_TOP_CANDIDATES = (5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def latency_buckets(max_timeout: float) -> tuple[float, ...]:
    """Base buckets plus one finite bucket above the largest timeout, so a timeout never lands
    only in +Inf (where histogram_quantile cannot place it)."""
    top = next((c for c in _TOP_CANDIDATES if c > max_timeout), max_timeout * 2)
    return (*(b for b in _BASE_BUCKETS if b < top), top)


SeriesKey = tuple[str, str]  # (tenant, check)
_TENANT_CHECK = ("tenant", "check")
_TENANT_CHECK_OUTCOME = ("tenant", "check", "outcome")


class SeriesRow:
    """One tenant × check's fast series in one slotted record: its probes by outcome, success,
    items, window and baseline p95 (None: never set), and its escaped label text once a
    render has built it. Five dicts of tuple keys took ~680 bytes a series; this ~300."""

    __slots__ = ("baseline", "items", "ok", "others", "p95", "split", "success", "text")

    def __init__(self) -> None:
        self.ok: float | None = None  # recmon_probes_total{outcome="ok"}, None: never ok
        self.others: dict[str, float] | None = None  # the other outcomes, first seen first
        self.success: float | None = None
        self.items: float | None = None
        self.p95: float | None = None
        self.baseline: float | None = None
        # The series' label text, escaped, once a render built it (the render thread's), and
        # where in it an outcome's pair goes (recmon_probes_total's labels).
        self.text: str | None = None
        self.split = 0

    def count(self, outcome: str, value: float) -> None:
        if outcome == _OK:
            self.ok = (self.ok or 0.0) + value
            return
        if self.others is None:
            self.others = {}
        self.others[outcome] = self.others.get(outcome, 0.0) + value

    def probes(self) -> list[tuple[str, float]]:
        """(outcome, count) for every outcome counted, ok first."""
        counted = [(_OK, self.ok)] if self.ok is not None else []
        if self.others is not None:
            counted += list(self.others.items())
        return counted


_OK = Outcome.OK.value
_ONE, _ZERO = 1.0, 0.0  # shared: success is one of two values


class TenantSeries(Collector):
    """recmon_probes_total, recmon_probe_success, recmon_probe_items and the latency p95
    gauges for every tenant × check, kept as plain floats in a SeriesRow per series.

    With prometheus_client's own metric objects each of these series would carry a child
    object, a lock and a value box: for 10,000 tenants that is over 100,000 objects for the
    garbage collector to walk on every full collection, and a lock taken on every probe.
    """

    _HELP = (
        ("recmon_probes_total", "Probes by outcome.", "counter"),
        ("recmon_probe_success", "1 if the last probe was ok.", "gauge"),
        ("recmon_probe_items", "Items in the last response.", "gauge"),
        ("recmon_latency_p95_seconds", "p95 latency over the short window.", "gauge"),
        ("recmon_latency_baseline_p95_seconds", "Learned baseline p95 latency.", "gauge"),
    )
    _GAUGES = ("success", "items", "p95", "baseline")

    def __init__(self, const_labels: Mapping[str, str] | None = None) -> None:
        # Labels every series carries (location), after the series' own.
        self._const_names = tuple(const_labels or ())
        self._const_values = tuple((const_labels or {}).values())
        self.rows: dict[SeriesKey, SeriesRow] = {}
        # Where "outcome" sorts among the label names: recmon_probes_total's label text is the
        # series' own with the outcome's pair put there, not a second text kept per series.
        self._names = tuple(sorted(_TENANT_CHECK + self._const_names))
        self._outcome_at = bisect.bisect(self._names, "outcome")

    def row(self, tenant: str, check: str) -> SeriesRow:
        row = self.rows.get((tenant, check))
        if row is None:
            row = self.rows[(tenant, check)] = SeriesRow()
        return row

    def record(
        self,
        tenant: str,
        check: str,
        ok: bool,
        outcome: str,
        items: int | None,
        p95: float | None = None,
        baseline: float | None = None,
    ) -> None:
        """One probe's counts and gauges (p95, baseline: None leaves the gauge as it was)."""
        row = self.rows.get((tenant, check))
        if row is None:
            row = self.rows[(tenant, check)] = SeriesRow()
        if ok:
            row.ok = (row.ok or 0.0) + 1.0
            row.success = _ONE
        else:
            row.count(outcome, 1.0)
            row.success = _ZERO
        if items is not None:
            row.items = float(items)
        if p95 is not None:
            row.p95 = p95
        if baseline is not None:
            row.baseline = baseline

    def probe_counts(self) -> list[tuple[tuple[str, str, str], float]]:
        """((tenant, check, outcome), probes) of every series and outcome counted."""
        return [
            ((tenant, check, outcome), value)
            for (tenant, check), row in list(self.rows.items())
            for outcome, value in row.probes()
        ]

    def _gauge_rows(self, name: str) -> list[tuple[SeriesKey, float]]:
        return [
            (key, value)
            for key, row in list(self.rows.items())
            if (value := getattr(row, name)) is not None
        ]

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        if skipping_fast_series():
            return []  # exposition() writes them
        # Called from the rendering thread while the event loop records: list() snapshots a
        # dict atomically under the GIL.
        return self._families(
            self.probe_counts(), *(self._gauge_rows(name) for name in self._GAUGES)
        )

    def _families(
        self, *data: list[tuple[Any, float]]
    ) -> list[CounterMetricFamily | GaugeMetricFamily]:
        const = self._const_names
        families: list[CounterMetricFamily | GaugeMetricFamily] = [
            CounterMetricFamily(
                name.removesuffix("_total"), help_text, labels=_TENANT_CHECK_OUTCOME + const
            )
            if kind == "counter"
            else GaugeMetricFamily(name, help_text, labels=_TENANT_CHECK + const)
            for name, help_text, kind in self._HELP
        ]
        for family, rows in zip(families, data or [[]] * len(families), strict=True):
            for labels, value in rows:
                family.add_metric([*labels, *self._const_values], value)
        return families

    def _series_text(self, key: SeriesKey, row: SeriesRow) -> str:
        text = row.text
        if text is None:
            names = _TENANT_CHECK + self._const_names
            values = dict(zip(names, key + self._const_values, strict=True))
            pairs = [f'{name}="{escape_label_value(values[name])}"' for name in self._names]
            row.split = len("{" + ",".join(pairs[: self._outcome_at]))
            text = row.text = "{" + ",".join(pairs) + "}"
        return text

    def _outcome_text(self, key: SeriesKey, row: SeriesRow, outcome: str) -> str:
        """The series' label text with the outcome's pair where label_text sorts it."""
        text = self._series_text(key, row)
        pair = f'outcome="{escape_label_value(outcome)}"'
        if self._outcome_at == 0:  # "outcome" sorts first
            return "{" + pair + ("," if len(text) > 2 else "") + text[1:]
        return text[: row.split] + "," + pair + text[row.split :]

    def exposition(self) -> str:
        """The five families as exposition text, the same as generate_latest writes them."""
        rows = list(self.rows.items())
        (probes, *gauges) = self._HELP
        probe_rows = [
            (self._outcome_text(key, row, outcome), value)
            for key, row in rows
            for outcome, value in row.probes()
        ]
        parts = [family_text(*probes, probe_rows)]
        for (name, help_text, kind), attribute in zip(gauges, self._GAUGES, strict=True):
            gauge_rows = [
                (self._series_text(key, row), value)
                for key, row in rows
                if (value := getattr(row, attribute)) is not None
            ]
            parts.append(family_text(name, help_text, kind, gauge_rows))
        return "".join(parts)

    def tenants(self) -> set[str]:
        return {key[0] for key in list(self.rows)}

    def forget(self, tenant: str) -> None:
        for key in [k for k in self.rows if k[0] == tenant]:
            del self.rows[key]


class Metrics:
    """Every metric recmon exports. One instance per registry."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        max_timeout: float = 5.0,
        per_tenant_histograms: bool | None = True,
        const_labels: Mapping[str, str] | None = None,
    ) -> None:
        """`per_tenant_histograms` None: decided by the first tenant count (size_for)."""
        self.registry = registry
        # On every exported series ({"location": ...}), so a metric says where it was seen
        # from however it travels: scraped, federated, remote-written or pushed.
        self.const_labels = dict(const_labels or {})
        self._histograms_by_count = per_tenant_histograms is None
        self.per_tenant_histograms = per_tenant_histograms is not False
        # By area, in the order they are exposed.
        self._probe_metrics(registry, max_timeout)
        self._tls_metrics(registry)
        self._alerting_metrics(registry)
        self._process_metrics(registry)
        # Each series' (or check's) latency histogram, as its observer (_observer): resolved
        # once, not labels() and Histogram.observe's checks and walk on every probe.
        self._histograms: dict[SeriesKey, Callable[[float], None]] = {}

    def _probe_metrics(self, registry: CollectorRegistry, max_timeout: float) -> None:
        """Per probe: latency, outcomes (TenantSeries), retries, skips, and why probes failed."""
        tc = ("tenant", "check")
        self.probe_duration = Histogram(
            "recmon_probe_duration_seconds",
            "Probe latency as the target showed it (from in-flight slot to last body byte).",
            tc,
            buckets=latency_buckets(max_timeout),
            registry=registry,
        )
        self.series = TenantSeries(self.const_labels)
        registry.register(self.series)
        self.probe_retries = Counter(
            "recmon_probe_retries_total",
            "Attempts that were retried, by their outcome.",
            ("check", "outcome"),
            registry=registry,
        )
        self.probes_skipped = Counter(
            "recmon_probes_skipped_total",
            "Probes not sent, by reason (missing_variable, missing_credential, overrun).",
            ("check", "reason"),
            registry=registry,
        )
        # Why probes failed on TLS (expired, unknown_issuer, ...): "expired certificate" and
        # "down" apart on a dashboard. By check, not tenant: one certificate serves them all.
        self.probe_tls_errors = Counter(
            "recmon_probe_tls_errors_total",
            "Probes that failed on TLS, by reason.",
            ("check", "reason"),
            registry=registry,
        )
        # Which backend address answered, by outcome: one failing backend behind a name shows
        # as its own failures. Bounded: a target has few addresses.
        self.backend_probes = Counter(
            "recmon_backend_probes_total",
            "Probes by the address that answered them (or refused them), by outcome; "
            "'(proxy)' marks a proxy's address.",
            ("target", "address", "outcome"),
            registry=registry,
        )
        self._backend_children: dict[tuple[str, str, bool, Outcome], Callable[[float], None]] = {}
        # untrusted_latency's inc per check: a latency withheld from the histograms is routine
        # on a busy loop (a few percent of probes, more under load).
        self._untrusted_children: dict[str, Callable[[float], None]] = {}
        # Whose credentials were refused (tenant, shared, none): a tenant's key and recmon's
        # own credentials apart, without a series per tenant.
        self.probe_auth_errors = Counter(
            "recmon_probe_auth_errors_total",
            "Probes whose credentials were refused (auth_error), by whose credential.",
            ("check", "credential"),
            registry=registry,
        )
        # Which condition a wrong_content probe failed: a renamed field and another tenant's
        # items apart on a dashboard. By check, not tenant (the reason names the tenant).
        self.probe_condition_failures = Counter(
            "recmon_probe_condition_failures_total",
            "Probes whose content failed a condition (wrong_content), by condition.",
            ("check", "condition"),
            registry=registry,
        )
        self.oauth2_token_requests = Counter(
            "recmon_oauth2_token_requests_total",
            "OAuth2 token requests by target and result (ok, refused, error).",
            ("target", "result"),
            registry=registry,
        )
        self.untrusted_latency = Counter(
            "recmon_latency_untrusted_total",
            "Probe latencies not recorded because the monitor itself was lagging.",
            ("check",),
            registry=registry,
        )
        self.timeouts_withheld = Counter(
            "recmon_timeouts_withheld_total",
            "Probe timeouts not counted against tenants: the deadline passed while the "
            "monitor's own event loop ran late.",
            ("check",),
            registry=registry,
        )

    def _tls_metrics(self, registry: CollectorRegistry) -> None:
        """The certificates the targets serve, and recmon's own client certificates."""
        self.tls_not_after = Gauge(
            "recmon_tls_cert_not_after_timestamp_seconds",
            "Leaf certificate expiry.",
            ("host", "address"),
            registry=registry,
        )
        self.tls_chain_not_after = Gauge(
            "recmon_tls_chain_not_after_timestamp_seconds",
            "Earliest expiry among the intermediate certificates served with the leaf.",
            ("host", "address"),
            registry=registry,
        )
        self.tls_client_not_after = Gauge(
            "recmon_tls_client_cert_not_after_timestamp_seconds",
            "Expiry of recmon's own client certificate for a target (mTLS).",
            ("target",),
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
        # Down and invalid apart: the certificate series above keep what an address served
        # last; this says whether it served one at all in the last round
        # (RecmonTLSBackendUnreachable).
        self.tls_cert_served = Gauge(
            "recmon_tls_cert_served",
            "1 if the address served a certificate in the last round, else 0 (unreachable).",
            ("host", "address"),
            registry=registry,
        )
        self._tls_info_labels: dict[tuple[str, str], tuple[str, str, str, str, str]] = {}

    def _alerting_metrics(self, registry: CollectorRegistry) -> None:
        """Alerts firing now, and notification deliveries."""
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

    def _process_metrics(self, registry: CollectorRegistry) -> None:
        """recmon itself: its event loop and schedule, tenants, errors, configuration, build."""
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
        # schedule_lag.observe for every run the scheduler starts (the engine's), as _observer's
        # closure: no observability check and Python walk over the bounds on every probe.
        self.observe_schedule_lag = _observer(self.schedule_lag)
        # The lag above in units of each check's interval, which the histogram cannot carry:
        # what RecmonOverloaded compares with recmon_schedule_lag_seconds_count.
        self.runs_late = Counter(
            "recmon_runs_late_total",
            "Scheduled runs that started later than alerts.overload.late of their interval.",
            ("check",),
            registry=registry,
        )
        self.tenants = Gauge("recmon_tenants", "Tenants this replica probes.", registry=registry)
        self.tenant_source_errors = Counter(
            "recmon_tenant_source_errors_total", "Failed tenant list refreshes.", registry=registry
        )
        # 0 from a failed write to the state file until one succeeds: pages are sent from
        # memory meanwhile, not crash-safe (recmon's own alert state_unwritable).
        self.state_writable = Gauge(
            "recmon_state_writable",
            "1 while the state file takes writes, 0 from a failed write until one succeeds.",
            registry=registry,
        )
        self.state_writable.set(1)
        self.state_write_errors = Counter(
            "recmon_state_write_errors_total",
            "Write transactions to the state file that failed (a full volume, a read-only "
            "file system, an I/O error).",
            registry=registry,
        )
        self.internal_errors = Counter(
            "recmon_internal_errors_total",
            "Unexpected errors inside recmon (bugs).",
            ("component",),
            registry=registry,
        )
        # The Prometheus convention (prometheus_config_last_reload_successful): 0 while the
        # last reload failed and the last good configuration keeps running.
        self.config_reload_success = Gauge(
            "recmon_config_reload_success",
            "1 if the last configuration load or reload succeeded, 0 if it failed.",
            registry=registry,
        )
        self.config_reload_success.set(1)
        self.config_reload_timestamp = Gauge(
            "recmon_config_reload_timestamp_seconds",
            "When the configuration was last loaded or a reload last attempted (recmon run).",
            registry=registry,
        )
        self.build_info = Gauge(
            "recmon_build_info", "Version of recmon, value 1.", ("version",), registry=registry
        )
        self.build_info.labels(__version__).set(1)

    def _timer_for(self, tenant: str, check: str) -> Callable[[float], None]:
        key = (tenant, check) if self.per_tenant_histograms else (ALL_TENANTS, check)
        timer = self._histograms.get(key)
        if timer is None:
            timer = self._histograms[key] = _observer(self.probe_duration.labels(*key))
            # The check's untrusted count exported at 0 from its first latency on: the
            # untrusted ratio (instance:recmon_latency_untrusted:ratio_5m) then reads 0, not
            # "no data", on a monitor whose every latency was trusted.
            self._untrusted_count(check)
        return timer

    def render(self) -> bytes:
        """The /metrics body (the per-tenant series by their fast path)."""
        return render(self.registry, self.series, self.const_labels)

    def record(
        self, result: ProbeResult, *, p95: float | None = None, baseline: float | None = None
    ) -> None:
        """Everything one result shows: its outcome and latency, and the window and baseline
        p95 of its series (from the detector; None leaves the gauge as it was)."""
        ok = result.outcome is Outcome.OK
        # The series' row once, with the detector's gauges (not set_latency's second lookup).
        self.series.record(
            result.tenant, result.check, ok, result.outcome.value, result.items, p95, baseline
        )
        if result.attempts == 0:
            pass  # no request was sent (no token to send): nothing to time
        elif result.latency_trusted:
            self._timer_for(result.tenant, result.check)(result.duration_s)
        else:
            self._untrusted_count(result.check)(1.0)
        if result.first_outcome is not None:
            self.probe_retries.labels(result.check, result.first_outcome.value).inc()
        if result.tls_reason:
            self.probe_tls_errors.labels(result.check, result.tls_reason).inc()
        if result.credential:
            self.probe_auth_errors.labels(result.check, result.credential).inc()
        if result.address:
            self._backend_count(result)(1.0)
        if result.condition:
            self.probe_condition_failures.labels(result.check, result.condition).inc()

    def _untrusted_count(self, check: str) -> Callable[[float], None]:
        count = self._untrusted_children.get(check)
        if count is None:  # labels() costs a lock and a lookup: once per check, as below
            child = self.untrusted_latency.labels(check)
            count = self._untrusted_children[check] = child._value.inc
        return count

    def _backend_count(self, result: ProbeResult) -> Callable[[float], None]:
        key = (result.target, result.address, result.via_proxy, result.outcome)
        count = self._backend_children.get(key)
        if count is None:  # labels() costs a lock and a lookup: once per combination
            address = f"{result.address} (proxy)" if result.via_proxy else result.address
            child = self.backend_probes.labels(result.target, address, result.outcome.value)
            # Its value's inc: Counter.inc's checks (observable, not negative) hold for +1,
            # and were paid on every probe (prometheus_client 0.26's field, as _observer's).
            count = self._backend_children[key] = child._value.inc
        return count

    def persistent_counters(self) -> list[Counter]:
        """Counters a CronJob run continues from the previous run's values (so rate() works
        on what it pushes)."""
        return [
            self.probe_retries,
            self.probe_tls_errors,
            self.probe_auth_errors,
            self.backend_probes,
            self.probe_condition_failures,
            self.oauth2_token_requests,
            self.probes_skipped,
            self.untrusted_latency,
            self.timeouts_withheld,
            self.notifications,
            self.internal_errors,
        ]

    def counter_snapshot(self) -> dict[str, list[tuple[list[str], float]]]:
        snapshot: dict[str, list[tuple[list[str], float]]] = {
            "recmon_probes": [(list(labels), value) for labels, value in self.series.probe_counts()]
        }
        for counter in self.persistent_counters():
            rows = snapshot.setdefault(counter._name, [])
            for family in counter.collect():
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        labels = [sample.labels[name] for name in counter._labelnames]
                        rows.append((labels, sample.value))
        return snapshot

    def restore_counters(self, snapshot: dict[str, list[tuple[list[str], float]]]) -> None:
        for labels, value in snapshot.get("recmon_probes", []):
            if len(labels) == 3 and value > 0:
                row = self.series.row(str(labels[0]), str(labels[1]))
                row.count(str(labels[2]), float(value))
        by_name = {counter._name: counter for counter in self.persistent_counters()}
        for name, rows in snapshot.items():
            counter = by_name.get(name)
            if counter is None:
                continue
            for labels, value in rows:
                if len(labels) == len(counter._labelnames) and value > 0:
                    counter.labels(*labels).inc(value)

    def record_tls(
        self,
        host: str,
        address: str,
        cert: CertificateInfo | None,
        valid: bool,
        chain: Sequence[CertificateInfo] = (),
    ) -> None:
        """Expiry and identity of what an address serves — also when it is invalid."""
        self.tls_cert_valid.labels(host, address).set(1.0 if valid else 0.0)
        self.tls_cert_served.labels(host, address).set(0.0 if cert is None else 1.0)
        if cert is None:
            return
        self.tls_not_after.labels(host, address).set(cert.not_after)
        if chain:
            self.tls_chain_not_after.labels(host, address).set(min(c.not_after for c in chain))
        else:
            with contextlib.suppress(KeyError):
                self.tls_chain_not_after.remove(host, address)
        labels = (host, address, cert.fingerprint_sha256, cert.serial, cert.issuer)
        previous = self._tls_info_labels.get((host, address))
        if previous is not None and previous != labels:
            # A rotated certificate: the old fingerprint must not linger.
            with contextlib.suppress(KeyError):
                self.tls_info.remove(*previous)
        self._tls_info_labels[(host, address)] = labels
        self.tls_info.labels(*labels).set(1)

    def record_client_certificate(self, target: str, cert: CertificateInfo) -> None:
        self.tls_client_not_after.labels(target).set(cert.not_after)

    def forget_tls_address(self, host: str, address: str) -> None:
        with contextlib.suppress(KeyError):
            self.tls_not_after.remove(host, address)
        with contextlib.suppress(KeyError):
            self.tls_chain_not_after.remove(host, address)
        with contextlib.suppress(KeyError):
            self.tls_cert_valid.remove(host, address)
        with contextlib.suppress(KeyError):
            self.tls_cert_served.remove(host, address)
        labels = self._tls_info_labels.pop((host, address), None)
        if labels is not None:
            with contextlib.suppress(KeyError):
                self.tls_info.remove(*labels)

    def set_alert(self, alert: str, tenant: str, check: str, severity: str, firing: bool) -> None:
        if firing:
            self.alerts_firing.labels(alert, tenant, check, severity).set(1)
        else:
            with contextlib.suppress(KeyError):
                self.alerts_firing.remove(alert, tenant, check, severity)

    def set_latency(
        self, tenant: str, check: str, p95: float | None, baseline: float | None
    ) -> None:
        if p95 is None and baseline is None:
            return
        row = self.series.row(tenant, check)
        if p95 is not None:
            row.p95 = p95
        if baseline is not None:
            row.baseline = baseline

    def tenants_seen(self) -> set[str]:
        """Tenants any per-tenant series exists for (also restored counters)."""
        return self.series.tenants()

    def size_for(self, tenants: int) -> None:
        """The tenant count, each time the tenant list is applied. With per-tenant histograms
        left to recmon, the first count decides them for the life of the process (switching
        later would break every rate() over the series)."""
        if not self._histograms_by_count:
            return
        self._histograms_by_count = False
        if tenants <= PER_TENANT_HISTOGRAMS_UP_TO:
            return
        self.per_tenant_histograms = False
        for key in [k for k in self._histograms if k[0] != ALL_TENANTS]:
            del self._histograms[key]
            with contextlib.suppress(KeyError):
                self.probe_duration.remove(*key)
        log.info(
            f"per-tenant latency histograms off: {tenants} tenants is above "
            f"{PER_TENANT_HISTOGRAMS_UP_TO} (one histogram per check instead; "
            "metrics.per_tenant_histograms: true keeps them on)",
            extra={"fields": {"tenants": tenants, "limit": PER_TENANT_HISTOGRAMS_UP_TO}},
        )

    def forget_tenant(self, tenant: str) -> None:
        """Drop every series of a tenant that is no longer probed."""
        self.series.forget(tenant)
        for key in [k for k in self._histograms if k[0] == tenant]:
            del self._histograms[key]
        per_tenant: list[MetricWrapperBase] = [self.alerts_firing]
        if self.per_tenant_histograms:
            per_tenant.append(self.probe_duration)
        for metric in per_tenant:
            _remove_matching(metric, "tenant", tenant)


def _observer(child: Histogram) -> Callable[[float], None]:
    """child.observe(amount) as a closure over the child's values: its bucket found by
    bisection (C), not Histogram.observe's observability check and Python walk over a dozen
    bounds on every probe (~1 us). The same values move (the sum and the first bucket whose
    bound is >= amount; cumulated at exposition). Reads prometheus_client's fields (_sum,
    _buckets, _upper_bounds: 0.26, pinned in pyproject.toml; tests/telemetry check that it
    counts as observe() does)."""
    add_sum = child._sum.inc
    bounds = tuple(child._upper_bounds)
    bumps = tuple(bucket.inc for bucket in child._buckets)
    past = len(bounds)

    def observe(amount: float) -> None:
        add_sum(amount)
        at = bisect.bisect_left(bounds, amount)
        # NaN: counted in the sum only, as observe() does (bisection would place it first).
        if at < past and amount == amount:
            bumps[at](1.0)

    return observe


def _remove_matching(metric: MetricWrapperBase, label: str, value: str) -> None:
    index = metric._labelnames.index(label)
    with metric._lock:
        stale = [key for key in metric._metrics if key[index] == value]
    for key in stale:
        metric.remove(*key)
