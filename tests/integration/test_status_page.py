"""The status page in a real headless Chromium, against `recmon run` probing the sandbox:
every tenant listed; a fault turns its tenant's row failing within 2 intervals without a
reload; a fleet-wide incident appears at the top with its scope; after recovery every row is
healthy again. Screenshots go to test-artifacts/ (RECMON_TEST_ARTIFACTS)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import Sandbox
from tests.browser import chromium, screenshot_path
from tests.integration.recmonproc import RecmonProcess

pytestmark = pytest.mark.integration
TENANTS = 6
INTERVAL = 2.0
ALERTS = """
alerts:
  storm: {group_wait: 1s, min_tenants: 3}
  empty_results: {window: 8s}
  failures: {window: 8s}
  error_rate: {window: 20s}
"""


@pytest.fixture
def sandbox_tenants() -> int:
    return TENANTS


class Page:
    """The browser, driven from a worker thread: selenium blocks, and the sandbox shares this
    test's event loop."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    async def run(self, call: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(call, *args)

    async def script(self, source: str) -> Any:
        return await self.run(self.driver.execute_script, source)

    async def rows(self) -> dict[str, str]:
        """tenant → row state, as the page shows it now."""
        found = await self.script(
            "return [...document.querySelectorAll('#grid tr.row')]"
            ".map(r => [r.dataset.tenant, r.dataset.state,"
            " r.querySelector('th .word').textContent.trim()]);"
        )
        # The state is said in words too, not only by colour.
        assert all(state == word for _, state, word in found), found
        return {tenant: state for tenant, state, _ in found}

    async def until(self, condition: Callable[[], Any], what: str, within: float) -> float:
        """Seconds until `condition` (async) holds; fails after `within`."""
        start = time.monotonic()
        while True:
            if await condition():
                return time.monotonic() - start
            if time.monotonic() - start > within:
                raise AssertionError(f"not within {within}s: {what}\n{await self.rows()}")
            await asyncio.sleep(0.1)

    async def shot(self, name: str) -> Path:
        path = screenshot_path(name)
        await self.run(self.driver.save_screenshot, str(path))
        return path

    async def not_reloaded(self) -> bool:
        return bool(await self.script("return window.recmonTestMark === 'set before';"))


async def test_status_page_follows_a_fault_an_incident_and_recovery_in_place(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(sandbox_config(sandbox.url, interval=INTERVAL, timeout=1) + ALERTS)
    recmon = RecmonProcess(config)
    await recmon.start()
    tenants = {f"tenant-{i:03d}" for i in range(1, TENANTS + 1)}
    try:
        with chromium() as driver:
            page = Page(driver)
            await page.run(driver.get, recmon.url + "/")

            async def all_ok() -> bool:
                rows = await page.rows()
                return set(rows) == tenants and set(rows.values()) == {"ok"}

            # Every tenant is listed (and, once probed, healthy).
            await page.until(all_ok, "every tenant listed and ok", within=10 * INTERVAL)
            await page.shot("status-page-1-healthy.png")

            async def sparklines() -> bool:
                lines = await page.script(
                    "return [...document.querySelectorAll('#grid tr.row')]"
                    ".map(r => r.querySelectorAll('td.spark svg polyline').length);"
                )
                return bool(lines == [2] * TENANTS)  # one line per check, once 2 probes in

            await page.until(sparklines, "a sparkline in every row", within=5 * INTERVAL)
            await page.script("window.recmonTestMark = 'set before';")

            # A fault: tenant-004's proxy answers 502 to search.
            sandbox.faults.set("tenant-004", "search", Fault(status=502))

            async def failing() -> bool:
                return (await page.rows()).get("tenant-004") == "failing"

            took = await page.until(failing, "tenant-004 failing", within=2 * INTERVAL)
            assert await page.not_reloaded(), "the page reloaded instead of updating in place"
            rows = await page.rows()
            assert next(iter(rows)) == "tenant-004"  # failing tenants come first
            assert {t for t, s in rows.items() if s == "failing"} == {"tenant-004"}
            cell = await page.script(
                "return document.querySelector('#t-tenant-004 td.cell').textContent;"
            )
            assert "http_error" in cell  # the outcome in words
            await page.shot("status-page-2-fault.png")
            print(f"tenant-004 shown failing {took:.1f}s after the fault (interval {INTERVAL}s)")

            # Recommendations empty for every tenant: one incident, scoped to the fleet.
            sandbox.faults.clear()
            sandbox.faults.set("*", "recommendations", Fault(empty=True))

            async def fleet_incident() -> bool:
                return bool(
                    await page.script(
                        "const i = document.querySelector('#top .incident[data-scope=fleet]');"
                        "return i && i.querySelector('.headline').textContent;"
                    )
                )

            await page.until(fleet_incident, "the fleet-wide incident", within=15 * INTERVAL)
            headline = await page.script(
                "return document.querySelector('#top .incident .headline').textContent;"
            )
            assert headline == f"recommendations returned no items for all {TENANTS} tenants"
            top = await page.script("return document.querySelector('#top').textContent;")
            assert "1 open incident" in top and "since" in top
            assert await page.not_reloaded()
            await page.shot("status-page-3-incident.png")

            # Recovery: every row healthy again, nothing on fire.
            sandbox.faults.clear()
            await page.until(all_ok, "every tenant ok again", within=15 * INTERVAL)

            async def calm() -> bool:
                text = await page.script("return document.querySelector('#top h2').textContent;")
                return bool(text == "No open incidents")

            await page.until(calm, "no open incident", within=15 * INTERVAL)
            assert await page.not_reloaded()
            await page.shot("status-page-4-recovered.png")

            # The page's own requests broke no Content-Security-Policy rule.
            console = await page.run(driver.get_log, "browser")
            assert not [e for e in console if "Content Security Policy" in e["message"]], console

            # A phone: nothing wider than the screen but the tables' own scroll boxes.
            await page.run(driver.set_window_size, 390, 844)
            await page.run(driver.get, recmon.url + "/tenants/tenant-004")
            width = await page.script(
                "return [document.documentElement.scrollWidth, window.innerWidth];"
            )
            assert width[0] <= width[1], width
            assert "Recent probes" in await page.script("return document.body.textContent;")
            await page.shot("status-page-5-phone-tenant.png")
            await page.run(driver.get, recmon.url + "/")
            width = await page.script(
                "return [document.documentElement.scrollWidth, window.innerWidth];"
            )
            assert width[0] <= width[1], width
            await page.shot("status-page-6-phone.png")
    finally:
        assert await recmon.stop() == 0
