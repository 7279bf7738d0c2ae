"""Every instance runs at a location: in its metrics, its pages and their identity; none set,
nothing changes."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from monitor.alerting.planner import PlannerState, Policy, plan
from monitor.alerting.sinks.alertmanager import labels as am_labels
from monitor.alerting.sinks.pagerduty import event_body
from monitor.config.loader import ConfigError
from monitor.config.model import PagerDutySpec, StormSpec, Target
from monitor.core.notifications import Action, Notification, Severity
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.series import AlertEvent, EventKind
from monitor.probing.httpclient import LOCATION_HEADER, build_client
from monitor.telemetry.metrics import Metrics
from monitor.telemetry.push import write_textfile
from tests.helpers import BASE_CONFIG, load

T0 = 1_700_000_000.0


def test_location_comes_from_the_file_or_else_from_recmon_location() -> None:
    assert load(BASE_CONFIG).config.location is None
    assert load(BASE_CONFIG, {"RECMON_LOCATION": "eu-west"}).config.location == "eu-west"
    in_file = "location: us-east\n" + BASE_CONFIG
    assert load(in_file, {"RECMON_LOCATION": "eu-west"}).config.location == "us-east"


def test_a_location_that_cannot_be_a_label_value_is_an_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load("location: 'eu west/2'\n" + BASE_CONFIG)
    assert str(caught.value).startswith("test.yaml:1: location: ")
    with pytest.raises(ConfigError, match="location"):
        load(BASE_CONFIG, {"RECMON_LOCATION": "a b"})


def samples(body: bytes) -> list[tuple[str, dict[str, str]]]:
    return [
        (s.name, s.labels)
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    ]


def populated(location: str | None) -> Metrics:
    metrics = Metrics(
        CollectorRegistry(), const_labels={"location": location} if location else None
    )
    metrics.record(ProbeResult("acme", "search", Outcome.OK, 0.05, 0.0, status=200, items=3))
    metrics.record(ProbeResult("acme", "recommendations", Outcome.EMPTY, 0.06, 0.0, items=0))
    metrics.set_latency("acme", "search", 0.05, 0.04)
    metrics.set_alert("empty_results", "acme", "recommendations", "critical", True)
    metrics.notifications.labels("pagerduty", "delivered").inc()
    return metrics


def test_every_exported_series_carries_the_location() -> None:
    rows = samples(populated("eu-west").render())
    assert len(rows) > 30
    assert [name for name, labels in rows if labels.get("location") != "eu-west"] == []
    names = {name for name, _ in rows}
    assert {"recmon_probes_total", "recmon_probe_duration_seconds_bucket"} <= names
    assert {"recmon_alerts_firing", "recmon_build_info", "recmon_notifications_total"} <= names


def test_without_a_location_no_series_has_the_label() -> None:
    rows = samples(populated(None).render())
    assert rows and all("location" not in labels for _, labels in rows)


def test_the_cronjob_export_carries_the_location_too(tmp_path) -> None:  # type: ignore[no-untyped-def]
    metrics = populated("ap-south")
    path = tmp_path / "recmon.prom"
    write_textfile(metrics.registry, path, {"location": "ap-south"})
    rows = samples(path.read_bytes())
    assert rows and all(labels.get("location") == "ap-south" for _, labels in rows)


def event(tenant: str | None, kind: EventKind = EventKind.FIRING, rule: str = "empty_results"):  # type: ignore[no-untyped-def]
    return AlertEvent(
        kind=kind,
        rule=rule,
        tenant=tenant,
        check="recommendations" if tenant else "tls",
        severity=Severity.CRITICAL,
        started_at=T0,
        at=T0,
        summary=f"recommendations returned no items for tenant {tenant}",
        variant="" if tenant else "api.example.com:443",
    )


def pages(policy: Policy, events: list[AlertEvent], at: float = T0 + 60) -> list[Notification]:
    state, out = plan(PlannerState(), events, T0, policy)
    state, later = plan(state, [], at, policy)
    return out + later


STORM = StormSpec(min_tenants=3, group_wait=30)


def test_a_page_names_its_location_in_labels_key_and_text() -> None:
    (page,) = pages(Policy(STORM, 10, location="eu-west"), [event("acme")])
    assert page.labels["location"] == "eu-west"
    assert page.key == "recmon/empty_results/recommendations/acme/location-eu-west"
    assert page.summary.endswith("(from location eu-west)")
    assert am_labels(page)["location"] == "eu-west"
    spec = PagerDutySpec(routing_key="k" * 32)
    payload = event_body(page, spec)["payload"]
    assert payload["source"] == "recmon@eu-west"
    assert payload["component"] == "recommendations"
    assert payload["custom_details"]["labels"]["location"] == "eu-west"


def test_replicas_at_one_location_make_one_incident_and_locations_make_their_own() -> None:
    storm = [event(t) for t in ("a", "b", "c", "d")]
    replica_1 = pages(Policy(STORM, 10, location="eu-west"), storm)
    replica_2 = pages(Policy(STORM, 10, location="eu-west"), storm)
    elsewhere = pages(Policy(STORM, 10, location="us-east"), storm)
    (grouped,) = replica_1
    assert [p.key for p in replica_2] == [grouped.key]
    assert [p.id for p in replica_2] == [grouped.id]
    assert [p.key for p in elsewhere] != [grouped.key]
    assert grouped.labels["location"] == "eu-west" and grouped.labels["grouped"] == "true"
    assert "4 tenants" in grouped.summary and grouped.summary.endswith("(from location eu-west)")


def test_a_resolve_keeps_the_key_and_names_the_location_once() -> None:
    policy = Policy(STORM, 10, location="eu-west")
    state, _ = plan(PlannerState(), [event("acme")], T0, policy)
    state, (trigger,) = plan(state, [], T0 + 60, policy)
    resolved = event("acme", EventKind.RESOLVED)
    _, (resolve,) = plan(state, [resolved], T0 + 120, policy)
    assert resolve.action is Action.RESOLVE and resolve.key == trigger.key
    assert resolve.summary.count("from location eu-west") == 1


def test_without_a_location_pages_are_as_before() -> None:
    (page,) = pages(Policy(STORM, 10), [event("acme")])
    assert page.key == "recmon/empty_results/recommendations/acme"
    assert "location" not in page.labels and "location" not in page.summary
    assert event_body(page, PagerDutySpec(routing_key="k" * 32))["payload"]["source"] == "recmon"


def test_tenant_pages_through_the_rules_leave_only_certificate_pages() -> None:
    policy = Policy(STORM, 10, location="eu-west", tenant_pages=False)
    storm = [event(t) for t in ("a", "b", "c", "d")]
    out = pages(policy, [*storm, event(None, rule="tls_invalid")])
    assert [(p.rule, p.tenant) for p in out] == [("tls_invalid", None)]
    assert out[0].labels == {"host": "api.example.com:443", "location": "eu-west"}


def test_probes_say_where_they_come_from() -> None:
    target = Target(base_url="http://api.test")
    client = build_client("api", target, 5.0, location="eu-west")
    assert client.headers[LOCATION_HEADER] == "eu-west"
    assert LOCATION_HEADER not in build_client("api", target, 5.0).headers


async def test_the_locations_demo_names_the_servers_it_needs(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import io

    from monitor.sandbox import locations_demo

    monkeypatch.setattr(locations_demo.shutil, "which", lambda name: None)
    with pytest.raises(locations_demo.DemoError, match="prometheus and prometheus-alertmanager"):
        await locations_demo.demo(3, io.StringIO())
