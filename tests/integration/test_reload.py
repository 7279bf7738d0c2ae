"""Configuration reloads in `recmon run`: on file change and on SIGHUP; an invalid file keeps
the last good configuration running and says why."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.server import Sandbox, SandboxSettings, serve_sandbox
from tests.integration.recmonproc import RecmonProcess

pytestmark = pytest.mark.integration
FAST = {"search": 5.0, "recommendations": 5.0}


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve_sandbox(SandboxSettings(tenants=3, latency_ms=dict(FAST))) as served:
        yield served


async def checks(recmon: RecmonProcess) -> list[str]:
    return list((await recmon.get("/status")).json()["checks"])


async def test_reload_on_change_and_sighup_keeps_last_good_config(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tmp_path / "probes.yaml"
    full = sandbox_config(sandbox.url, interval=1, timeout=1)
    search_only = full[: full.index("  recommendations:")]
    config.write_text(search_only)
    recmon = RecmonProcess(config)
    await recmon.start()
    try:
        assert await checks(recmon) == ["search"]

        config.write_text(full)  # the file changes: picked up without a signal
        await recmon.wait_for_log("configuration reloaded")

        async def both() -> bool:
            return await checks(recmon) == ["search", "recommendations"]

        await recmon.wait_for(both, "the new check")

        config.write_text(full.replace("timeout: 1s}", "timeout: 1s, retries: 3}"))
        recmon.send(signal.SIGHUP)
        failed = await recmon.wait_for_log("configuration reload failed")
        assert failed["problems"] == [f"{config}:2: defaults.retries: unknown key"]
        assert await checks(recmon) == ["search", "recommendations"]  # still the last good one
        assert (await recmon.get("/readyz")).status_code == 200
    finally:
        code = await recmon.stop()
    assert code == 0
    assert recmon.messages()[-1] == "recmon stopped"
