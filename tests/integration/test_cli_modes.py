"""The command line against the real sandbox: `recmon once` (CronJob) and `recmon run` (sidecar)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import Sandbox
from tests.binaries import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def sandbox_tenants() -> int:
    return 50


async def recmon(*args: str, within: float = 60) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), within)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def samples(path: Path, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_once_probes_every_tenant_and_check_and_reports_empty(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(sandbox_config(sandbox.url, timeout=2))
    metrics = tmp_path / "metrics.prom"
    sandbox.faults.set("tenant-007", "recommendations", Fault(empty=True))

    code, stdout, stderr = await recmon(
        "once", "--config", str(config), "--metrics-file", str(metrics)
    )
    assert code == 0, stderr  # one empty probe is not yet an alert
    probes = samples(metrics, "recmon_probes_total")
    tenants = {dict(labels)["tenant"] for labels in probes}
    assert len(tenants) == 50
    assert len(probes) == 100  # every tenant × check, one outcome each
    empty = {labels: v for labels, v in probes.items() if dict(labels)["outcome"] == "empty"}
    assert list(empty) == [
        (("check", "recommendations"), ("outcome", "empty"), ("tenant", "tenant-007"))
    ]
    assert "recommendations" in stdout and "tenant-007" in stdout

    # The CronJob's next run continues from the state file: the second empty probe fires,
    # counters continue, and the exit code says alerts are firing.
    code, stdout, stderr = await recmon(
        "once", "--config", str(config), "--metrics-file", str(metrics)
    )
    assert code == 1, stderr
    assert "empty_results" in stdout and "tenant-007" in stdout
    probes = samples(metrics, "recmon_probes_total")
    key = (("check", "recommendations"), ("outcome", "empty"), ("tenant", "tenant-007"))
    assert probes[key] == 2
    firing = samples(metrics, "recmon_alerts_firing")
    assert any(
        dict(k)["tenant"] == "tenant-007" and dict(k)["alert"] == "empty_results" for k in firing
    )
    assert (tmp_path / "recmon-state.db").exists()

    # As the Kubernetes CronJob runs it: alerts firing is not a failed Job.
    code, _, stderr = await recmon(
        "once", "--config", str(config), "--quiet", "--alerts-exit-code", "0"
    )
    assert code == 0, stderr


async def test_once_exits_2_on_a_broken_config(tmp_path: Path) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text("targets: {}\n")
    code, _, stderr = await recmon("once", "--config", str(config))
    assert code == 2
    assert "probes.yaml:1: targets:" in stderr


async def test_run_serves_metrics_health_and_stops_cleanly(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(sandbox_config(sandbox.url, interval=1, timeout=1))
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "--log-format",
        "json",
        "run",
        "--config",
        str(config),
        "--listen",
        f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(300):  # 30 s: recmon's start takes its share of a busy machine
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            assert (await client.get("/healthz")).status_code == 200
            await asyncio.sleep(1.5)  # one interval: every tenant probed
            text = (await client.get("/metrics")).text
            status = (await client.get("/status")).json()
        assert status["tenants"] == 50
        tenants = {
            s.labels["tenant"]
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "recmon_probes_total"
        }
        assert len(tenants) == 50
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, stderr.decode()[-2000:]
    lines = stderr.decode().strip().splitlines()
    entries = [json.loads(line) for line in lines]  # JSON lines, every one of them
    assert any(
        e["msg"] == f"recmon running: status page at http://127.0.0.1:{port}/" for e in entries
    )
    assert entries[-1]["msg"] == "recmon stopped"
    assert "recmon-state.db" in os.listdir(tmp_path)
