"""The README's first command, shortened: the demo shows every tenant probed, then the faulted
tenants' outcomes change and they page, then they recover."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def phase(output: str, title: str) -> str:
    return output.split(f"== {title}", 1)[1].split("\n== ", 1)[0]


def row(table: str, tenant: str) -> str:
    return next(line for line in table.splitlines() if line.startswith(tenant))


def test_demo_shows_tenants_probed_then_faults_then_recovery() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "demo", "--interval", "1", "--rounds", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "status page: http://127.0.0.1:" in out  # 9464, or a free port when that is taken
    # The last table of each phase: by then every tenant was probed under its conditions.
    healthy = phase(out, "healthy").strip().split("\n\n")[-1]
    for i in range(1, 9):
        assert row(healthy, f"tenant-00{i}").split().count("ok") == 2, healthy
    broken = phase(out, "fault on")
    last_table = broken.strip().split("\n\n")[-1]
    assert "empty" in row(last_table, "tenant-002") and "empty" in row(last_table, "tenant-005")
    assert "http_error" in row(last_table, "tenant-007")
    assert "ok" in row(last_table, "tenant-001")
    assert "page trigger: recommendations returned no items for tenant-002" in broken
    recovered = phase(out, "faults cleared").strip().split("\n\n")[-2]
    assert all(row(recovered, f"tenant-00{i}").split().count("ok") == 2 for i in range(1, 9)), (
        recovered
    )
