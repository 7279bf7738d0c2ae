"""Secrets never leak: every output recmon produces is searched for the values it holds —
logs (JSON, debug level), /metrics, /healthz, /readyz, /status, the status page (/, a tenant's
page, the in-place refresh), the results log, the state file, error messages and the
configuration dump."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import Sandbox, SandboxSettings, serve_sandbox
from monitor.telemetry.asgiserve import serve_asgi
from tests.binaries import free_port, tinyproxy
from tests.fakes import RecordingEndpoint
from tests.integration.recmonproc import RecmonProcess

pytestmark = pytest.mark.integration
FAST = {"search": 5.0, "recommendations": 5.0}
SECRETS = {
    "API_TOKEN": "tok-7f3a9c1e55d2",
    "PD_KEY": "rk-b4e1d0c9a8f7",
    "HOOK_TOKEN": "wh-19c7e3a2b6d5",
    "PROXY_PASSWORD": "px-5e8d2b7a9c41",
}


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    settings = SandboxSettings(tenants=3, latency_ms=dict(FAST), token=SECRETS["API_TOKEN"])
    async with serve_sandbox(settings) as served:
        yield served


def config_text(sandbox: Sandbox, pagerduty: str, proxy: str) -> str:
    text = sandbox_config(sandbox.url, interval=1, timeout=1)
    with_password = proxy.replace("http://", "http://alice:${PROXY_PASSWORD}@")
    text = text.replace(
        "    rate_limit: 200/s",
        '    rate_limit: 200/s\n    headers: {Authorization: "Bearer ${API_TOKEN}"}'
        f"\n    proxy: {with_password}",
    )
    text = text.replace(
        "refresh: 10m}", 'refresh: 10m, headers: {Authorization: "Bearer ${API_TOKEN}"}}'
    )
    return (
        text
        + f"""
alerts: {{storm: {{group_wait: 1s}}}}
notify:
  pagerduty: {{routing_key: "${{PD_KEY}}", url: "{pagerduty}/v2/enqueue"}}
  webhook: {{url: "http://127.0.0.1:{free_port()}/hook", headers: {{X-Token: "${{HOOK_TOKEN}}"}}}}
  delivery: {{backoff_initial: 0.2s, backoff_max: 0.5s}}
"""
    )


async def run_cli(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "--log-level",
        "debug",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **SECRETS},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return out.decode(errors="replace") + err.decode(errors="replace")


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real proxy that wants the password: the probes go through it."""
    with tinyproxy(tmp_path, settings=f"BasicAuth alice {SECRETS['PROXY_PASSWORD']}\n") as running:
        yield running


async def test_no_output_contains_a_secret(
    sandbox: Sandbox, proxy: tuple[str, Path], tmp_path: Path
) -> None:
    pagerduty = RecordingEndpoint(status=503)
    outputs: dict[str, str] = {}
    proxy_url, proxy_log = proxy
    async with serve_asgi(pagerduty, "127.0.0.1", 0) as pd:
        config = tmp_path / "probes.yaml"
        config.write_text(config_text(sandbox, pd.url, proxy_url))
        sandbox.faults.set("tenant-002", "recommendations", Fault(empty=True))
        results = tmp_path / "results.jsonl"
        recmon = RecmonProcess(config, env=SECRETS, args=["--results-log", str(results)])
        await recmon.start()
        try:
            await recmon.wait_for_log("delivery failed, will retry")  # both sinks fail for a while
            await asyncio.sleep(1)
            pagerduty.status = 202
            await recmon.wait_for(lambda: pagerduty.received, "the page")
            for path in (
                "/metrics",
                "/healthz",
                "/readyz",
                "/status",
                "/",
                "/tenants/tenant-002",
                "/ui/live",
                "/nowhere",
            ):
                outputs[path] = (await recmon.get(path)).text
        finally:
            assert await recmon.stop() == 0
        outputs["logs"] = "\n".join(recmon.stderr_lines)
        outputs["results log"] = results.read_text()
        outputs["state file"] = (tmp_path / "recmon-state.db").read_bytes().decode("latin-1")
        outputs["dump"] = await run_cli("check-config", "--dump", str(config))
        outputs["once"] = await run_cli("once", "--flush-timeout", "1", "--config", str(config))
        broken = tmp_path / "broken.yaml"
        broken.write_text(
            config.read_text().replace(f"base_url: {sandbox.url}", "base_url: ${API_TOKEN}")
        )
        outputs["config error"] = await run_cli("check-config", str(broken))

    # The secrets were really in use: the sandbox demanded the token, PagerDuty got the key,
    # the proxy carried the probes (it refuses any request without the password).
    assert pagerduty.received[0]["body"]["routing_key"] == SECRETS["PD_KEY"]
    assert "/v1/tenant-001/search" in proxy_log.read_text()
    assert '"tenants": 3' in outputs["/status"]
    # The page and /status carry what the sinks answered and the incident, where a secret
    # could have slipped in.
    assert '"name": "pagerduty"' in outputs["/status"]
    assert "tenant-002" in outputs["/"] and "pagerduty" in outputs["/"]
    assert "Recent probes" in outputs["/tenants/tenant-002"]
    assert "targets.sandbox.base_url" in outputs["config error"]
    assert "[REDACTED]" in outputs["dump"]
    for name, text in outputs.items():
        assert text, f"{name} produced nothing: the check would prove nothing"
        for secret in SECRETS.values():
            assert secret not in text, f"{secret!r} leaked into {name}"
