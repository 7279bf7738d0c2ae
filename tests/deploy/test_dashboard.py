"""The committed Grafana dashboard is exactly what the generator produces, and sound."""

from __future__ import annotations

import importlib.util
import json
import re
from types import ModuleType

from tests.helpers import ROOT

GRAFANA = ROOT / "deploy" / "grafana"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("recmon_dashboard", GRAFANA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_json_is_what_the_generator_produces() -> None:
    gen = generator()
    assert (GRAFANA / "recmon.json").read_text() == gen.render()
    assert gen.main(["--check"]) == 0


def test_dashboard_has_variables_unique_ids_and_a_datasource_everywhere() -> None:
    dashboard = json.loads((GRAFANA / "recmon.json").read_text())
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "tenant", "check"} <= variables
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]


def test_panels_cover_what_operators_need() -> None:
    gen = generator()
    gen.build()
    exprs = "\n".join(e for queries in gen.PANEL_QUERIES.values() for e in queries)
    for metric in (
        "recmon_latency_p95_seconds",
        "recmon_latency_baseline_p95_seconds",
        "tenant_check:recmon_probes_empty:ratio_5m",
        "recmon_probes_total",
        "recmon_probe_success",
        "tenant_check:recmon_probes_auth_error:ratio_5m",
        "recmon_probe_auth_errors_total",
        "recmon_tls_client_cert_not_after_timestamp_seconds",
        "recmon_tls_cert_not_after_timestamp_seconds",
        "recmon_tls_cert_info",
        "recmon_alerts_firing",
        "recmon_notifications_total",
        "recmon_event_loop_lag_seconds",
    ):
        assert metric in exprs, metric
    # rate() before sum, le kept in every histogram_quantile (docs/ARCHITECTURE.md)
    for expr in re.findall(r"histogram_quantile\(.*", exprs):
        assert "by (le" in expr and "rate(" in expr


def test_a_row_shows_tenants_by_locations() -> None:
    dashboard = json.loads((GRAFANA / "recmon.json").read_text())
    titles = [p["title"] for p in dashboard["panels"]]
    assert "Locations" in titles
    (grid,) = [p for p in dashboard["panels"] if p["title"] == "OK share, tenant × location"]
    (transformation,) = grid["transformations"]
    assert transformation["id"] == "groupingToMatrix"
    assert transformation["options"]["rowField"] == "tenant"
    assert transformation["options"]["columnField"] == "location"
    gen = generator()
    gen.build()
    assert "OK share, tenant × location" in gen.LOCATION_PANELS
