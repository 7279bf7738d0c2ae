"""CronJob mode against a real Pushgateway: each run replaces its group, counters continue
across runs, series of removed tenants disappear, no histograms are pushed."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.sandbox.server import Sandbox
from tests.binaries import free_port, require_binary, running

pytestmark = pytest.mark.integration


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    binary = require_binary("prometheus-pushgateway")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        ready_url=f"{url}/-/ready",
        log=tmp_path / "pgw.log",
    ):
        yield url


@pytest.fixture
def sandbox_tenants() -> int:
    return 5


def config(tmp_path: Path, sandbox: Sandbox, gateway: str) -> Path:
    path = tmp_path / "probes.yaml"
    path.write_text(
        f"""
defaults: {{interval: 60s, timeout: 2s}}
targets:
  sandbox: {{base_url: "{sandbox.url}"}}
tenants:
  file: tenants.txt
  default_vars: {{query: shoes}}
checks:
  search:
    target: sandbox
    request: {{path: "/v1/{{tenant}}/search", params: {{q: "{{query}}"}}}}
    expect: {{items: "$.results"}}
metrics: {{pushgateway: "{gateway}"}}
"""
    )
    return path


async def once(config: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "once",
        "--quiet",
        "--config",
        str(config),
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()[-3000:]


async def pushed(gateway: str) -> tuple[dict[tuple[str, str], float], set[str], int]:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{gateway}/metrics")).text
        groups = (await client.get(f"{gateway}/api/v1/metrics")).json()["data"]
    probes = {}
    names = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("job") == "recmon":
                names.add(sample.name)
            if sample.name == "recmon_probes_total":
                assert sample.labels["job"] == "recmon" and sample.labels["shard"] == "0-of-1"
                probes[(sample.labels["tenant"], sample.labels["outcome"])] = sample.value
    return probes, names, len(groups)


async def test_runs_replace_their_group_and_removed_tenants_vanish(
    tmp_path: Path, sandbox: Sandbox, pushgateway: str
) -> None:
    path = config(tmp_path, sandbox, pushgateway)
    (tmp_path / "tenants.txt").write_text("tenant-001\ntenant-002\ntenant-003\n")
    await once(path)
    probes, names, groups = await pushed(pushgateway)
    assert probes == {("tenant-001", "ok"): 1, ("tenant-002", "ok"): 1, ("tenant-003", "ok"): 1}
    assert groups == 1
    assert not any(n.startswith("recmon_probe_duration_seconds") for n in names)  # no histograms
    assert "recmon_probe_success" in names

    (tmp_path / "tenants.txt").write_text("tenant-001\ntenant-002\n")
    await once(path)
    probes, _, groups = await pushed(pushgateway)
    assert probes == {
        ("tenant-001", "ok"): 2,
        ("tenant-002", "ok"): 2,
    }  # continued, and tenant-003 gone
    assert groups == 1  # replaced, not piled up
