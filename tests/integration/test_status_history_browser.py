"""The tenant page's 90 daily bars in real headless Chromium: every bar drawn and inside the
page at desktop and phone widths, the figure shown on focus; screenshots kept as artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.app.status import page
from monitor.app.status.history import tenant_bars
from monitor.state.store import StateStore
from tests.app.test_status import Rig
from tests.app.test_status_history import fill
from tests.browser import chromium, screenshot_path

pytestmark = pytest.mark.integration


async def test_the_bars_render_and_show_their_figure_on_focus(tmp_path: Path) -> None:
    rig = Rig()
    assert await rig.monitor.refresh_tenants()
    rig.round()
    store = StateStore.open(":memory:")
    fill(store, rig.clock.time())
    bars = tenant_bars(store, "acme", list(rig.monitor.checks), rig.clock.time())
    html = page.render_tenant(rig.snapshot(), "acme", bars=bars)
    assert html is not None
    css = tmp_path / "status.css"
    css.write_bytes(page.static_file("status.css") or b"")
    # Loaded from a file: the stylesheet beside it, no live refresh script.
    html = html.replace("/static/status.css", css.as_uri()).replace(
        '<script src="/static/status.js" defer></script>', ""
    )
    (tmp_path / "acme.html").write_text(html)
    for name, width in (("desktop", 1280), ("phone", 390)):
        with chromium() as driver:
            driver.set_window_size(width, 844)  # type: ignore[attr-defined]
            driver.get((tmp_path / "acme.html").as_uri())  # type: ignore[attr-defined]
            boxes = driver.execute_script(  # type: ignore[attr-defined]
                "return [...document.querySelectorAll('#history .day')].map(d => {"
                " const r = d.getBoundingClientRect(); return [r.left, r.right, r.height]; });"
            )
            assert len(boxes) == 180
            viewport = driver.execute_script("return document.documentElement.clientWidth;")  # type: ignore[attr-defined]
            for left, right, height in boxes:
                assert right - left >= 1 and height > 10
                assert left >= 0 and right <= viewport
            shown = driver.execute_script(  # type: ignore[attr-defined]
                "const bad = [...document.querySelectorAll('#history .day-bad')].pop();"
                "bad.scrollIntoView(); bad.focus();"
                "return getComputedStyle(bad, '::after').content;"
            )
            assert "75.00% of 24 probes" in shown
            # The figure stays inside the page (no sideways scrolling for it).
            assert driver.execute_script(  # type: ignore[attr-defined]
                "const e = document.documentElement; return e.scrollWidth <= e.clientWidth;"
            )
            driver.save_screenshot(str(screenshot_path(f"status-history-bars-{name}.png")))  # type: ignore[attr-defined]


async def test_recent_incidents_open_their_timeline(tmp_path: Path) -> None:
    from monitor.app.history import HistoryRecorder
    from monitor.app.status.history import recent_incidents
    from monitor.core.clock import ManualClock
    from monitor.core.notifications import Action, Notification, Severity

    rig = Rig()
    assert await rig.monitor.refresh_tenants()
    rig.round()
    now = rig.clock.time()
    store = StateStore.open(":memory:")
    recorder = HistoryRecorder(ManualClock(now))
    key = "recmon/fleet_empty/recommendations/fleet-wide"
    for action, at in ((Action.TRIGGER, now - 3600), (Action.RESOLVE, now - 1200)):
        recorder.record(
            [
                Notification(
                    f"{key}:{action}",
                    key,
                    action,
                    "fleet_empty",
                    Severity.CRITICAL,
                    "recommendations returned no items for all 40 tenants",
                    now - 3600,
                    at,
                    None,
                    "recommendations",
                    {"scope": "fleet-wide"},
                    {"tenants": [f"tenant-{i:03d}" for i in range(40)]},
                )
            ]
        )
    store.write_history(recorder.changes().write)
    html = page.render_index(rig.snapshot(), past=recent_incidents(store, now))
    css = tmp_path / "status.css"
    css.write_bytes(page.static_file("status.css") or b"")
    html = html.replace("/static/status.css", css.as_uri()).replace(
        '<script src="/static/status.js" defer></script>', ""
    )
    (tmp_path / "index.html").write_text(html)
    with chromium() as driver:
        driver.set_window_size(390, 844)  # type: ignore[attr-defined]
        driver.get((tmp_path / "index.html").as_uri())  # type: ignore[attr-defined]
        steps = driver.execute_script(  # type: ignore[attr-defined]
            "const d = document.querySelector('#past details'); d.open = true;"
            "d.scrollIntoView();"
            "return [...d.querySelectorAll('li')].map(li => li.offsetHeight > 0 && li.textContent);"
        )
        assert len(steps) == 2 and "trigger" in steps[0] and "resolve" in steps[1]
        assert driver.execute_script(  # type: ignore[attr-defined]
            "const e = document.documentElement; return e.scrollWidth <= e.clientWidth;"
        )
        driver.save_screenshot(str(screenshot_path("status-past-incidents-phone.png")))  # type: ignore[attr-defined]
