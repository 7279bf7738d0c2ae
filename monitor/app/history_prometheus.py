"""`recmon report --prometheus URL`: availability per tenant × check over a period from the
recording rules' source series (recmon_probes_total) in Prometheus, summed over every recmon
instance that reports there (shards, locations): one report for a whole fleet. Availability
only: impact, p95 and incidents live in each recmon's state file, and Prometheus does not
know maintenance windows (its figures count the probes inside them)."""

from __future__ import annotations

import math
from fnmatch import fnmatchcase

import httpx

from monitor.app.history_report import AvailabilityRow, ReportError

PROMETHEUS_NOTE = (
    "from Prometheus (recmon_probes_total, every instance and location summed): availability "
    "only, probes inside maintenance windows included"
)


def _query(client: httpx.Client, url: str, expr: str, at: float) -> dict[tuple[str, str], float]:
    try:
        response = client.get(f"{url.rstrip('/')}/api/v1/query", params={"query": expr, "time": at})
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ReportError(f"Prometheus at {url} did not answer: {exc}") from exc
    if response.status_code != 200 or body.get("status") != "success":
        raise ReportError(
            f"Prometheus at {url} refused the query: {body.get('error', response.status_code)}"
        )
    values = {}
    for item in body["data"]["result"]:
        labels = item["metric"]
        values[(labels.get("tenant", ""), labels.get("check", ""))] = float(item["value"][1])
    return values


def prometheus_availability(
    url: str,
    since: float,
    until: float,
    *,
    tenants: str = "*",
    transport: httpx.BaseTransport | None = None,
) -> tuple[AvailabilityRow, ...]:
    """Good probes over probes per tenant × check in [since, until], as increase() gives them
    (Prometheus extrapolates a range to its ends: figures are rounded to whole probes)."""
    seconds = max(1, round(until - since))
    total_expr = f"sum by (tenant, check) (increase(recmon_probes_total[{seconds}s]))"
    ok_expr = f'sum by (tenant, check) (increase(recmon_probes_total{{outcome="ok"}}[{seconds}s]))'
    with httpx.Client(transport=transport, timeout=30, follow_redirects=False) as client:
        totals = _query(client, url, total_expr, until)
        good = _query(client, url, ok_expr, until)
    rows = []
    for (tenant, check), probes in sorted(totals.items()):
        if not fnmatchcase(tenant, tenants) or not math.isfinite(probes):
            continue
        ok = good.get((tenant, check), 0.0)
        pct = round(100 * ok / probes, 4) if probes else None
        rows.append(AvailabilityRow(tenant, check, round(probes), round(ok), 0, pct))
    return tuple(rows)
