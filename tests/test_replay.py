"""Incident replays in virtual time: the real detector and planner against scripted faults."""

from __future__ import annotations

from monitor.alerting.model import Action
from monitor.replay.runner import format_report, replay
from monitor.replay.scenarios import healthy_week, incident, latency_only


def test_incident_pages_once_per_signal_in_time_and_resolves() -> None:
    report = replay(incident())
    missing, drift = report.signals
    interval = report.scenario.interval
    assert (
        missing.first_page is not None
        and missing.first_page - missing.signal.fault_start <= 2 * interval
    )
    assert drift.first_page is not None and drift.first_page - drift.signal.fault_start <= 300
    for row in (missing, drift):
        assert row.pages == 1
        assert row.resolved is not None and row.resolved > row.signal.fault_end
    # one grouped page per signal for an all-tenant outage, not one per tenant
    triggers = [n for _, n in report.notifications if n.action is Action.TRIGGER]
    assert len(triggers) == 2
    assert all(n.tenant is None and n.labels == {"grouped": "true"} for n in triggers)
    assert "search is healthy" in triggers[0].summary
    resolves = [n for _, n in report.notifications if n.action is Action.RESOLVE]
    assert {n.key for n in resolves} == {n.key for n in triggers}
    # the resolve reports the storm at its peak: (nearly) every tenant
    assert all(n.details["tenant_count"] >= 45 for n in resolves)


def test_latency_doubling_alone_is_one_grouped_page() -> None:
    report = replay(latency_only())
    (drift,) = report.signals
    assert drift.pages == 1
    assert drift.first_page is not None and drift.first_page - drift.signal.fault_start <= 300


def test_seven_healthy_noisy_days_page_zero_times() -> None:
    report = replay(healthy_week(10))
    assert report.probes == 10 * 2 * 7 * 1440
    assert report.notifications == ()


def test_report_is_a_readable_table() -> None:
    text = format_report(replay(incident()))
    assert (
        "signal" in text and "fault start" in text and "first page" in text and "pages sent" in text
    )
    assert "recommendations missing            02:00:00" in text
