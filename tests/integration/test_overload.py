"""recmon offered far more probes than one process can run, against a healthy loopback server
(the sandbox in its own process, every answer 200 with items), on each transport: its event
loop falls behind, the timeouts judged then are withheld and counted, no tenant alert fires,
and recmon pages its own overload instead. And a monitor whose loop keeps time well enough
but which skips runs pages its overload too, saying how far behind its schedule it is."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry

from monitor.alerting.hub import Decision
from monitor.app.assembly import build_monitor
from monitor.app.service import Monitor
from monitor.config.loader import load_config_text
from monitor.core.clock import SystemClock
from monitor.core.notifications import Notification
from monitor.detect.overload import behind
from monitor.sandbox.demo import sandbox_config
from tests.binaries import free_port
from tests.localhttp import TLS

# timing: it loads the machine on purpose and measures the lag (run alone, tests/run.py).
pytestmark = [pytest.mark.integration, pytest.mark.timing, pytest.mark.alone]
TENANTS = 1500  # × 2 checks every quarter second: 12,000 probes/s offered, about twice what
# one process runs here with the asyncio transport
# Once 6,000 probes/s (0.5 s) were several times what one process could run; since the
# scheduler launches bursts (first on a quiet loop, now on any), the asyncio transport keeps
# up with them here (0 skipped, 2.6% of latencies untrusted) and never paged. At 0.25 s it
# falls behind, but it skips runs rather than let its loop lag: the lag stays at 0.07-0.2 s,
# so a 0.25 s timeout was withheld only when the start's spike happened to be long enough (0
# in one run of three). A 0.1 s timeout is under that lag and ~100 times the sandbox's 1 ms
# answer: timeouts then are the loop's, withheld by the thousand on each transport.
INTERVAL = 0.25
TIMEOUT = 0.1
WITHIN_S = 60.0  # bounded: the test stops here whatever happened
# Falling behind: 3,000 runs a second offered at 0.5 s were once well beyond one process, but
# recmon later started ~2,500 a second here, and a CI host somewhat faster skipped only 6%
# (under the rule's 10%) and never paged. At 0.25 s (6,000 runs a second) it skips 25-33%.
BEHIND_INTERVAL = 0.25


@pytest.fixture(scope="module")
def sandbox_process() -> Iterator[str]:
    """The sandbox in a process of its own, so recmon's overload is recmon's alone; started
    once for the module's tests (a 1,500-tenant sandbox takes 1-6 s to start on a loaded
    machine), each of which checks that it answers promptly before loading it."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor",
            "sandbox",
            "--port",
            str(port),
            "--tenants",
            str(TENANTS),
            "--latency-ms",
            "search=1,recommendations=1",
            "--jitter",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/v1/tenants", verify=TLS).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("the sandbox did not start")
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
async def server(sandbox_process: str) -> str:
    """The module's sandbox, idle again: the requests a previous test's overloaded monitor
    left behind are answered or dropped, and a probe takes its ~1 ms, not a backlog's wait
    (which would be a real tenant timeout, not recmon's overload)."""
    async with httpx.AsyncClient(timeout=2, verify=TLS) as client:
        for _ in range(100):
            began = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):
                answer = await client.get(f"{sandbox_process}/v1/tenant-001/search?q=shoes")
                if answer.status_code == 200 and time.monotonic() - began < 0.05:
                    return sandbox_process
            await asyncio.sleep(0.1)
    raise AssertionError("the sandbox is down, or stays busy after the previous test")


def counted(monitor: Monitor, family: str, **labels: str) -> float:
    """A counter's total over every series with these labels."""
    return sum(
        sample.value
        for metric in monitor.registry.collect()
        if metric.name == family
        for sample in metric.samples
        if sample.name.endswith("_total")
        and all(sample.labels.get(k) == v for k, v in labels.items())
    )


@pytest.mark.parametrize("transport", ["asyncio", "aiohttp", "httpx"])
async def test_an_overloaded_monitor_pages_itself_never_the_tenants(
    server: str, transport: str
) -> None:
    text = (
        sandbox_config(server, interval=INTERVAL, timeout=TIMEOUT)
        .replace("rate_limit: 200/s\n", "max_connections: 1024\n")
        .replace("refresh: 10m", "refresh: 1h")
        + f"""
engine: {{transport: {transport}, max_in_flight: 1024}}
alerts:
  overload: {{for: 2s, resolve_for: 30s}}
  storm: {{group_wait: 1s}}
"""
    )
    pages: list[Notification] = []

    def route(decision: Decision) -> None:
        pages.extend(decision.notifications)

    monitor = build_monitor(
        load_config_text(text, source="<test>"),
        clock=SystemClock(),
        registry=CollectorRegistry(),
        route=route,
    )
    tenant_alerts: set[tuple[str, str, str]] = set()
    stop = asyncio.Event()
    task = asyncio.create_task(monitor.run(stop))
    began = time.monotonic()
    withheld = 0.0
    try:
        await asyncio.wait_for(monitor.ready.wait(), 20)
        while time.monotonic() - began < WITHIN_S:
            await asyncio.sleep(0.5)
            tenant_alerts |= {(k[0], k[1], rule) for k, rule, _ in monitor.hub.firing_alerts()}
            withheld = counted(monitor, "recmon_timeouts_withheld")
            if withheld and any(p.rule == "overload" for p in pages):
                break
    finally:
        stop.set()
        await asyncio.wait_for(task, 120)  # draining an overloaded loop takes a while
        await monitor.aclose()
    elapsed = time.monotonic() - began
    timeouts = counted(monitor, "recmon_probes", outcome="timeout")
    overload = [p for p in pages if p.rule == "overload"]
    print(
        f"\n{transport}: {withheld:.0f} timeouts withheld, {timeouts:.0f} counted as tenant "
        f"timeouts, overload paged after {elapsed:.1f}s, loop lag "
        f"{overload[0].details.get('loop_lag_s') if overload else '-'} s; pages "
        f"{[(p.rule, p.action.value) for p in pages]}"
    )
    assert withheld > 0  # the monitor's own lag: counted, not blamed on tenants
    assert tenant_alerts == set()  # no tenant alert ever fired
    assert [p for p in pages if p.rule != "overload"] == []  # nor was any paged
    assert overload and overload[0].tenant is None and overload[0].severity.value == "critical"
    assert "recmon is overloaded" in overload[0].summary
    assert "--shard" in overload[0].summary


async def test_a_monitor_falling_behind_its_schedule_pages_by_how_much(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's case: the loop lag alone (under `lag`, here out of reach) would not page;
    the runs skipped do, and the page gives the achieved and configured intervals."""
    text = (
        sandbox_config(server, interval=BEHIND_INTERVAL, timeout=TIMEOUT)
        .replace("rate_limit: 200/s\n", "max_connections: 1024\n")
        .replace("refresh: 10m", "refresh: 1h")
        + """
engine: {transport: asyncio, max_in_flight: 64}
alerts:
  overload: {for: 1s, resolve_for: 30s, lag: 30s}
  storm: {group_wait: 1s}
"""
    )
    pages: list[Notification] = []
    paged = asyncio.Event()

    def route(decision: Decision) -> None:
        pages.extend(decision.notifications)
        if any(p.rule == "overload" for p in pages):
            paged.set()

    monitor = build_monitor(
        load_config_text(text, source="<test>"),
        clock=SystemClock(),
        registry=CollectorRegistry(),
        route=route,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(monitor.run(stop))
    began = time.monotonic()
    try:
        await asyncio.wait_for(monitor.ready.wait(), 20)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(paged.wait(), 20)
        reading = monitor.load_reading()
    finally:
        stop.set()
        await asyncio.wait_for(task, 120)
        await monitor.aclose()
    elapsed = time.monotonic() - began
    skipped = counted(monitor, "recmon_probes_skipped", reason="overrun")
    overload = [p for p in pages if p.rule == "overload"]
    print(
        f"\nfalling behind: paged after {elapsed:.1f}s, {skipped:.0f} runs skipped; "
        f"{overload[0].summary if overload else 'no page'}"
    )
    assert overload, f"no overload page within 20 s ({skipped:.0f} runs skipped)"
    (page,) = overload
    match = re.match(
        r"recmon is overloaded: probing each tenant every ([\d.]+) s on average, "
        r"configured 0\.25 s; (\d+)% of runs skipped",
        page.summary,
    )
    assert match, page.summary
    achieved, share = float(match[1]), int(match[2])
    assert achieved > BEHIND_INTERVAL and share > 10
    # The page's figures are the reading's: achieved = configured × due / started.
    assert page.details["configured_interval_s"] == BEHIND_INTERVAL
    assert page.details["achieved_interval_s"] == pytest.approx(achieved, abs=0.05)
    assert skipped > 0
    # Falling behind is what fired it, whatever else the overload also did.
    assert behind(reading, monitor.config.alerts.overload)
    assert [p for p in pages if p.rule != "overload"] == []
    # And the once-a-minute log line says the same, with its figures as fields.
    (logged,) = [r for r in caplog.records if r.getMessage().startswith("recmon is overloaded:")]
    assert logged.name == "recmon.service" and "runs_due" in logged.fields  # type: ignore[attr-defined]
