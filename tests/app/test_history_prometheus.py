"""`recmon report --prometheus`: what it asks Prometheus, and a clear error when Prometheus
refuses or is not there."""

from __future__ import annotations

import httpx
import pytest

from monitor.app.history_prometheus import prometheus_availability
from monitor.app.history_report import ReportError
from monitor.cli import main
from tests.binaries import free_port


def answer(request: httpx.Request) -> httpx.Response:
    query = request.url.params["query"]
    assert float(request.url.params["time"]) == 7200
    assert "[3600s]" in query  # the period, as one range
    ok = 'outcome="ok"' in query
    result = [
        {"metric": {"tenant": "acme", "check": "search"}, "value": [7200, "50" if ok else "60"]},
        {"metric": {"tenant": "globex", "check": "search"}, "value": [7200, "60"]},
    ]
    if ok:
        result.pop()  # globex had no good probe: no ok series at all
    return httpx.Response(200, json={"status": "success", "data": {"result": result}})


def test_availability_per_tenant_from_two_queries() -> None:
    rows = prometheus_availability(
        "http://prom.test", 3600, 7200, transport=httpx.MockTransport(answer)
    )
    assert [(r.tenant, r.probes, r.good, r.availability_pct) for r in rows] == [
        ("acme", 60, 50, 83.3333),
        ("globex", 60, 0, 0.0),
    ]
    only = prometheus_availability(
        "http://prom.test", 3600, 7200, tenants="glob*", transport=httpx.MockTransport(answer)
    )
    assert [r.tenant for r in only] == ["globex"]


def test_a_refused_query_is_a_clear_error() -> None:
    refuse = httpx.MockTransport(
        lambda r: httpx.Response(400, json={"status": "error", "error": "parse error"})
    )
    with pytest.raises(ReportError, match="refused the query: parse error"):
        prometheus_availability("http://prom.test", 0, 60, transport=refuse)


def test_no_prometheus_is_one_line_and_exit_2(capsys) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["report", "--prometheus", url, "--from", "2026-11-01"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"recmon report: Prometheus at {url} did not answer")
    assert len(err.strip().splitlines()) == 1
