"""SVG badges: a tenant × check's 30-day availability from the state file's history, served at
/badge/<tenant>/<check>.svg as an inert, cacheable image."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from monitor.app.badge import badge_svg, store_badge
from monitor.app.history import HistoryRecorder
from monitor.app.httpapi import MonitorApi
from monitor.core.clock import ManualClock
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.history import DAY, HOUR
from monitor.state.store import StateStore

NOW = 1_780_000_000.0
SVG = "{http://www.w3.org/2000/svg}"


def texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    store = StateStore.open(tmp_path / "state.db")
    recorder = HistoryRecorder(ManualClock(NOW))
    # 40 days, one probe an hour: the 10 oldest days all failed, outside the badge's 30.
    for hour in range(40 * 24):
        at = NOW - hour * HOUR
        outcome = Outcome.HTTP_ERROR if hour >= 30 * 24 or hour == 5 else Outcome.OK
        recorder.observe(ProbeResult("acme", "search", outcome, 0.05, at))
    snapshot = recorder.changes()
    store.write_history(snapshot.write)
    return store


def test_the_badge_shows_the_last_30_days(store: StateStore) -> None:
    svg = store_badge(store, "acme", "search", NOW)
    assert svg is not None
    assert texts(svg) == ["search 30d", f"{100 * (1 - 1 / 720):.2f}%"]
    assert store_badge(store, "acme", "search", NOW + 20 * DAY) is not None
    assert store_badge(store, "globex", "search", NOW) is None


def test_colour_follows_the_figure_and_text_is_escaped() -> None:
    assert "#2e7d32" in badge_svg("x", 99.95)
    assert "#c62828" in badge_svg("x", 90.0)
    assert texts(badge_svg("x", None)) == ["x", "no data"]
    assert texts(badge_svg("<script>", 100.0))[0] == "<script>"
    assert "<script>" not in badge_svg("<script>", 100.0)


async def test_the_badge_is_served_as_an_inert_image(store: StateStore) -> None:
    api = MonitorApi(
        render_metrics=lambda: b"",
        is_alive=lambda: True,
        readiness=lambda: (True, "ready\n"),
        snapshot=lambda: None,  # type: ignore[arg-type,return-value]
        badge=lambda tenant, check: store_badge(store, tenant, check, NOW),
    )
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://recmon") as client:
        ok = await client.get("/badge/acme/search.svg")
        assert ok.status_code == 200
        assert ok.headers["content-type"].startswith("image/svg+xml")
        assert "default-src 'none'" in ok.headers["content-security-policy"]
        assert texts(ok.text)[0] == "search 30d"
        missing = await client.get("/badge/globex/search.svg")
        assert missing.status_code == 404
        assert "no history" in missing.text
        assert (await client.get("/badge/acme.svg")).status_code == 404
