"""The replay's report ends with a verdict line, and never cuts a line without saying so."""

from __future__ import annotations

from monitor.core.notifications import Action, Notification, Severity
from monitor.replay.runner import MAX_LINE, ReplayReport, SignalReport, format_report, verdict
from monitor.replay.scenarios import Scenario, Signal

HEALTHY = Scenario(name="healthy", description="quiet days", tenants=3, duration=86400.0)
FAULT = Signal("recommendations missing", "empty_results", "recommendations", 600.0, 1200.0)


def page(summary: str, action: Action = Action.TRIGGER) -> tuple[float, Notification]:
    return (
        700.0,
        Notification(
            id="n",
            key="k",
            action=action,
            rule="empty_results",
            severity=Severity.CRITICAL,
            summary=summary,
            started_at=700.0,
            at=700.0,
        ),
    )


def test_a_quiet_scenario_ends_with_a_verdict_not_an_empty_table() -> None:
    text = format_report(ReplayReport(HEALTHY, 100, (), ()))
    lines = text.splitlines()
    assert lines[-1] == "verdict: ok, no page in 1d 00:00:00, none expected"
    assert "fault start" not in text  # no header over an empty table
    noisy = ReplayReport(HEALTHY, 100, (page("a false alarm"),), ())
    assert verdict(noisy) == "verdict: FAILED, 1 page(s) where none was expected"


def test_the_verdict_names_faults_never_paged_or_never_resolved() -> None:
    scenario = Scenario(name="s", description="d", tenants=3, duration=3600.0, signals=(FAULT,))
    ok = ReplayReport(scenario, 10, (page("x"),), (SignalReport(FAULT, 669.0, 1500.0, 1),))
    assert verdict(ok) == (
        "verdict: ok, all 1 faults paged (the slowest 69s after its fault began) and resolved, "
        "1 page(s) in all"
    )
    missed = ReplayReport(scenario, 10, (), (SignalReport(FAULT, None, None, 0),))
    assert verdict(missed) == "verdict: FAILED, never paged: recommendations missing"
    stuck = ReplayReport(scenario, 10, (page("x"),), (SignalReport(FAULT, 669.0, None, 1),))
    assert verdict(stuck) == "verdict: FAILED, never resolved: recommendations missing"


def test_long_lines_end_in_an_ellipsis() -> None:
    summary = "recommendations returned no items for 50 tenants (" + ", ".join(
        f"tenant-{i:03d}" for i in range(50)
    )
    text = format_report(ReplayReport(HEALTHY, 1, (page(summary),), ()))
    (line,) = [line for line in text.splitlines() if "returned no items" in line]
    assert len(line) == MAX_LINE
    assert line.endswith("…")
    assert all(len(line) <= MAX_LINE for line in text.splitlines())
