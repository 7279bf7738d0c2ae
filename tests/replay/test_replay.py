"""Incident replays in virtual time: the real detector, planner, PagerDuty sink and outbox
against scripted faults."""

from __future__ import annotations

import pytest

from monitor.core.notifications import Action
from monitor.replay.runner import ReplayReport, SignalReport, format_report, replay
from monitor.replay.scenarios import DAY, FLEET, fallback, healthy_week, incident, latency_only
from tests.helpers import once_per_run

# Virtual time, CPU-bound: tests/run.py runs it at idle priority beside the other phases.
pytestmark = pytest.mark.background


@pytest.fixture(scope="session")
def incident_report(tmp_path_factory: pytest.TempPathFactory) -> ReplayReport:
    """The incident replay (~5 CPU-s), once for every test and worker that reads it."""
    return once_per_run(tmp_path_factory, "incident-replay", lambda _: replay(incident()))


def row(report: ReplayReport, rule: str, scope: str = "") -> SignalReport:
    return next(r for r in report.signals if (r.signal.rule, r.signal.scope) == (rule, scope))


def paged_after_fault(signal: SignalReport) -> float:
    assert signal.first_page is not None, f"{signal.signal.name} never paged"
    return signal.first_page - signal.signal.fault_start


def test_every_signal_pages_once_and_resolves_after_recovery(incident_report: ReplayReport) -> None:
    report = incident_report
    for signal in report.signals:
        assert signal.pages == 1, signal.signal.name
        assert signal.resolved is not None and signal.resolved >= signal.signal.fault_end, (
            signal.signal.name
        )


def test_recommendations_missing_within_two_intervals_and_drift_within_five_minutes(
    incident_report: ReplayReport,
) -> None:
    report = incident_report
    assert paged_after_fault(row(report, "empty_results")) <= 2 * report.scenario.interval
    assert paged_after_fault(row(report, "latency_drift")) <= 300


def test_half_finished_rotation_is_paged_days_before_the_expiry_that_breaks_search(
    incident_report: ReplayReport,
) -> None:
    report = incident_report
    rotation = report.scenario.rotation
    assert rotation is not None
    inconsistent = row(report, "tls_inconsistent")
    assert paged_after_fault(inconsistent) <= 15 * 60 + rotation.interval  # grace + one round
    assert inconsistent.first_page is not None
    assert rotation.old_expires - inconsistent.first_page > 19 * DAY
    assert paged_after_fault(row(report, "tls_invalid")) <= rotation.interval + 30  # next round
    # A third of every tenant's searches failing on the stale backend: one fleet incident
    # within two intervals, with the share, every tenant, and the backend named.
    search = row(report, "fleet_failures", FLEET)
    assert paged_after_fault(search) <= 2 * report.scenario.interval
    assert "search failing for " in search.first_text
    assert "across all 50 tenants" in search.first_text
    assert "tls_error expired" in search.first_text
    assert "failures came from 10.0.0.3:443 (tls_error expired " in search.first_text
    assert "10.0.0.1:443 and 10.0.0.2:443 answered ok" in search.first_text


def test_all_tenant_outages_are_grouped_pages_and_their_scope_is_paged(
    incident_report: ReplayReport,
) -> None:
    report = incident_report
    tenant_pages = [
        n for _, n in report.notifications if n.action is Action.TRIGGER and n.check != "tls"
    ]
    # recommendations missing, p95 drift: each a storm and its escalation; search failing
    # for a third of requests: one fleet incident, its tenants' alerts folded under it
    assert len(tenant_pages) == 5
    storms = [n for n in tenant_pages if "scope" not in n.labels]
    assert all(n.tenant is None and n.labels == {"grouped": "true"} for n in storms)
    assert {n.rule for n in storms} == {"empty_results", "latency_drift"}
    (fleet,) = [n for n in tenant_pages if n.rule == "fleet_failures"]
    assert fleet.tenant is None and fleet.labels == {"scope": "fleet-wide"}
    missing = next(n for n in tenant_pages if n.rule == "empty_results")
    assert "search is healthy" in missing.summary
    resolves = [
        n for _, n in report.notifications if n.action is Action.RESOLVE and n.check != "tls"
    ]
    assert {n.key for n in resolves} == {n.key for n in tenant_pages}
    # the resolve reports the storm at its peak: (nearly) every tenant
    assert all(n.details["tenant_count"] >= 45 for n in resolves if n.rule != "fleet_failures")


def test_the_all_tenant_row_names_all_50_tenants_within_three_intervals(
    incident_report: ReplayReport,
) -> None:
    report = incident_report
    storm = row(report, "empty_results")
    scope = row(report, "empty_results", FLEET)
    assert storm.first_page is not None and scope.first_page is not None
    assert scope.first_page - storm.first_page <= 3 * report.scenario.interval
    assert "returned no items for all 50 tenants" in scope.first_text
    assert "for 5 tenants (" in storm.first_text  # the storm's own first page: its first five
    text = format_report(report)
    assert "...all tenants: recommendations returned no items for all 50 tenants" in text


def test_latency_doubling_alone_is_one_grouped_page_and_its_scope() -> None:
    report = replay(latency_only())
    drift, scope = report.signals
    assert drift.pages == 1 and scope.pages == 1
    assert paged_after_fault(drift) <= 300
    assert scope.first_page is not None and drift.first_page is not None
    assert scope.first_page - drift.first_page <= 3 * report.scenario.interval


def test_seven_healthy_noisy_days_page_zero_times() -> None:
    report = replay(healthy_week(10))
    assert report.probes == 10 * 2 * 7 * 1440
    assert report.notifications == ()


def test_a_fallback_answering_every_tenant_is_one_page_stating_it_within_two_intervals() -> None:
    report = replay(fallback())
    (signal,) = report.signals
    assert signal.pages == 1 and report.pages == 1
    assert paged_after_fault(signal) <= 2 * report.scenario.interval
    assert signal.resolved is not None and signal.resolved > signal.signal.fault_end
    assert signal.first_text.startswith(
        "recommendations are one identical list for all 40 tenants (fingerprint "
    )
    assert signal.first_text.endswith("— a fallback or cache is answering")
    assert "recommendations a fallback" in format_report(report)


def test_report_is_a_readable_table(incident_report: ReplayReport) -> None:
    text = format_report(incident_report)
    assert (
        "signal" in text and "fault start" in text and "first page" in text and "pages sent" in text
    )
    assert "recommendations missing        20d 02:00:00" in text
    assert (
        "the half-finished rotation was paged 19d 23:45:00 before the old certificate expired"
        in text
    )


def test_the_notification_list_agrees_with_the_table_and_tells_every_line_apart(
    incident_report: ReplayReport,
) -> None:
    report = incident_report
    text = format_report(report)
    listed = text.split("notifications as PagerDuty received them:", 1)[1].splitlines()[1:]
    listed = [line for line in listed if line.startswith("  ")]
    # 9 pages and their resolves (search failing is one fleet incident, not a storm and
    # its fleet-wide companion)
    assert len(listed) == 18
    # No two lines alike: a storm's page and its fleet-wide companion (same text on
    # resolve) and the two expiry warnings are named apart.
    assert len(set(listed)) == len(listed), "\n".join(listed)
    assert any("resolve  empty_results (grouped)" in line for line in listed)
    assert any("trigger  fleet_failures (fleet-wide)" in line for line in listed)
    assert any("resolve  empty_results (fleet-wide)" in line for line in listed)
    # Every first page and resolve in the table is a line at the same second (the table and
    # the list read the same clock: when PagerDuty received it, pacing included).
    stamps = {(line.split()[0] + " " + line.split()[1]) for line in listed if "d " in line}
    stamps |= {line.split()[0] for line in listed}
    for row in report.signals:
        for at in (row.first_page, row.resolved):
            assert at is not None
            seconds = round(at)
            days, rest = divmod(seconds, 86400)
            clock = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
            assert (f"{days}d {clock}" if days else clock) in stamps, (row.signal.name, at)
    # Resolves say what resolved, although PagerDuty's resolve events carry no summary.
    assert all("resolved: " in line for line in listed if "  resolve  " in line)
