"""`recmon report --prometheus URL` against a real Prometheus holding two hours of
recmon_probes_total (backfilled with promtool): the same availability per tenant × check as
`recmon report` gives from the state file for the same probes."""

from __future__ import annotations

import json
import math
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.app.history import HistoryRecorder
from monitor.app.history_report import build_report
from monitor.cli import main
from monitor.core.clock import ManualClock
from monitor.core.results import Outcome, ProbeResult
from monitor.state.store import StateStore
from tests.binaries import free_port, require_binary, running

pytestmark = pytest.mark.integration
HOUR = 3600
SCRAPE = 15
TENANTS = ("acme", "globex", "initech")


def outcome_at(tenant: str, minute: int) -> Outcome:
    if tenant == "acme" and 70 <= minute < 80:
        return Outcome.HTTP_ERROR
    if tenant == "globex" and 90 <= minute < 93:
        return Outcome.EMPTY
    return Outcome.OK


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_prometheus_report_matches_the_state_file_s(tmp_path: Path, capsys) -> None:
    # Two hours that ended a few hours ago (backfilled blocks must lie in the past).
    start = datetime.now(UTC).timestamp() // HOUR * HOUR - 6 * HOUR
    probes = [
        ProbeResult(t, "search", outcome_at(t, m), 0.05, start + m * 60 + 30.0)
        for m in range(120)
        for t in TENANTS
    ]
    store = StateStore.open(tmp_path / "state.db")
    recorder = HistoryRecorder(ManualClock(start + 2 * HOUR))
    for probe in probes:
        recorder.observe(probe)
    store.write_history(recorder.changes().write)
    truth = build_report(store.read_history(-math.inf, math.inf), start + HOUR, start + 2 * HOUR)
    store.close()
    expected = {(r.tenant, r.check): r.availability_pct for r in truth.availability}

    lines = ["# TYPE recmon_probes_total counter"]
    for at in range(0, 2 * HOUR + 1, SCRAPE):
        now = start + at
        for tenant in TENANTS:
            for outcome in sorted({p.outcome for p in probes if p.tenant == tenant}):
                count = sum(
                    1
                    for p in probes
                    if p.tenant == tenant and p.outcome == outcome and p.started_at <= now
                )
                lines.append(
                    f'recmon_probes_total{{tenant="{tenant}",check="search",'
                    f'outcome="{outcome.value}",location="eu"}} {count} {now:.0f}'
                )
    # OpenMetrics wants a metric family's samples together, in time order per series.
    lines = [
        lines[0],
        *sorted(lines[1:], key=lambda line: (line.split(" ")[0], float(line.split(" ")[-1]))),
    ]
    data = tmp_path / "probes.om"
    data.write_text("\n".join(lines) + "\n# EOF\n")
    tsdb = tmp_path / "tsdb"
    done = subprocess.run(
        [
            require_binary("promtool"),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(data),
            str(tsdb),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 15s}\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        require_binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={tsdb}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with running(args, ready_url=f"{url}/-/ready", log=tmp_path / "prometheus.log"):
        period = ["--from", iso(start + HOUR), "--to", iso(start + 2 * HOUR)]
        assert main(["report", "--prometheus", url, "--format", "json", *period]) == 0
        report = json.loads(capsys.readouterr().out)
    found = {(r["tenant"], r["check"]): r["availability_pct"] for r in report["availability"]}
    assert found.keys() == expected.keys()
    for key, pct in expected.items():
        assert found[key] == pytest.approx(pct, abs=0.01), key
    assert expected[("acme", "search")] == pytest.approx(100 * 50 / 60, abs=0.001)
    assert "Prometheus" in report["notes"][0]
