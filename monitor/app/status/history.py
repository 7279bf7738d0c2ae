"""From the state file's history, for the status page: the tenant page's 90 daily bars per
check (each day's availability, maintenance excluded, coloured by the figure, the figure on
hover and focus) and the index page's incidents of the last days with their timelines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.app.badge import badge_hours
from monitor.detect.history import DAY, Incident, Totals, incident_from_json, iso
from monitor.state.store import StateStore

BAR_DAYS = 90


@dataclass(frozen=True, slots=True)
class DayBar:
    day: str  # YYYY-MM-DD (UTC)
    pct: float | None  # None: no probe that day
    probes: int

    @property
    def level(self) -> str:
        """good ≥ 99.9 %, warn ≥ 99 %, bad below, none without probes."""
        if self.pct is None:
            return "none"
        return "good" if self.pct >= 99.9 else "warn" if self.pct >= 99.0 else "bad"

    @property
    def label(self) -> str:
        if self.pct is None:
            return f"{self.day}: no data"
        return f"{self.day}: {self.pct:.2f}% of {self.probes} probes"


def day_bars(rows: Sequence[tuple[int, str]], now: float, days: int = BAR_DAYS) -> list[DayBar]:
    """One bar per UTC day, the oldest first, today last, from (hour, encoded row)."""
    today = int(now // DAY * DAY)
    totals = {today - i * int(DAY): Totals() for i in range(days)}
    for hour, text in rows:
        day = totals.get(hour // int(DAY) * int(DAY))
        if day is None:
            continue
        try:
            day.add_json(json.loads(text))
        except ValueError:
            continue
    return [
        DayBar(
            iso(day)[:10],
            round(100 * t.good / t.probes, 2) if t.probes else None,
            t.probes,
        )
        for day, t in sorted(totals.items())
    ]


def tenant_bars(
    store: StateStore, tenant: str, checks: Sequence[str], now: float
) -> dict[str, list[DayBar]]:
    """Every check's bars for one tenant (point lookups: cheap at any fleet size)."""
    hours = badge_hours(now, BAR_DAYS + 1)
    return {check: day_bars(store.history_rows(tenant, check, hours), now) for check in checks}


PAST_DAYS = 7
PAST_SHOWN = 50


def recent_incidents(
    store: StateStore, now: float, days: int = PAST_DAYS, limit: int = PAST_SHOWN
) -> list[Incident]:
    """The incidents opened in the last `days`, newest first (unreadable ones left out)."""
    incidents = []
    for text in store.history_events("incident", now - days * DAY, limit):
        try:
            incidents.append(incident_from_json(json.loads(text)))
        except ValueError:
            continue
    return incidents
