"""recmon killed at the worst moment, stopped politely, or handed a broken state file."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from monitor.app.longrun import SHUTDOWN_FLUSH_S
from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import Sandbox
from monitor.telemetry.asgiserve import serve_asgi
from tests.fakes import RecordingEndpoint
from tests.integration.recmonproc import RecmonProcess

pytestmark = pytest.mark.integration
KEY = "recmon/empty_results/recommendations/tenant-002"


def paging_config(sandbox: Sandbox, pagerduty: str, *, timeout: float = 1) -> str:
    return (
        sandbox_config(sandbox.url, interval=1, timeout=timeout)
        + f"""
alerts: {{storm: {{group_wait: 1s}}}}
notify:
  pagerduty: {{routing_key: test-key, url: "{pagerduty}/v2/enqueue"}}
  delivery: {{backoff_initial: 0.2s, backoff_max: 0.5s}}
"""
    )


def kept_aside(directory: Path) -> int:
    return len(list(directory.glob("recmon-state.db.bad-*")))


def outbox_rows(state: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(state) as db:
        return list(db.execute("SELECT key, status FROM outbox"))


async def test_sigkill_between_deciding_and_delivering_delivers_exactly_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    pagerduty = RecordingEndpoint(status=503)
    async with serve_asgi(pagerduty, "127.0.0.1", 0) as pd:
        config = tmp_path / "probes.yaml"
        config.write_text(paging_config(sandbox, pd.url))
        sandbox.faults.set("tenant-002", "recommendations", Fault(empty=True))
        first = RecmonProcess(config)
        await first.start()
        await first.wait_for_log("delivery failed, will retry")  # decided, stored, not delivered
        assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
        assert outbox_rows(tmp_path / "recmon-state.db") == [(KEY, "pending")]

        pagerduty.status = 202
        second = RecmonProcess(config)
        await second.start()
        try:
            await second.wait_for(lambda: pagerduty.events(), "the delivery")
            await asyncio.sleep(4)  # the alert fires again in the new process: no second page
        finally:
            assert await second.stop() == 0
    assert pagerduty.events() == [(KEY, "trigger")]
    assert outbox_rows(tmp_path / "recmon-state.db") == [(KEY, "delivered")]


async def test_sigterm_cuts_hung_probes_at_their_deadline_flushes_and_saves(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    pagerduty = RecordingEndpoint(status=503)
    async with serve_asgi(pagerduty, "127.0.0.1", 0) as pd:
        config = tmp_path / "probes.yaml"
        config.write_text(paging_config(sandbox, pd.url, timeout=3))
        results = tmp_path / "results.jsonl"
        recmon = RecmonProcess(config, args=["--results-log", str(results)])
        await recmon.start()
        sandbox.faults.set("tenant-002", "recommendations", Fault(empty=True))
        # A page decided and not yet delivered (PagerDuty is down) ...
        await recmon.wait_for_log("delivery failed, will retry")
        # ... and probes hanging on their deadline when SIGTERM arrives.
        sandbox.faults.set("tenant-001", "search", Fault(hang=True))
        sandbox.faults.set("tenant-003", "search", Fault(hang=True))

        # Both hung requests held by the sandbox: recmon's own "running" count could be a
        # healthy 5 ms probe and let SIGTERM arrive before the hung ones had started.
        await recmon.wait_for(lambda: sandbox.app.stats.hanging >= 2, "probes hanging")
        pagerduty.status = 202  # back just as recmon is told to stop
        started = time.monotonic()
        code = await recmon.stop(signal.SIGTERM)
        took = time.monotonic() - started
    print(f"\nSIGTERM to exit: {took:.2f}s (bound {3 + SHUTDOWN_FLUSH_S:g}s)")
    assert code == 0
    assert took < 3 + SHUTDOWN_FLUSH_S  # the probe deadline, then at most the flush
    assert recmon.messages()[-1] == "recmon stopped"
    assert pagerduty.events() == [(KEY, "trigger")]  # the pending page went out, once
    assert outbox_rows(tmp_path / "recmon-state.db") == [(KEY, "delivered")]
    with sqlite3.connect(tmp_path / "recmon-state.db") as db:
        assert db.execute("SELECT COUNT(*) FROM series").fetchone()[0] >= 3  # state saved
    # The hung probes were not abandoned: each waited out its 3 s deadline and ended as a
    # timeout (how promptly after it is the loop's business on a loaded machine, not this test's).
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    hung = [
        r for r in lines if r["tenant"] in ("tenant-001", "tenant-003") and r["check"] == "search"
    ]
    cut = [r for r in hung if r["outcome"] == "timeout"]
    assert {r["tenant"] for r in cut} == {"tenant-001", "tenant-003"}
    assert all(r["duration_s"] >= 2.9 for r in cut)


async def test_a_corrupt_state_file_is_kept_aside_without_a_crash_loop(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(sandbox_config(sandbox.url, timeout=1))
    state = tmp_path / "recmon-state.db"
    state.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)

    async def once() -> tuple[int, str]:
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
        _, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, err.decode()

    code, err = await once()
    assert code == 0, err
    assert "state file unusable: kept aside, starting with a clean state" in err
    assert kept_aside(tmp_path) == 1
    code, err = await once()
    assert code == 0 and "unusable" not in err
    assert kept_aside(tmp_path) == 1
