"""The shipped availability recording rules (deploy/prometheus/recmon-history.yml) give the
numbers `recmon report` gives for the same probes: the probes go through the history recorder
into a state file and, as recmon_probes_total counters scraped every 15 s, into promtool."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import yaml

from monitor.app.history import HistoryRecorder
from monitor.app.history_report import build_report
from monitor.core.clock import ManualClock
from monitor.core.results import Outcome, ProbeResult
from monitor.state.store import StateStore
from tests.binaries import require_binary
from tests.helpers import ROOT

RULES = ROOT / "deploy" / "prometheus" / "recmon-history.yml"
HOUR = 3600
SCRAPE = 15


def outcome_at(tenant: str, minute: int) -> Outcome:
    if tenant == "acme" and (10 <= minute < 14 or 70 <= minute < 80):
        return Outcome.HTTP_ERROR
    if tenant == "globex" and 90 <= minute < 93:
        return Outcome.EMPTY
    if tenant == "initech" and minute >= 60:
        return Outcome.TIMEOUT  # no good probe in the second hour
    return Outcome.OK


def test_recorded_availability_equals_the_report_s(tmp_path: Path) -> None:
    tenants = ("acme", "globex", "initech")
    # One probe a minute, 30 s into it, for two hours from the epoch (promtool's time 0).
    probes = [
        ProbeResult(t, "search", outcome_at(t, m), 0.05, m * 60 + 30.0)
        for m in range(120)
        for t in tenants
    ]
    store = StateStore.open(tmp_path / "state.db")
    recorder = HistoryRecorder(ManualClock(2 * HOUR))
    for probe in probes:
        recorder.observe(probe)
    snapshot = recorder.changes()
    store.write_history(snapshot.write)
    report = build_report(store.read_history(-math.inf, math.inf), HOUR, 2 * HOUR)
    store.close()
    expected = {row.tenant: row.good / row.probes for row in report.availability}
    assert expected["acme"] == 50 / 60 and expected["initech"] == 0.0

    series = []
    for tenant in tenants:
        for outcome in sorted({p.outcome for p in probes if p.tenant == tenant}):
            counts = [
                sum(
                    1
                    for p in probes
                    if p.tenant == tenant and p.outcome == outcome and p.started_at <= at
                )
                for at in range(0, 2 * HOUR + 1, SCRAPE)
            ]
            series.append(
                {
                    "series": f'recmon_probes_total{{tenant="{tenant}",check="search",'
                    f'outcome="{outcome.value}",location="eu"}}',
                    "values": " ".join(map(str, counts)),
                }
            )
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": f"{SCRAPE}s",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": "tenant_check:recmon_availability:ratio_1h",
                        "eval_time": "2h",
                        "exp_samples": [
                            {
                                "labels": "tenant_check:recmon_availability:ratio_1h"
                                f'{{tenant="{tenant}",check="search"}}',
                                "value": value,
                            }
                            for tenant, value in sorted(expected.items())
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "history.test.yml"
    path.write_text(yaml.safe_dump(test))
    done = subprocess.run(
        [require_binary("promtool"), "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_history_rules_pass_promtool_check() -> None:
    done = subprocess.run(
        [require_binary("promtool"), "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
