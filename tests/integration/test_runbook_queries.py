"""Every query the runbooks tell a responder to run returns data in the scenario it is for:
real Prometheus (with the shipped rules) scrapes a real `recmon run` probing the sandbox while
the faults each runbook is about are on — one tenant empty, one refused, one answering 502, a
check whose TLS fails, a refused OAuth2 client, a backend serving an expired certificate
beside a valid one, recmon's client certificate, a sink that refuses and one that is down.
Every ```sh block of every runbook runs as a reader would paste it, against this sandbox and
recmon. The log lines the notification runbook quotes are checked in recmon's log of the same
run.
(The four cross-location runbooks run in test_locations.py, each in its scenario.)"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import SandboxSettings, serve_sandbox
from monitor.telemetry.asgiserve import serve_asgi
from tests.binaries import free_port, running
from tests.fakes import RecordingEndpoint
from tests.helpers import FAST
from tests.integration.recmonproc import RecmonProcess
from tests.integration.test_prometheus_dashboard import (
    WRONG_CONTENT_CHECK,
    prometheus_scraping_recmon,
)
from tests.runbooks import fill, pages, shell_blocks, without_data
from tests.tlsbackends import HOST, Backends
from tests.tlscerts import CertificateAuthority

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
LOCATION_PAGES = {
    "platform-outage.md",
    "tenant-problem.md",
    "location-problem.md",
    "location-not-reporting.md",
}
OAUTH2_CLIENT = ("recmon", "the-right-secret")
# What each runbook's placeholders are in this run's scenario for it.
SCENARIO: dict[str, dict[str, str]] = {
    "empty-results.md": {"tenant": "tenant-002", "check": "recommendations"},
    "credentials-rejected.md": {"tenant": "tenant-003", "check": "search"},
    "probe-failures.md": {"tenant": "tenant-004", "check": "search"},
    "error-rate.md": {"tenant": "tenant-004", "check": "search"},
    "latency-drift.md": {"tenant": "tenant-001", "check": "search"},
    "wrong-content.md": {"tenant": "tenant-001", "product": "tenant-001-p02"},
}
# Queries whose scenario this run cannot produce, and where it is tested instead.
ELSEWHERE = {
    # Needs an event loop running late (tests/integration/test_overload.py overloads recmon).
    "sum by (instance) (increase(recmon_timeouts_withheld_total[5m]))",
}


# What a command prints in its runbook's scenario (the fault the reader is chasing).
EXPECTED_OUTPUT = {
    "empty-results.md": "0\n",  # tenant-002's recommendations: no items
    "tenant-problem.md": "0\n",
    "probe-failures.md": "502\n",  # tenant-004's search
    "notifications-failing.md": '"sink":"webhook"',
    "tls-certificate-invalid.md": "notAfter=",
}


def run_script(script: str, api: str) -> subprocess.CompletedProcess[str]:
    """A runbook's sh block as a reader would paste it, `$API` set, recmon on the PATH."""
    env = {
        **os.environ,
        "API": api,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


@pytest.fixture
async def tls_backends(tmp_path: Path) -> AsyncIterator[tuple[str, list[str], Path]]:
    """Two backends of one host: a valid certificate and an expired one (a rotation that
    skipped a backend: invalid, expiring and inconsistent at once)."""
    ca = CertificateAuthority(tmp_path)
    backends = Backends(["127.0.0.2", "127.0.0.3"])
    await backends.serve("127.0.0.2", ca.issue("leaf"))
    await backends.serve("127.0.0.3", ca.issue("old", valid_from=-100, valid_days=90))
    yield f"{HOST}:{backends.port}", backends.addresses, ca.pem
    for address in backends.addresses:
        await backends.stop(address)


@pytest.fixture
async def untrusted_edge(tmp_path: Path) -> AsyncIterator[str]:
    """An HTTPS server whose certificate no client accepts (another CA, another name): the
    probes of a check through it end in tls_error."""
    (tmp_path / "edge").mkdir()
    issued = CertificateAuthority(tmp_path / "edge", "edge CA").issue("edge")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.cert_pem, issued.key_pem)

    async def close(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(close, "127.0.0.1", 0, ssl=context)
    yield f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()


async def test_every_runbook_query_returns_data_in_its_scenario(
    tmp_path: Path, tls_backends: tuple[str, list[str], Path], untrusted_edge: str
) -> None:
    hostport, addresses, ca_pem = tls_backends
    refusing = RecordingEndpoint(status=400)
    prom_port = free_port()
    secured_settings = SandboxSettings(
        tenants=5, latency_ms=dict(FAST), oauth2_client=OAUTH2_CLIENT
    )
    async with (
        serve_sandbox(SandboxSettings(tenants=5, latency_ms=dict(FAST))) as sandbox,
        serve_sandbox(secured_settings) as secured,
        serve_asgi(refusing, "127.0.0.1", 0) as hook,
    ):
        sandbox.faults.set("tenant-002", "recommendations", Fault(empty=True))
        sandbox.faults.set("tenant-003", "search", Fault(status=401))
        sandbox.faults.set("tenant-004", "search", Fault(status=502))
        (tmp_path / "client").mkdir()
        client = CertificateAuthority(tmp_path / "client", "client CA").issue("recmon-client")
        (tmp_path / "wrong-secret").write_text("not-the-secret\n")
        config = tmp_path / "probes.yaml"
        config.write_text(
            sandbox_config(sandbox.url, interval=1, timeout=1).replace(
                "targets:\n",
                f"""targets:
  internal:
    base_url: https://127.0.0.1:9
    tls: {{cert_file: {client.cert_pem}, key_file: {client.key_pem}}}
  edge:
    base_url: {untrusted_edge}
  secured:
    base_url: {secured.url}
    oauth2:
      token_url: {secured.url}/oauth2/token
      client_id: {OAUTH2_CLIENT[0]}
      client_secret_file: wrong-secret
""",
            )
            + WRONG_CONTENT_CHECK
            + f"""  edge:
    target: edge
    request: {{path: "/"}}
  secured:
    target: secured
    request: {{path: "/v1/{{tenant}}/search", params: {{q: shoes}}}}
    expect: {{status: [200], items: "$.results", min_items: 1}}
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
  alertmanager: {{url: "http://127.0.0.1:{free_port()}"}}
"""
        )
        recmon = RecmonProcess(config)
        prometheus = f"http://127.0.0.1:{prom_port}"
        args = prometheus_scraping_recmon(tmp_path, recmon.port, prom_port)
        with running(args, ready_url=f"{prometheus}/-/ready", log=tmp_path / "prometheus.log"):
            await recmon.start()
            try:
                async with httpx.AsyncClient(timeout=5) as http:

                    async def query(expr: str) -> list[Any]:
                        response = await http.get(
                            f"{prometheus}/api/v1/query", params={"query": expr}
                        )
                        body = response.json()
                        assert body["status"] == "success", f"{expr}: {body}"
                        return list(body["data"]["result"])

                    runbooks = [p.name for p in pages() if p.name not in LOCATION_PAGES]
                    values = {"host": hostport}
                    missing: dict[str, list[str]] = {}
                    deadline = time.monotonic() + 90
                    while time.monotonic() < deadline:
                        missing = {}
                        for page in runbooks:
                            empty = await without_data(
                                query, page, {**values, **SCENARIO.get(page, {})}, ELSEWHERE
                            )
                            if empty:
                                missing[page] = empty
                        if not missing:
                            break
                        await asyncio.sleep(1)
                    outcomes = await query("sum by (check, outcome) (recmon_probes_total)")
                    assert missing == {}, f"runbook queries without data: {missing} {outcomes}"
                    messages = recmon.messages()
                    # notifications-failing.md's two log lines, as this run wrote them.
                    assert "notification rejected by the sink, not retried" in messages
                    assert "delivery failed, will retry" in messages
                    assert "OAuth2 token request failed" in messages

                    log = tmp_path / "recmon.log"
                    log.write_text("\n".join(recmon.stderr_lines) + "\n")
                    port = hostport.rsplit(":", 1)[1]
                    shell = {
                        **values,
                        "recmon": recmon.url,
                        "config": str(config),
                        "log": str(log),
                        "hostname": HOST,
                        "port": port,
                        "address": addresses[1],  # the backend still on the expired certificate
                        "location": "lab",
                        "tenant": "tenant-002",
                    }
                    ran = 0
                    for page in pages():
                        page_values = {**shell, **SCENARIO.get(page.name, {})}
                        expect_failure = page.name == "tls-backend-unreachable.md"
                        if expect_failure:
                            # Nothing listens there: the refusal is what the reader sees.
                            page_values["address"] = "127.0.0.4"
                        for script in shell_blocks(page):
                            done = await asyncio.to_thread(
                                run_script, fill(script, page_values), sandbox.url
                            )
                            said = done.stdout + done.stderr
                            ran += 1
                            if expect_failure:
                                assert done.returncode != 0 and "onnect" in said, (page, said)
                            else:
                                assert done.returncode == 0, (page.name, script, said)
                                assert done.stdout.strip() or "HTTP/1.1" in said, (page, said)
                            expected = EXPECTED_OUTPUT.get(page.name)
                            if expected:
                                assert expected in done.stdout, (page.name, done.stdout)
                    assert ran >= 9
            finally:
                assert await recmon.stop() == 0, "\n".join(recmon.stderr_lines[-30:])
