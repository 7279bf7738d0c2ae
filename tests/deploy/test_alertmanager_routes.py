"""The shipped Alertmanager configurations route every alert where docs/DEPLOY.md says, checked
with the real `amtool config routes test` against each file used as a whole configuration.

The alerts are not listed here: they are read from the shipped rule files and from recmon's own
alert names, so a new alert is routed (and checked) the day it is added.

docs/DEPLOY.md, "Where each alert goes":
- alertmanager.yml (one location, recmon pages): recmon's own alerts (source="recmon") page;
  Prometheus' copies of recmon's tenant and certificate alerts (the same names, and
  RecmonProbeCredentialsRejected, the rules' form of recmon's fleet-wide credentials page) are
  recorded; every other rule (recmon itself: RecmonDown, RecmonOverloaded, ...) pages.
- recmon-locations.yml (several locations, the rules page): the location class is a ticket;
  every other alert, with a class (platform, tenant, stale) or without, pages when critical and
  is a ticket when a warning (the platform and tenant classes are warnings for symptom="slow").
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import fields
from functools import cache
from pathlib import Path

import pytest
import yaml

from monitor.core.notifications import ALERT_NAMES, alert_name
from monitor.detect.rules import RuleSet
from monitor.tls.rules import SEVERITY as TLS_SEVERITY
from tests.binaries import require_binary
from tests.helpers import ROOT

ALERTMANAGER = ROOT / "deploy" / "alertmanager"
RULE_FILES = sorted((ROOT / "deploy" / "prometheus").glob("recmon-*.yml"))

# Every alert recmon raises itself: its tenant rules, its certificate rules, and any other
# rule with an alert name of its own (overload, ...).
RECMON_RAISES = sorted(
    {alert_name(f.name) for f in fields(RuleSet) if f.init}
    | {alert_name(rule) for rule in TLS_SEVERITY}
    | set(ALERT_NAMES.values())
)
# The Prometheus rules that copy a tenant or certificate page recmon sends itself.
COPIES = (
    {alert_name(f.name) for f in fields(RuleSet) if f.init}
    | {alert_name(rule) for rule in TLS_SEVERITY}
    | {"RecmonProbeCredentialsRejected"}
    # deploy/prometheus/slo.py's rules copy recmon's own SLO pages (slo_burn, slo_slow_burn).
    | {alert_name("slo_burn"), alert_name("slo_slow_burn")}
)
CLASSES = {"platform", "tenant", "stale", "location"}


def rule_alerts() -> Iterator[tuple[str, dict[str, str]]]:
    """(alert name, its labels) for every alert of the shipped rule files; a label templated
    on the alert (severity by symptom) in each value it can take."""
    for path in RULE_FILES:
        # libyaml's parser: 4 ms against the pure-Python one's 40, at this module's import in
        # every pytest worker
        for group in yaml.load(path.read_text(), Loader=yaml.CSafeLoader)["groups"]:
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                labels = dict(rule.get("labels") or {})
                if "{{" in labels.get("severity", ""):
                    for severity in ("critical", "warning"):
                        yield rule["alert"], {**labels, "severity": severity}
                else:
                    yield rule["alert"], labels


RULES = sorted(rule_alerts(), key=lambda alert: (alert[0], sorted(alert[1].items())))


@cache
def routed(config: Path, labels: tuple[str, ...]) -> str:
    done = subprocess.run(
        [
            require_binary("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={config}",
            *labels,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def as_args(labels: dict[str, str]) -> tuple[str, ...]:
    return tuple(f"{k}={v}" for k, v in sorted(labels.items()))


def test_the_alerts_are_read_from_the_rules_and_from_recmon() -> None:
    names = {name for name, _ in RULES}
    # The issue's four, and the classes: the list is real, not empty.
    assert {"RecmonDown", "RecmonNotificationsFailing", "RecmonOverloaded"} <= names
    assert {"RecmonPlatformOutage", "RecmonLocationNotReporting"} <= names
    assert {"RecmonOverloaded", "RecmonTLSCertificateInvalid"} <= set(RECMON_RAISES)
    assert "RecmonDown" not in COPIES and "RecmonOverloaded" not in COPIES


@pytest.mark.parametrize(
    "name,labels", RULES, ids=[f"{name}-{labels['severity']}" for name, labels in RULES]
)
def test_each_rule_alert_goes_where_the_docs_say(name: str, labels: dict[str, str]) -> None:
    alert = {"alertname": name, **labels, "instance": "recmon-0:9464"}
    single = routed(ALERTMANAGER / "alertmanager.yml", as_args(alert))
    assert single == ("recorded" if name in COPIES else "pager"), f"alertmanager.yml: {name}"
    assert labels.get("class", "stale") in CLASSES, f"{name}: a class without a route"
    if labels.get("class") == "location" or labels["severity"] != "critical":
        expected = "recmon-tickets"
    else:
        expected = "recmon-pager"
    several = routed(ALERTMANAGER / "recmon-locations.yml", as_args(alert))
    assert several == expected, f"recmon-locations.yml: {name} ({labels})"


@pytest.mark.parametrize("name", RECMON_RAISES)
def test_each_alert_recmon_sends_itself_goes_where_the_docs_say(name: str) -> None:
    # Severities are configurable per rule: both, as the sink labels them.
    for severity in ("critical", "warning"):
        alert = {
            "alertname": name,
            "severity": severity,
            "source": "recmon",
            "location": "eu-west",
            "check": "search",
        }
        assert routed(ALERTMANAGER / "alertmanager.yml", as_args(alert)) == "pager", name
        several = routed(ALERTMANAGER / "recmon-locations.yml", as_args(alert))
        assert several == ("recmon-pager" if severity == "critical" else "recmon-tickets"), (
            f"recmon-locations.yml: {name} {severity}"
        )


def test_the_issues_case_recmon_down_pages_with_the_locations_file_alone() -> None:
    config = ALERTMANAGER / "recmon-locations.yml"
    for name in ("RecmonDown", "RecmonNotificationsFailing", "RecmonOverloaded"):
        assert routed(config, (f"alertname={name}", "severity=critical")) == "recmon-pager"
