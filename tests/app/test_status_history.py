"""The tenant page's 90 daily bars: each day's availability from the history, coloured by
the figure, served on the tenant's page (never in its live fragment)."""

from __future__ import annotations

from html.parser import HTMLParser

import httpx

from monitor.app.history import HistoryRecorder
from monitor.app.httpapi import MonitorApi
from monitor.app.status.history import day_bars, tenant_bars
from monitor.core.clock import ManualClock
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.history import DAY, HOUR
from monitor.state.store import StateStore
from tests.app.test_status import Rig

NOW = 1_700_000_000.0


def fill(store: StateStore, now: float) -> None:
    """acme's search: 100 days, 24 probes a day; 3 days ago down for 6 hours, 10 days ago
    one failure; nothing at all 20 days ago."""
    recorder = HistoryRecorder(ManualClock(now))
    today = now // DAY * DAY
    for hour in range(100 * 24):
        at = today - 99 * DAY + hour * HOUR + 60
        if at > now or today - 20 * DAY <= at < today - 19 * DAY:
            continue
        down = (today - 3 * DAY <= at < today - 3 * DAY + 6 * HOUR) or (
            today - 10 * DAY <= at < today - 10 * DAY + HOUR
        )
        outcome = Outcome.HTTP_ERROR if down else Outcome.OK
        recorder.observe(ProbeResult("acme", "search", outcome, 0.05, at))
    store.write_history(recorder.changes().write)


class Days(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.days: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if "day" in (found.get("class") or "").split():
            self.days.append(found)


def test_ninety_bars_coloured_by_each_day_s_availability() -> None:
    store = StateStore.open(":memory:")
    fill(store, NOW)
    bars = tenant_bars(store, "acme", ["search", "recommendations"], NOW)
    search = bars["search"]
    assert len(search) == 90 and len(bars["recommendations"]) == 90
    assert search[-1].day == "2023-11-14"  # today (UTC) last
    assert (search[-4].pct, search[-4].level) == (75.0, "bad")
    assert (search[-11].pct, search[-11].level) == (round(100 * 23 / 24, 2), "bad")
    assert (search[-21].pct, search[-21].level) == (None, "none")
    assert search[-2].level == "good" and search[-2].label.endswith("100.00% of 24 probes")
    assert {b.level for b in bars["recommendations"]} == {"none"}
    assert day_bars([], NOW, 3)[0].day == "2023-11-12"


async def test_the_tenant_page_shows_the_bars() -> None:
    rig = Rig()
    assert await rig.monitor.refresh_tenants()
    rig.round()
    store = StateStore.open(":memory:")
    fill(store, rig.clock.time())
    api = MonitorApi(
        render_metrics=rig.monitor.metrics.render,
        is_alive=lambda: True,
        readiness=lambda: (True, "ready\n"),
        snapshot=rig.snapshot,
        history_bars=lambda t: tenant_bars(store, t, list(rig.monitor.checks), rig.clock.time()),
    )
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://recmon") as client:
        page = await client.get("/tenants/acme")
        assert page.status_code == 200
        days = Days()
        days.feed(page.text)
        assert len(days.days) == 90 * len(rig.monitor.checks)
        assert any("day-bad" in (d["class"] or "") for d in days.days)
        assert all(d["tabindex"] == "0" and d["data-label"] for d in days.days)
        live = await client.get("/ui/tenant/acme")  # the refreshed part: no history read
        assert 'class="day ' not in live.text


async def test_the_index_page_lists_recent_incidents_with_their_timeline() -> None:
    from monitor.app.status.history import recent_incidents
    from monitor.core.notifications import Action, Notification, Severity

    rig = Rig()
    assert await rig.monitor.refresh_tenants()
    rig.round()
    now = rig.clock.time()
    store = StateStore.open(":memory:")
    recorder = HistoryRecorder(ManualClock(now))

    def note(action: Action, at: float, key: str, started: float) -> Notification:
        return Notification(
            f"{key}:{action}", key, action, "failures", Severity.CRITICAL,
            f"search failing for tenant acme ({action})", started, at, "acme", "search",
        )  # fmt: skip

    old = "recmon/failures/search/old"
    recorder.record([note(Action.TRIGGER, now - 9 * DAY, old, now - 9 * DAY)])
    key = "recmon/failures/search/acme"
    recorder.record([note(Action.TRIGGER, now - 600, key, now - 600)])
    recorder.record([note(Action.RESOLVE, now - 60, key, now - 600)])
    store.write_history(recorder.changes().write)
    assert [i.key for i in recent_incidents(store, now)] == [key]  # 9 days ago: not shown
    api = MonitorApi(
        render_metrics=rig.monitor.metrics.render,
        is_alive=lambda: True,
        readiness=lambda: (True, "ready\n"),
        snapshot=rig.snapshot,
        past_incidents=lambda: recent_incidents(store, now),
    )
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://recmon") as client:
        text = (await client.get("/")).text
    assert "Incidents, last 7 days" in text
    assert text.count("<li>") >= 2 and "trigger:" in text and "resolve:" in text
    assert f"recmon report --incident '{key}@" in text
