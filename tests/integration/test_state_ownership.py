"""A state file belongs to one shard and one process: through the command line, a second
process or another shard is refused with one line and exit 2, and the state is untouched."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.server import Sandbox
from tests.integration.recmonproc import RecmonProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def sandbox_tenants() -> int:
    return 6


async def recmon(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


def series_rows(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute("SELECT tenant, check_name, state FROM series").fetchall())


async def test_another_shard_on_the_same_file_is_refused_and_loses_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(sandbox_config(sandbox.url, timeout=2))
    state = tmp_path / "recmon-state.db"
    code, _ = await recmon("--log-level", "error", "once", str(config), "--shard", "0/2")
    assert code == 0
    before = series_rows(state)
    assert before  # shard 0/2 owns some of the 6 tenants
    code, stderr = await recmon("once", str(config), "--shard", "1/2")
    assert code == 2
    assert stderr.strip().splitlines() == [stderr.strip()], stderr
    assert "belongs to shard 0/2, this is shard 1/2" in stderr
    assert series_rows(state) == before


async def test_a_second_process_on_the_same_file_is_refused(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(sandbox_config(sandbox.url, interval=1, timeout=2))
    running = RecmonProcess(config)
    await running.start()
    try:
        assert running.process is not None
        code, stderr = await recmon("once", "--config", str(config))
        assert code == 2
        assert f"in use by another recmon process (pid {running.process.pid})" in stderr
        assert "Traceback" not in stderr
        assert (await running.get("/readyz")).status_code == 200  # the first one runs on
    finally:
        await running.stop()
    # Stopped, it saved its state, and the file is free again.
    assert series_rows(tmp_path / "recmon-state.db")
    code, _ = await recmon("--log-level", "error", "once", str(config))
    assert code == 0


async def test_the_results_log_is_readable_while_recmon_runs(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """`tail -f` on --results-log shows results as they happen, not at exit."""
    config = tmp_path / "probes.yaml"
    config.write_text(sandbox_config(sandbox.url, interval=1, timeout=1))
    results = tmp_path / "results.jsonl"
    running = RecmonProcess(config, args=["--results-log", str(results)])
    await running.start()
    try:
        await running.wait_for(
            lambda: results.exists() and len(results.read_text().splitlines()) >= 12,
            "12 results in the log",
        )
        assert running.process is not None and running.process.returncode is None
        first = json.loads(results.read_text().splitlines()[0])
        assert first["check"] in ("search", "recommendations")
    finally:
        await running.stop()
