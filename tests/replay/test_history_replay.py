"""30 days in virtual time with known outages (some tenants, some checks, some inside a
maintenance window): `recmon report` on the state file the replay wrote gives availability
equal to the injected truth, and impact rows matching the injected faults."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config.model import AlertsSpec, MaintenanceWindow, StormSpec
from monitor.replay.runner import REPLAY_START, replay
from monitor.replay.scenarios import DAY, HOUR, Behaviour, Change, Noise, Scenario
from monitor.state.store import StateStore
from tests.helpers import once_per_run

# Virtual time, CPU-bound: tests/run.py runs it at idle priority beside the other phases.
pytestmark = pytest.mark.background

INTERVAL = 300.0
TENANTS = ("tenant-001", "tenant-002", "tenant-003", "tenant-004")
CHECKS = ("search", "recommendations")
DURATION = 30 * DAY


@dataclass(frozen=True)
class Fault:
    tenants: tuple[str, ...]
    check: str
    start: float  # seconds since the replay's start, whole intervals
    end: float
    behaviour: Behaviour
    outcome: str


@dataclass(frozen=True)
class Window:
    tenants: tuple[str, ...]
    start: float
    end: float


FAULTS = (
    Fault(
        ("tenant-001",),
        "search",
        3 * DAY + 10 * HOUR,
        3 * DAY + 12 * HOUR,
        Behaviour(status=503),
        "http_error",
    ),
    Fault(
        ("tenant-002",),
        "recommendations",
        10 * DAY,
        10 * DAY + 45 * 60,
        Behaviour(empty=True),
        "empty",
    ),
    Fault(
        TENANTS,
        "recommendations",
        15 * DAY + 6 * HOUR,
        15 * DAY + 7 * HOUR,
        Behaviour(status=502),
        "http_error",
    ),
    # Wholly inside tenant-003's maintenance: no availability lost, no page.
    Fault(
        ("tenant-003",),
        "search",
        20 * DAY + 1 * HOUR,
        20 * DAY + 3 * HOUR,
        Behaviour(status=503),
        "http_error",
    ),
    # Begins inside tenant-004's maintenance and outlasts it by an hour and a half.
    Fault(
        ("tenant-004",),
        "search",
        25 * DAY + 2.5 * HOUR,
        25 * DAY + 4 * HOUR,
        Behaviour(status=503),
        "http_error",
    ),
)
WINDOWS = (
    Window(("tenant-003",), 20 * DAY, 20 * DAY + 4 * HOUR),
    Window(("tenant-004",), 25 * DAY + 2 * HOUR, 25 * DAY + 3 * HOUR),
)


def _scenario() -> Scenario:
    changes = []
    for fault in FAULTS:
        changes.append(Change(fault.start, fault.behaviour, fault.check, fault.tenants))
        changes.append(Change(fault.end, Behaviour(), fault.check, fault.tenants))
    changes.sort(key=lambda c: c.at)
    return Scenario(
        name="history-month",
        description="thirty days, five outages, two maintenance windows",
        tenants=len(TENANTS),
        duration=DURATION,
        interval=INTERVAL,
        noise=Noise(blip_rate=0.0),  # every failure is an injected one
        changes=tuple(changes),
    )


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _truth(tenant: str, check: str) -> float:
    """Availability in percent from the injected faults, maintenance excluded: the share of
    time outside maintenance the tenant × check answered well."""
    windows = [w for w in WINDOWS if tenant in w.tenants]
    counted = DURATION - sum(w.end - w.start for w in windows)
    bad = 0.0
    for fault in FAULTS:
        if tenant in fault.tenants and fault.check == check:
            inside = sum(_overlap(fault.start, fault.end, w.start, w.end) for w in windows)
            bad += fault.end - fault.start - inside
    return 100 * (1 - bad / counted)


def _iso(offset: float) -> str:
    return datetime.fromtimestamp(REPLAY_START + offset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp() - REPLAY_START


@pytest.fixture(scope="session")
def state_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The month's replay (~8 CPU-s), written once for every test and worker that reads it."""
    return once_per_run(tmp_path_factory, "history-month", _replayed_month)


def _replayed_month(directory: Path) -> Path:
    path = directory / "state.db"
    alerts = AlertsSpec(
        # Four tenants are a storm here; tenants fail at their phases across an interval.
        storm=StormSpec(min_tenants=3, group_wait=2 * INTERVAL),
        maintenance=[
            MaintenanceWindow(
                tenants=list(w.tenants),
                start=datetime.fromtimestamp(REPLAY_START + w.start, UTC),
                end=datetime.fromtimestamp(REPLAY_START + w.end, UTC),
                reason="database upgrade",
            )
            for w in WINDOWS
        ],
    )
    store = StateStore.open(path)
    try:
        replay(_scenario(), alerts=alerts, history=store)
    finally:
        store.close()
    return path


def _report(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["report", "--state", str(path), "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_availability_equals_the_injected_truth(state_file: Path, capsys) -> None:
    report = _report(state_file, capsys, "--from", _iso(0), "--to", _iso(DURATION))
    rows = {(r["tenant"], r["check"]): r for r in report["availability"]}
    assert set(rows) == {(t, c) for t in TENANTS for c in CHECKS}
    for (tenant, check), row in rows.items():
        assert row["availability_pct"] == pytest.approx(_truth(tenant, check), abs=0.01), (
            tenant,
            check,
        )
    # Maintenance excluded, and said so: tenant-003 lost nothing, its window's probes apart.
    assert rows[("tenant-003", "search")]["availability_pct"] == 100.0
    assert rows[("tenant-003", "search")]["in_maintenance"] == 4 * HOUR / INTERVAL
    assert rows[("tenant-004", "search")]["availability_pct"] < 100.0
    assert any("maintenance" in note for note in report["notes"])
    assert len(report["maintenance"]) == 2


def test_impact_rows_match_the_injected_faults(state_file: Path, capsys) -> None:
    report = _report(state_file, capsys, "--from", _iso(0), "--to", _iso(DURATION))
    found = sorted(
        (r["tenant"], r["check"], _epoch(r["start"]), _epoch(r["end"]), r["worst"])
        for r in report["impact"]
    )
    expected = sorted(
        (tenant, f.check, f.start, f.end, f.outcome) for f in FAULTS for tenant in f.tenants
    )
    assert len(found) == len(expected)
    for (tenant, check, start, end, worst), (t, c, s, e, o) in zip(found, expected, strict=True):
        assert (tenant, check, worst) == (t, c, o)
        assert s <= start < s + INTERVAL
        assert e <= end < e + INTERVAL + 1  # the first good probe after the fault
    minutes = {(r["tenant"], r["check"]): r["minutes"] for r in report["impact"]}
    assert minutes[("tenant-001", "search")] == pytest.approx(120, abs=INTERVAL / 60)
    # What of it maintenance covered: all of tenant-003's, half an hour of tenant-004's.
    maintained = {
        (r["tenant"], r["check"]): r["in_maintenance_minutes"]
        for r in report["impact"]
        if r["check"] == "search"
    }
    assert maintained[("tenant-003", "search")] == pytest.approx(120, abs=INTERVAL / 60)
    assert maintained[("tenant-004", "search")] == pytest.approx(30, abs=INTERVAL / 60)
    assert maintained[("tenant-001", "search")] == 0


def test_an_incident_s_impact_table_lists_every_tenant_it_hit(state_file: Path, capsys) -> None:
    report = _report(state_file, capsys, "--from", _iso(0), "--to", _iso(DURATION))
    fleet = FAULTS[2]
    incidents = [
        i
        for i in report["incidents"]
        if i["check"] == "recommendations"
        and fleet.start <= i["opened_at"] - REPLAY_START < fleet.end
    ]
    assert incidents, report["incidents"]
    # Maintenance held tenant-003's page: no incident recorded for it.
    assert not [
        i for i in report["incidents"] if (i["tenant"], i["check"]) == ("tenant-003", "search")
    ]
    assert [i for i in report["incidents"] if (i["tenant"], i["check"]) == ("tenant-001", "search")]
    assert all(i["closed"] for i in report["incidents"])
    grouped = max(incidents, key=lambda i: len(i["tenants"]))
    one = _report(state_file, capsys, "--incident", grouped["id"])
    rows = {(r["tenant"], r["check"]) for r in one["impact"]}
    assert rows == {(t, "recommendations") for t in grouped["tenants"] or TENANTS}
    assert one["incident"]["pages"] >= 2  # its trigger and its resolve
    # The period reaches back to the impact's start, before the page.
    assert one["from"] <= min(r["start"] for r in one["impact"]) < one["incident"]["opened"]
    assert main(["report", "--state", str(state_file), "--incident", grouped["id"]]) == 0
    text = capsys.readouterr().out
    assert f"## Incident {grouped['id']}" in text
    assert "| trigger |" in text and "| resolve |" in text


def test_every_format_shows_the_same_report(state_file: Path, capsys) -> None:
    period = ["--from", _iso(3 * DAY), "--to", _iso(4 * DAY), "--tenant", "tenant-001"]
    for fmt, marker in (
        ("md", "| tenant-001 | search |"),
        ("csv", "impact,tenant-001,search"),
        ("html", "<td>tenant-001</td>"),
    ):
        assert main(["report", "--state", str(state_file), "--format", fmt, *period]) == 0
        out = capsys.readouterr().out
        assert marker in out
        assert "tenant-002" not in out
        assert "maintenance" in out


def test_an_unknown_incident_is_a_clear_error(state_file: Path, capsys) -> None:
    assert main(["report", "--state", str(state_file), "--incident", "nope"]) == 2
    assert "no incident 'nope'" in capsys.readouterr().err
