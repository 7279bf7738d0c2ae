"""Configuration reloads in `recmon run`: on file change and on SIGHUP; an invalid file keeps
the last good configuration running and says why."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.server import Sandbox, SandboxSettings, serve_sandbox
from tests.helpers import FAST
from tests.integration.recmonproc import RecmonProcess

pytestmark = pytest.mark.integration


def replace_text(path: Path, text: str) -> None:
    """As a deployment changes a file (a ConfigMap's swap, an editor's rename): whole, at once.
    A write in place can be read half done by the watcher, whose failed reload would be the one
    the test reads instead of the one it provoked."""
    swap = path.with_name(f".{path.name}.new")
    swap.write_text(text)
    swap.replace(path)


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

        replace_text(config, full)  # the file changes: picked up without a signal
        await recmon.wait_for_log("configuration reloaded")

        async def both() -> bool:
            return await checks(recmon) == ["search", "recommendations"]

        await recmon.wait_for(both, "the new check")

        replace_text(config, full.replace("timeout: 1s}", "timeout: 1s, retries: 3}"))
        recmon.send(signal.SIGHUP)
        failed = await recmon.wait_for_log("configuration reload failed")
        assert failed["problems"] == [f"{config}:2: defaults.retries: unknown key"]
        assert await checks(recmon) == ["search", "recommendations"]  # still the last good one
        # Ready (the last good configuration runs), and saying what failed, where.
        ready = await recmon.get("/readyz")
        assert ready.status_code == 200
        assert "configuration reload failed" in ready.text
        assert "defaults.retries (line 2): unknown key" in ready.text
        reload = (await recmon.get("/status")).json()["config_reload"]
        assert reload["ok"] is False
        assert reload["errors"] == [
            {"key": "defaults.retries", "line": 2, "message": "unknown key"}
        ]
        metrics = (await recmon.get("/metrics")).text
        assert "recmon_config_reload_success 0.0" in metrics
        attempted = float(metrics.split("\nrecmon_config_reload_timestamp_seconds ")[1].split()[0])
        assert attempted == pytest.approx(time.time(), abs=30)

        replace_text(config, full)  # mended: the reload succeeds and says so

        async def mended() -> bool:
            return "recmon_config_reload_success 1.0" in (await recmon.get("/metrics")).text

        await recmon.wait_for(mended, "the reload metric back at 1")

        async def ready() -> bool:  # once the mended configuration has its tenant list
            return (await recmon.get("/readyz")).text == "ready\n"

        await recmon.wait_for(ready, "ready, nothing failed")
    finally:
        code = await recmon.stop()
    assert code == 0
    assert recmon.messages()[-1] == "recmon stopped"


async def test_a_rotated_header_file_is_reloaded_without_a_restart(tmp_path: Path) -> None:
    keys = {f"tenant-{i:03d}": "hk-first-5a1c" for i in (1, 2, 3)}
    settings = SandboxSettings(tenants=3, latency_ms=dict(FAST), tenant_keys=keys)
    async with serve_sandbox(settings) as sandbox:
        (tmp_path / "api-key").write_text("hk-first-5a1c\n")
        config = tmp_path / "probes.yaml"
        config.write_text(
            sandbox_config(sandbox.url, interval=0.5, timeout=1).replace(
                "    rate_limit: 200/s",
                "    rate_limit: 200/s\n    header_files: {X-Api-Key: api-key}",
            )
        )
        recmon = RecmonProcess(config)
        await recmon.start()
        try:
            accepted = sandbox.app.auth.accepted
            await recmon.wait_for(lambda: accepted["tenant-001"] > 0, "probes let in")
            # The platform rotates the key, then the mounted secret follows.
            sandbox.app.auth.update({"keys": dict.fromkeys(keys, "hk-second-93d0")})
            await recmon.wait_for(lambda: sandbox.app.auth.refused["tenant-001"] > 0, "refusal")
            (tmp_path / "api-key.new").write_text("hk-second-93d0\n")
            (tmp_path / "api-key.new").replace(tmp_path / "api-key")
            changed = await recmon.wait_for_log("secret file changed")
            assert changed["paths"] == [str(tmp_path / "api-key")]
            await recmon.wait_for_log("configuration reloaded")
            before = accepted["tenant-001"]
            await recmon.wait_for(lambda: accepted["tenant-001"] > before, "the new key let in")
        finally:
            assert await recmon.stop() == 0
        logs = "\n".join(recmon.stderr_lines)
        assert "hk-first-5a1c" not in logs and "hk-second-93d0" not in logs


async def test_a_reload_stays_ready_while_the_new_configuration_fetches_its_tenants(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Ready once the tenant list is known, and through every reload after: while the reloaded
    configuration waits for its own tenant list, /readyz stays 200 and says so (an unready pod
    drops out of endpoint-discovered scrapes at every reload)."""
    answer = asyncio.Event()
    answer.set()
    body = sandbox.app.catalog.tenant_list_body

    async def tenant_list(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await answer.wait()
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
            )
            writer.write(f"{head}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(tenant_list, "127.0.0.1", 0)
    tenants_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/tenants"
    full = sandbox_config(sandbox.url, interval=1, timeout=1).replace(
        f'url: "{sandbox.url}/v1/tenants"', f'url: "{tenants_url}"'
    )
    assert tenants_url in full
    config = tmp_path / "probes.yaml"
    config.write_text(full)
    recmon = RecmonProcess(config)
    await recmon.start()  # ready: the first tenant list answered
    try:
        assert (await recmon.get("/readyz")).text == "ready\n"
        answer.clear()  # the reloaded configuration's tenant list waits
        replace_text(config, full.replace("timeout: 1s}", "timeout: 2s}"))
        await recmon.wait_for_log("configuration reloaded")
        during = await recmon.get("/readyz")
        assert during.status_code == 200
        assert during.text == "ready: the reloaded configuration is fetching its tenant list\n"
        answer.set()

        async def fetched() -> bool:
            return (await recmon.get("/readyz")).text == "ready\n"

        await recmon.wait_for(fetched, "the reloaded configuration's tenant list")
    finally:
        answer.set()
        assert await recmon.stop() == 0
        server.close()
