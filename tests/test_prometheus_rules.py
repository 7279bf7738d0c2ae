"""The shipped Prometheus rules: valid for promtool, and their unit tests pass."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.binaries import require_binary

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"


def promtool() -> str:
    return require_binary("promtool")


def test_rules_pass_promtool_check() -> None:
    done = subprocess.run(
        [promtool(), "check", "rules", str(RULES / "recmon-rules.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_rule_unit_tests_pass() -> None:
    done = subprocess.run(
        [promtool(), "test", "rules", str(RULES / "tests" / "recmon-rules.test.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_summary_description_and_a_runbook_that_exists() -> None:
    import yaml

    rules = yaml.safe_load((RULES / "recmon-rules.yml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 10
    root = RULES.parent.parent
    for alert in alerts:
        annotations = alert["annotations"]
        assert annotations["summary"] and annotations["description"], alert["alert"]
        assert (root / annotations["runbook_url"]).is_file(), (
            f"{alert['alert']}: {annotations['runbook_url']} missing"
        )


def test_example_prometheus_configuration_is_valid() -> None:
    done = subprocess.run(
        [promtool(), "check", "config", str(RULES / "prometheus.example.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
