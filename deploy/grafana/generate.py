"""Generate the recmon Grafana dashboard with the official grafana-foundation-sdk.

    python deploy/grafana/generate.py            # rewrite deploy/grafana/recmon.json
    python deploy/grafana/generate.py --check    # exit 1 if the committed JSON is stale

The JSON is loadable by Grafana file provisioning (deploy/grafana/provisioning/).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    DataTransformerConfig,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)

OUTPUT = Path(__file__).resolve().parent / "recmon.json"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
SELECT = 'tenant=~"$tenant", check=~"$check"'


def query(
    expr: str, legend: str = "", *, instant: bool = False, ref: str = "A"
) -> prometheus.Dataquery:
    q = (
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend or "__auto")
        .ref_id(ref)
        .datasource(DATASOURCE)
    )
    if instant:
        q = q.instant().format("table")  # type: ignore[arg-type]
    return q


def thresholds(*steps: tuple[float | None, str]) -> ThresholdsConfig:
    return (
        ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


# Every panel query, by title: the real-Prometheus test runs each of these.
PANEL_QUERIES: dict[str, list[str]] = {}
# Panels with data only when recmon runs at several locations (tests/integration/
# test_locations.py runs these; the single-site dashboard test leaves them out).
LOCATION_PANELS: set[str] = set()


def _register(title: str, exprs: list[str]) -> int:
    """Record a panel's queries; its id is its position (stable across regenerations)."""
    if title in PANEL_QUERIES:
        raise ValueError(f"duplicate panel title {title!r}")
    PANEL_QUERIES[title] = exprs
    return len(PANEL_QUERIES)


def series(title: str, description: str, unit: str, *targets: tuple[str, str]) -> timeseries.Panel:
    panel_id = _register(title, [expr for expr, _ in targets])
    panel = (
        timeseries.Panel()
        .id(panel_id)
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
    )
    for i, (expr, legend) in enumerate(targets):
        panel = panel.with_target(query(expr, legend, ref=chr(ord("A") + i)))
    return panel.height(8).span(12)


def single(
    title: str, description: str, expr: str, unit: str, steps: ThresholdsConfig
) -> stat.Panel:
    return (
        stat.Panel()
        .id(_register(title, [expr]))
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .with_target(query(expr, instant=True))
        .thresholds(steps)
        .height(4)
        .span(6)
    )


def listing(title: str, description: str, expr: str, unit: str = "short") -> table.Panel:
    return (
        table.Panel()
        .id(_register(title, [expr]))
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .with_target(query(expr, instant=True))
        .height(8)
        .span(12)
    )


def matrix(title: str, description: str, expr: str, rows: str, columns: str) -> table.Panel:
    """A table of one value per (rows, columns) label pair: tenants down, locations across."""
    return (
        listing(title, description, expr, "percentunit")
        .with_transformation(
            DataTransformerConfig(
                id_val="groupingToMatrix",
                options={"rowField": rows, "columnField": columns, "valueField": "Value"},
            )
        )
        .span(24)
        .height(10)
    )


_ROWS: list[str] = []


def row(title: str) -> Row:
    _ROWS.append(title)
    return Row(title).id(100 + len(_ROWS))


def build() -> Dashboard:
    _ROWS.clear()
    PANEL_QUERIES.clear()
    LOCATION_PANELS.clear()
    return (
        Dashboard("recmon: tenants, latency, empty results, certificates")
        .uid("recmon-overview")
        .tags(["recmon", "synthetic-monitoring"])
        .description("Per-tenant synthetic probes of search and recommendations (recmon).")
        .refresh("1m")
        .time("now-6h", "now")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_variable(
            QueryVariable("tenant")
            .label("Tenant")
            .datasource(DATASOURCE)
            .query("label_values(recmon_probes_total, tenant)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
        .with_variable(
            QueryVariable("check")
            .label("Check")
            .datasource(DATASOURCE)
            .query("label_values(recmon_probes_total, check)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
        .with_row(row("Fleet now"))
        .with_panel(
            single(
                "Tenants probed",
                "Tenants this recmon fleet probes.",
                "sum(recmon_tenants)",
                "short",
                thresholds((None, "blue")),
            )
        )
        .with_panel(
            single(
                "Tenants failing now",
                "Tenants whose last probe of a selected check was not ok.",
                f"count(count by (tenant) (recmon_probe_success{{{SELECT}}} == 0)) or vector(0)",
                "short",
                thresholds((None, "green"), (1, "red")),
            )
        )
        .with_panel(
            single(
                "Alerts firing",
                "recmon alerts firing now (paged or grouped).",
                "sum(recmon_alerts_firing) or vector(0)",
                "short",
                thresholds((None, "green"), (1, "red")),
            )
        )
        .with_panel(
            single(
                "Event loop lag",
                "How late recmon's own event loop runs; above 50 ms recmon withholds latencies.",
                "max(recmon_event_loop_lag_seconds)",
                "s",
                thresholds((None, "green"), (0.05, "orange"), (0.25, "red")),
            )
        )
        .with_row(row("Latency"))
        .with_panel(
            series(
                "p95 latency per tenant against its baseline",
                "Short-window p95 of each tenant × check, dashed against the p95 baseline recmon learned for it.",
                "s",
                (f"recmon_latency_p95_seconds{{{SELECT}}}", "{{tenant}} {{check}} p95"),
                (
                    f"recmon_latency_baseline_p95_seconds{{{SELECT}}}",
                    "{{tenant}} {{check}} baseline",
                ),
            )
        )
        .with_panel(
            series(
                "p95 latency per check (all tenants)",
                "From the probe duration histogram (recording rule check:recmon_probe_duration_seconds:p95_5m).",
                "s",
                ('check:recmon_probe_duration_seconds:p95_5m{check=~"$check"}', "{{check}}"),
            )
        )
        .with_row(row("Results"))
        .with_panel(
            series(
                "Empty-result share per tenant",
                "Share of probes answering a valid response with too few items (recommendations missing).",
                "percentunit",
                (f"tenant_check:recmon_probes_empty:ratio_5m{{{SELECT}}}", "{{tenant}} {{check}}"),
            )
        )
        .with_panel(
            series(
                "Outcomes over time",
                "Probes per second by outcome: ok, empty, http_error, auth_error, timeout, connect_error, tls_error, invalid_body, wrong_content.",
                "reqps",
                (
                    f"sum by (outcome) (rate(recmon_probes_total{{{SELECT}}}[$__rate_interval]))",
                    "{{outcome}}",
                ),
            )
        )
        .with_panel(
            series(
                "Credentials rejected (auth_error)",
                "Share of probes whose credentials were refused (401/403, a refused token or client certificate), per tenant; by whose credential: the tenant's key, recmon's shared credentials, or none sent. Not a platform outage.",
                "percentunit",
                (
                    f"tenant_check:recmon_probes_auth_error:ratio_5m{{{SELECT}}} > 0",
                    "{{tenant}} {{check}}",
                ),
                (
                    'sum by (check, credential) (rate(recmon_probe_auth_errors_total{check=~"$check"}[$__rate_interval]))',
                    "{{check}} {{credential}} credential refused/s",
                ),
            )
        )
        .with_panel(
            series(
                "Wrong content (condition failures)",
                "Probes answered with items whose content failed a condition (wrong_content): a renamed field, a changed type, another tenant's items. By check and condition (expect.conditions; schema for expect.schema).",
                "reqps",
                (
                    'sum by (check, condition) (rate(recmon_probe_condition_failures_total{check=~"$check"}[$__rate_interval]))',
                    "{{check}} {{condition}}",
                ),
            )
        )
        .with_panel(
            listing(
                "Failing tenant × check",
                "Every tenant × check whose last probe was not ok.",
                f"recmon_probe_success{{{SELECT}}} == 0",
            )
        )
        .with_panel(
            listing(
                "Alerts firing by tenant",
                "recmon's firing alerts by rule, tenant, check and severity.",
                "recmon_alerts_firing == 1",
            )
        )
        .with_row(row("Certificates"))
        .with_panel(
            listing(
                "Certificate expiry per backend (days)",
                "Days until the certificate served by each backend address expires; also reported for expired certificates.",
                "(recmon_tls_cert_not_after_timestamp_seconds - time()) / 86400",
                "d",
            )
        )
        .with_panel(
            listing(
                "recmon's client certificates (days left)",
                "Days until the client certificate recmon presents for mTLS to each target expires; the server refuses every probe once it has.",
                "(recmon_tls_client_cert_not_after_timestamp_seconds - time()) / 86400",
                "d",
            )
        )
        .with_panel(
            listing(
                "Certificate served per backend",
                "Fingerprint, serial and issuer per address: more than one fingerprint per host means a rotation did not reach every backend.",
                "recmon_tls_cert_info",
            )
        )
        .with_row(row("Monitor health"))
        .with_panel(
            series(
                "Notification deliveries",
                "Deliveries to PagerDuty, Alertmanager and webhooks by result (delivered, retry, rejected).",
                "ops",
                (
                    "sum by (sink, result) (rate(recmon_notifications_total[$__rate_interval]))",
                    "{{sink}} {{result}}",
                ),
            )
        )
        .with_panel(
            series(
                "Event loop and schedule lag",
                "recmon's own timeliness: event loop lag and the p99 delay from a probe's slot to its start.",
                "s",
                ("max(recmon_event_loop_lag_seconds)", "event loop lag"),
                (
                    "histogram_quantile(0.99, sum by (le) (rate(recmon_schedule_lag_seconds_bucket[$__rate_interval])))",
                    "schedule lag p99",
                ),
            )
        )
        .with_row(row("Locations"))
        .with_panel(
            located(
                matrix(
                    "OK share, tenant × location",
                    "Share of each tenant's probes that were ok over 5 minutes, as seen from each location (recmon's `location`). A column low for every tenant is that location's network, DNS or ingress; a row low everywhere is the tenant; everything low is the platform (deploy/prometheus/recmon-locations.yml pages each).",
                    f'sum by (tenant, location) (rate(recmon_probes_total{{outcome="ok", location!="", {SELECT}}}[5m])) / sum by (tenant, location) (rate(recmon_probes_total{{location!="", {SELECT}}}[5m]))',
                    "tenant",
                    "location",
                )
            )
        )
        .with_panel(
            located(
                series(
                    "Failing share per location",
                    "Share of probes that were not ok, per location: one location apart from the others is a location problem.",
                    "percentunit",
                    (
                        f'1 - sum by (location) (rate(recmon_probes_total{{outcome="ok", location!="", {SELECT}}}[$__rate_interval])) / sum by (location) (rate(recmon_probes_total{{location!="", {SELECT}}}[$__rate_interval]))',
                        "{{location}}",
                    ),
                )
            )
        )
        .with_panel(
            located(
                single(
                    "Locations reporting",
                    "Locations whose recmon sends probe results now, of those expected (recmon-locations.yml's lookback); fewer is RecmonLocationNotReporting.",
                    "count(location:recmon_reporting)",
                    "short",
                    thresholds((None, "red"), (2, "orange"), (3, "green")),
                )
            )
        )
        .with_row(row("Availability"))
        .with_panel(
            matrix(
                "Availability, last day, tenant × check",
                "Share of probes that were ok over the last 24 hours per tenant × check, summed over every recmon instance and location (deploy/prometheus/recmon-history.yml; `recmon report` gives the same figure from the state file, maintenance excluded).",
                f"tenant_check:recmon_availability:ratio_1d{{{SELECT}}}",
                "tenant",
                "check",
            )
        )
        .with_panel(
            series(
                "Availability per hour",
                "Share of probes that were ok over the last hour, per tenant × check (recmon-history.yml's tenant_check:recmon_availability:ratio_1h).",
                "percentunit",
                (f"tenant_check:recmon_availability:ratio_1h{{{SELECT}}}", "{{tenant}} {{check}}"),
            )
        )
    )


def located(panel: Any) -> Any:
    """Mark the panel just built as one for several locations."""
    LOCATION_PANELS.add(list(PANEL_QUERIES)[-1])
    return panel


def render() -> str:
    return json.dumps(build().build(), cls=JSONEncoder, sort_keys=True, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if recmon.json is not up to date"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run python deploy/grafana/generate.py", file=sys.stderr)
            return 1
        print(f"{OUTPUT} is up to date")
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
