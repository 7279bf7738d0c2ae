"""Real Prometheus scrapes a running `recmon run` (sandbox, a TLS backend, a webhook): every
recording rule and every Grafana panel query returns data."""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml

from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import SandboxSettings, serve_sandbox
from monitor.telemetry.asgiserve import serve_asgi
from tests.binaries import free_port, require_binary, running
from tests.fakes import RecordingEndpoint
from tests.helpers import FAST
from tests.integration.test_tls_backends import HOST, Backends
from tests.tlscerts import CertificateAuthority

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def panel_queries() -> dict[str, list[str]]:
    spec = importlib.util.spec_from_file_location(
        "recmon_dashboard", ROOT / "deploy" / "grafana" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build()
    # The Locations row needs recmon at several locations: test_locations.py runs those.
    return {t: q for t, q in module.PANEL_QUERIES.items() if t not in module.LOCATION_PANELS}


# Recording rules that have data only in another scenario, and where that is tested: a
# recmon with `location` set, an instance down (RecmonDown's promtool tests and
# test_locations.py), recmon falling behind its schedule (RecmonOverloaded's promtool tests).
OTHER_SCENARIOS = {
    "instance:recmon_location:info",
    "location:recmon_instances_down:count",
    "instance:recmon_runs_skipped:ratio_5m",
    "instance:recmon_runs_late:ratio_5m",
    "instance:recmon_runs_interval:factor_5m",
}
# A check whose every answer fails a condition: wrong_content, counted by condition.
WRONG_CONTENT_CHECK = """  shape:
    target: sandbox
    request: {path: "/v1/{tenant}/search", params: {q: "{query}"}}
    expect:
      items: "$.results"
      conditions:
        - {name: ids-start-with-nope, path: "$.results[*].id", op: matches, value: "^nope-"}
"""


def recording_rules() -> list[str]:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "recmon-rules.yml").read_text())
    return [
        r["record"]
        for g in rules["groups"]
        for r in g["rules"]
        if "record" in r and r["record"] not in OTHER_SCENARIOS
    ]


def grafana_to_promql(expr: str) -> str:
    """The panel's query as Prometheus runs it — without a trailing `or vector(0)`, which
    would return data whatever recmon exports."""
    expr = expr.removesuffix(" or vector(0)")
    return expr.replace("$tenant", ".*").replace("$check", ".*").replace("$__rate_interval", "1m")


@pytest.fixture
async def tls_backend(tmp_path: Path) -> AsyncIterator[tuple[str, list[str], Path]]:
    ca = CertificateAuthority(tmp_path)
    backends = Backends(["127.0.0.2"])
    await backends.serve("127.0.0.2", ca.issue("leaf"))
    yield f"{HOST}:{backends.port}", backends.addresses, ca.pem
    await backends.stop("127.0.0.2")


def prometheus_scraping_recmon(tmp_path: Path, recmon_port: int, prom_port: int) -> list[str]:
    """The command line of a real Prometheus on `prom_port` that scrapes recmon every second
    and evaluates the shipped recmon-rules.yml (its configuration written to tmp_path)."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [
                    str(ROOT / "deploy" / "prometheus" / name)
                    for name in ("recmon-rules.yml", "recmon-history.yml")
                ],
                "scrape_configs": [
                    {
                        "job_name": "recmon",
                        "static_configs": [{"targets": [f"127.0.0.1:{recmon_port}"]}],
                    }
                ],
            }
        )
    )
    return [
        require_binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
    ]


async def query(client: httpx.AsyncClient, prometheus: str, expr: str) -> list[object]:
    response = await client.get(f"{prometheus}/api/v1/query", params={"query": expr})
    body = response.json()
    assert body["status"] == "success", f"{expr}: {body}"
    return list(body["data"]["result"])


async def test_every_panel_and_recording_rule_returns_data(
    tmp_path: Path, tls_backend: tuple[str, list[str], Path]
) -> None:
    hostport, addresses, ca_pem = tls_backend
    webhook = RecordingEndpoint(status=200)
    recmon_port, prom_port = free_port(), free_port()
    async with (
        serve_sandbox(SandboxSettings(tenants=5, latency_ms=dict(FAST))) as sandbox,
        serve_asgi(webhook, "127.0.0.1", 0) as hook,
    ):
        sandbox.faults.set("tenant-002", "recommendations", Fault(empty=True))
        # A refused credential (the auth_error panels) and recmon's own client certificate
        # for an mTLS target no check uses (the client-certificate panel).
        sandbox.faults.set("tenant-003", "search", Fault(status=401))
        (tmp_path / "client").mkdir()
        client = CertificateAuthority(tmp_path / "client", "client CA").issue("recmon-client")
        config = tmp_path / "probes.yaml"
        config.write_text(
            sandbox_config(sandbox.url, interval=1, timeout=1).replace(
                "targets:\n",
                "targets:\n  internal:\n    base_url: https://127.0.0.1:9\n"
                f"    tls: {{cert_file: {client.cert_pem}, key_file: {client.key_pem}}}\n",
            )
            + WRONG_CONTENT_CHECK
            + f"""
alerts:
  storm: {{group_wait: 1s}}
  latency_drift: {{baseline: 50ms}}
tls:
  hosts: ["{hostport}"]
  addresses: {{"{hostport}": {addresses}}}
  ca_file: {ca_pem}
  interval: 2s
notify:
  webhook: {{url: "{hook.url}/hook"}}
"""
        )
        recmon_log = tmp_path / "recmon.log"
        recmon = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor",
            "run",
            "--config",
            str(config),
            "--listen",
            f"127.0.0.1:{recmon_port}",
            # A file, not a pipe nobody reads for a minute: a full pipe would stall recmon.
            stderr=recmon_log.open("wb"),
        )
        prometheus = f"http://127.0.0.1:{prom_port}"
        args = prometheus_scraping_recmon(tmp_path, recmon_port, prom_port)
        try:
            with running(args, ready_url=f"{prometheus}/-/ready", log=tmp_path / "prometheus.log"):
                async with httpx.AsyncClient() as client:
                    wanted = {
                        title: [grafana_to_promql(e) for e in exprs]
                        for title, exprs in panel_queries().items()
                    }
                    wanted["recording rules"] = recording_rules()
                    missing: dict[str, str] = {}
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:
                        missing = {}
                        for title, exprs in wanted.items():
                            for expr in exprs:
                                if not await query(client, prometheus, expr):
                                    missing[expr] = title
                        if not missing:
                            break
                        await asyncio.sleep(1)
                    assert missing == {}, f"queries without data: {missing}"
                    assert webhook.received, "the alert was delivered to the webhook"
        finally:
            recmon.send_signal(signal.SIGTERM)
            await asyncio.wait_for(recmon.wait(), 30)
            assert recmon.returncode == 0, recmon_log.read_text()[-3000:]
