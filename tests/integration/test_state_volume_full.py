"""The state volume fills up (or goes read-only) while recmon runs, and then an outage starts:
the page reaches PagerDuty all the same, from memory, saying delivery is not crash-safe;
recmon's own state_unwritable alert fires (page, metric, /readyz, status page); once space
returns, what was sent from memory is stored as delivered and nothing is sent twice, also
after a restart.

The volumes are real where this machine lets the test mount them (CI runs as root): a small
tmpfs, filled with a file, and a small ext4 image that the kernel remounts read-only after a
file-system error (`errors=remount-ro`, as a failing disk does; a read-only remount by hand is
refused while recmon holds the file open for writing). Where mounting is not permitted, the
writes fail at the SQLite layer instead (tests/integration/faultystate.py). The test decides
at run time and prints which.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import Sandbox
from monitor.telemetry.asgiserve import serve_asgi
from tests.fakes import RecordingEndpoint
from tests.integration.recmonproc import RecmonProcess

pytestmark = pytest.mark.integration
KEY = "recmon/empty_results/recommendations/tenant-002"
OWN = "recmon/state_unwritable"
# A page for one tenant fires after two empty probes (1 s apart) and a 1 s group wait: 2-3 s
# after the fault with the volume healthy (test_crashes.py's setup). The same bound holds here.
USUAL_S = 10.0


@dataclass
class Volume:
    """Where the state file lives, and how its writes are made to fail (and work again)."""

    directory: Path
    how: str  # said in the test's output
    fail: Callable[[], None]
    repair: Callable[[], None] | None  # None: it stays broken (a read-only remount)
    module: str = "monitor"  # what runs recmon (the SQLite-layer fault needs a wrapper)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> Path:
        return self.directory / "recmon-state.db"


def _mount(*args: str) -> str | None:
    """Runs mount; None when it worked, else why not. RECMON_TEST_NO_MOUNT=1 takes the
    fallback (the SQLite-layer fault) where mounting would work."""
    if os.environ.get("RECMON_TEST_NO_MOUNT"):
        return "RECMON_TEST_NO_MOUNT is set"
    try:
        done = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    except OSError as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


def _umount(directory: Path) -> None:
    subprocess.run(["umount", "-l", str(directory)], check=False, timeout=30)


def _ext4(image: Path, directory: Path) -> str | None:
    """A small ext4 file system mounted on `directory` that turns read-only on an error;
    None when it worked, else why not."""
    if os.environ.get("RECMON_TEST_NO_MOUNT"):
        return "RECMON_TEST_NO_MOUNT is set"
    with image.open("wb") as out:
        out.truncate(16 * 1024 * 1024)
    try:
        made = subprocess.run(
            ["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, text=True, timeout=60
        )
    except OSError as exc:
        return str(exc)
    if made.returncode:
        return made.stderr.strip() or "mkfs.ext4 failed"
    return _mount("-o", "loop,errors=remount-ro", str(image), str(directory))


def _device_of(directory: Path) -> str:
    return next(
        line.split()[0]
        for line in Path("/proc/mounts").read_text().splitlines()
        if line.split()[1] == str(directory)
    )


def _fill(directory: Path) -> Path:
    """Write a file until the volume has no byte left."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


def _injected(directory: Path, trigger: str, why: str) -> Volume:
    state = directory / "recmon-state.db"
    return Volume(
        directory,
        f"writes failing at the SQLite layer ({trigger}): mounting is not permitted here ({why})",
        fail=lambda: Path(f"{state}.{trigger}").touch(),
        repair=lambda: Path(f"{state}.{trigger}").unlink(),
        module="tests.integration.faultystate",
        env={"RECMON_FAULTY_STATE": str(state)},
    )


@contextlib.asynccontextmanager
async def full_volume(tmp_path: Path) -> AsyncIterator[Volume]:
    directory = tmp_path / "state"
    directory.mkdir()
    why = await asyncio.to_thread(
        _mount, "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(directory)
    )
    if why is not None:
        yield _injected(directory, "full", why)
        return
    filler: list[Path] = []

    def repair() -> None:
        filler.pop().unlink()

    try:
        yield Volume(
            directory,
            "a real 1 MiB tmpfs, filled with a file (ENOSPC)",
            fail=lambda: filler.append(_fill(directory)),
            repair=repair,
        )
    finally:
        await asyncio.to_thread(_umount, directory)


@contextlib.asynccontextmanager
async def read_only_volume(tmp_path: Path) -> AsyncIterator[Volume]:
    directory = tmp_path / "state"
    directory.mkdir()
    image = tmp_path / "state.img"
    why = await asyncio.to_thread(_ext4, image, directory)
    if why is not None:
        yield _injected(directory, "readonly", why)
        return
    device = await asyncio.to_thread(_device_of, directory)

    def fail() -> None:
        # What a failing disk does: the kernel records a file-system error and, with
        # errors=remount-ro, turns the file system read-only under the open files.
        Path(f"/sys/fs/ext4/{Path(device).name}/trigger_fs_error").write_text("recmon test\n")

    try:
        yield Volume(
            directory,
            f"a real ext4 image on {device}, remounted read-only by the kernel after an error",
            fail=fail,
            repair=None,
        )
    finally:
        await asyncio.to_thread(_umount, directory)


def config_for(sandbox: Sandbox, pagerduty: str, state: Path) -> str:
    return (
        sandbox_config(sandbox.url, interval=1, timeout=1)
        + f"""
alerts: {{storm: {{group_wait: 1s}}}}
notify:
  pagerduty: {{routing_key: test-key, url: "{pagerduty}/v2/enqueue"}}
  delivery: {{backoff_initial: 0.2s, backoff_max: 0.5s}}
state: {{path: "{state}"}}
"""
    )


def outbox(state: Path) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as db:
        return sorted(db.execute("SELECT key, status FROM outbox"))


def own_keys(pagerduty: RecordingEndpoint) -> list[tuple[str, str]]:
    return [(k, a) for k, a in pagerduty.events() if k.startswith(OWN)]


def recmon_on(volume: Volume, sandbox: Sandbox, pagerduty: str, tmp_path: Path) -> RecmonProcess:
    print(f"state volume: {volume.how}")
    config = tmp_path / "probes.yaml"
    config.write_text(config_for(sandbox, pagerduty, volume.state))
    return RecmonProcess(config, module=volume.module, env=volume.env)


async def page_arrives_from_memory(
    recmon: RecmonProcess,
    pagerduty: RecordingEndpoint,
    sandbox: Sandbox,
    volume: Volume,
    *,
    broken: bool = False,
) -> None:
    """Breaks the volume (unless `broken` already), starts the outage: the page arrives in
    the usual time, from memory, and recmon says everywhere that its state file takes no
    writes."""
    if not broken:
        volume.fail()
    await asyncio.sleep(1.5)  # a persistence save or two may fail first; nothing to page yet
    assert [k for k, _ in pagerduty.events() if k == KEY] == []
    sandbox.faults.set("tenant-002", "recommendations", Fault(empty=True))
    started = time.monotonic()
    await recmon.wait_for(lambda: (KEY, "trigger") in pagerduty.events(), "the page", USUAL_S)
    took = next(r["at"] for r in pagerduty.received if r["body"]["dedup_key"] == KEY) - started
    print(f"page from memory {took:.1f}s after the fault")
    page = next(r["body"] for r in pagerduty.received if r["body"]["dedup_key"] == KEY)
    assert "not crash-safe" in page["payload"]["custom_details"]["delivery"]
    assert any(
        m.startswith("notifications could not be stored: delivering them from memory")
        for m in recmon.messages()
    )
    # recmon's own alert, critical, paged through the same path
    await recmon.wait_for(lambda: own_keys(pagerduty), "the state_unwritable page", 5)
    own = next(r["body"] for r in pagerduty.received if r["body"]["dedup_key"].startswith(OWN))
    assert own["payload"]["severity"] == "critical"
    assert own["payload"]["summary"].startswith("state file unwritable: ")
    assert str(volume.state) in own["payload"]["summary"]
    ready = await recmon.get("/readyz")
    assert ready.status_code == 200  # probing and paging go on
    assert "state file unwritable: " in ready.text and "not crash-safe" in ready.text
    metrics = (await recmon.get("/metrics")).text
    assert "recmon_state_writable 0.0" in metrics
    errors = next(
        line for line in metrics.splitlines() if line.startswith("recmon_state_write_errors_total")
    )
    assert float(errors.split()[-1]) >= 1, errors
    assert 'recmon_alerts_firing{alert="state_unwritable"' in metrics
    status = (await recmon.get("/status")).json()
    assert status["self"]["state_file"]["unwritable"]["summary"].startswith("state file unw")
    assert "pages sent from memory, not crash-safe" in (await recmon.get("/")).text


async def test_a_full_state_volume_delays_no_page_and_doubles_none_once_space_returns(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    pagerduty = RecordingEndpoint(status=202)
    async with serve_asgi(pagerduty, "127.0.0.1", 0) as pd, full_volume(tmp_path) as volume:
        recmon = recmon_on(volume, sandbox, pd.url, tmp_path)
        await recmon.start()
        try:
            await page_arrives_from_memory(recmon, pagerduty, sandbox, volume)
            reason = json.dumps(pagerduty.received[-1]["body"]["payload"]["summary"])
            assert "database or disk is full" in reason, reason

            assert volume.repair is not None
            volume.repair()  # space returns: what was held is stored, the outbox resumes
            await recmon.wait_for_log("state file writable again", within=10)
            own = own_keys(pagerduty)[0][0]
            assert outbox(volume.state) == sorted([(KEY, "delivered"), (own, "delivered")])

            async def writable() -> bool:
                return "recmon_state_writable 1.0" in (await recmon.get("/metrics")).text

            await recmon.wait_for(writable, "recmon_state_writable 1", 5)
            sandbox.faults.clear()  # the resolve goes through the outbox as ever
            await recmon.wait_for(lambda: (KEY, "resolve") in pagerduty.events(), "resolve")
            await asyncio.sleep(2)
        finally:
            assert await recmon.stop() == 0
        # A restart on the stored state sends nothing again.
        again = RecmonProcess(recmon.config, module=volume.module, env=volume.env)
        await again.start()
        try:
            await asyncio.sleep(4)
        finally:
            assert await again.stop() == 0
        assert [e for e in pagerduty.events() if e[0] == KEY] == [
            (KEY, "trigger"),
            (KEY, "resolve"),
        ]
        assert own_keys(pagerduty) == [(own, "trigger")]  # resolves a minute after recovery
        assert outbox(volume.state) == sorted(
            [(KEY, "delivered"), (KEY, "delivered"), (own, "delivered")]
        )


async def test_recmon_killed_while_the_state_volume_is_full_starts_again_and_pages(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A crash (an OOM kill) while the volume is full: the restart opens the state file
    without writing to it, and pages from memory."""
    pagerduty = RecordingEndpoint(status=202)
    async with serve_asgi(pagerduty, "127.0.0.1", 0) as pd, full_volume(tmp_path) as volume:
        first = recmon_on(volume, sandbox, pd.url, tmp_path)
        await first.start()
        volume.fail()
        assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
        recmon = RecmonProcess(first.config, module=volume.module, env=volume.env)
        await recmon.start()
        try:
            await page_arrives_from_memory(recmon, pagerduty, sandbox, volume, broken=True)
        finally:
            assert await recmon.stop() == 0


async def test_a_state_volume_gone_read_only_delays_no_page(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    pagerduty = RecordingEndpoint(status=202)
    async with serve_asgi(pagerduty, "127.0.0.1", 0) as pd, read_only_volume(tmp_path) as volume:
        recmon = recmon_on(volume, sandbox, pd.url, tmp_path)
        await recmon.start()
        try:
            await page_arrives_from_memory(recmon, pagerduty, sandbox, volume)
        finally:
            # Stops cleanly; what is held in memory is said to be lost, not silently.
            assert await recmon.stop(signal.SIGTERM) == 0
        assert any(m.startswith("the state file takes no writes") for m in recmon.messages())
        assert pagerduty.events().count((KEY, "trigger")) == 1
