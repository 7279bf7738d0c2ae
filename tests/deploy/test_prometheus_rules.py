"""The shipped Prometheus rules: valid for promtool, and their unit tests pass."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.binaries import require_binary
from tests.helpers import ROOT

RULES = ROOT / "deploy" / "prometheus"


def promtool() -> str:
    return require_binary("promtool")


def test_rules_pass_promtool_check() -> None:
    done = subprocess.run(
        [
            promtool(),
            "check",
            "rules",
            str(RULES / "recmon-rules.yml"),
            str(RULES / "recmon-locations.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


UNIT_TESTS = (
    "recmon-rules.test.yml",
    "recmon-rules-days.test.yml",
    "recmon-locations.test.yml",
    "recmon-slo.test.yml",
)


@pytest.mark.background  # promtool in virtual time, CPU-bound
@pytest.mark.parametrize("recording_first", [True, False], ids=["recording-first", "alerts-first"])
def test_rule_unit_tests_pass_whichever_group_prometheus_evaluates_first(
    tmp_path: Path, recording_first: bool
) -> None:
    """Prometheus runs each rule group on its own ticker, so an alert may read a recording
    rule's value from one evaluation back; promtool picks a random order unless told. Each
    unit test holds in both orders (a test that held only in one failed CI 2 runs in 12).
    A test whose rules are one group (the SLO rules) has one order: it runs in the first
    only (promtool spent 5 CPU-s running it twice alike)."""
    import yaml

    copies = []
    for name in UNIT_TESTS:
        test = yaml.safe_load((RULES / "tests" / name).read_text())
        test["rule_files"] = [str((RULES / "tests" / f).resolve()) for f in test["rule_files"]]
        groups = [
            g["name"]
            for f in test["rule_files"]
            for g in yaml.safe_load(Path(f).read_text())["groups"]
        ]
        recording = [g for g in groups if "record" in g]
        others = [g for g in groups if g not in recording]
        if not recording_first and (not recording or not others):
            continue  # the same order as recording-first's
        test["group_eval_order"] = recording + others if recording_first else others + recording
        copy = tmp_path / name
        copy.write_text(yaml.safe_dump(test, sort_keys=False))
        copies.append(str(copy))
    assert len(copies) >= 3  # the files of several groups run in both orders
    # Go's collector less often (GOGC=400: ~200 MB at most here, against ~120): promtool's
    # run of the four unit test files took 6.5 CPU-s against 8.4 (medians of 4 runs).
    done = subprocess.run(
        [promtool(), "test", "rules", *copies],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "GOGC": "400"},
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_summary_description_and_an_absolute_runbook_link() -> None:
    import yaml

    spec = importlib.util.spec_from_file_location("recmon_runbooks", RULES / "runbooks.py")
    assert spec is not None and spec.loader is not None
    runbooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runbooks)
    base = runbooks.DEFAULT_BASE_URL

    alerts = [
        r
        for name in ("recmon-rules.yml", "recmon-locations.yml")
        for g in yaml.safe_load((RULES / name).read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    ]
    assert len(alerts) >= 14
    root = RULES.parent.parent
    for alert in alerts:
        annotations = alert["annotations"]
        assert annotations["summary"] and annotations["description"], alert["alert"]
        # A pager opens a link, not a path: every one from the one documented base URL.
        link = annotations["runbook_url"]
        assert link.startswith(base + "/docs/runbooks/"), f"{alert['alert']}: {link}"
        page = link.removeprefix(base + "/")
        assert (root / page).is_file(), f"{alert['alert']}: {page} missing"


def test_the_runbook_base_url_option_rewrites_every_link_and_promtool_accepts_them(
    tmp_path: Path,
) -> None:
    copies = [tmp_path / name for name in ("recmon-rules.yml", "recmon-locations.yml")]
    for copy in copies:
        copy.write_text((RULES / copy.name).read_text())
    base = "https://docs.internal.example:8443/platform/recmon/-/blob/v2/"
    script = str(RULES / "runbooks.py")
    subprocess.run(
        [sys.executable, script, "--runbook-base-url", base, *map(str, copies)],
        check=True,
        timeout=60,
    )
    texts = [copy.read_text() for copy in copies]
    links = [
        line.split("runbook_url:")[1].strip()
        for text in texts
        for line in text.splitlines()
        if "runbook_url:" in line
    ]
    assert len(links) >= 20
    assert all(link.startswith(base + "docs/runbooks/") for link in links), links
    # Only the links changed.
    for copy, text in zip(copies, texts, strict=True):
        before = (RULES / copy.name).read_text().splitlines()
        after = text.splitlines()
        changed = [b for b, a in zip(before, after, strict=True) if b != a]
        assert len(before) == len(after)
        assert changed == [b for b in before if "runbook_url:" in b]
    check = [sys.executable, script, "--check", *map(str, copies)]
    assert subprocess.run(check, timeout=60).returncode == 0
    done = subprocess.run(
        [promtool(), "check", "rules", *map(str, copies)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The location rules' generator takes the same option and writes the same links.
    generated = tmp_path / "generated.yml"
    locations = [sys.executable, str(RULES / "locations.py"), "--runbook-base-url", base]
    subprocess.run([*locations, "-o", str(generated)], check=True, timeout=60)
    assert generated.read_text() == texts[1]


def script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """One of deploy/prometheus's generator scripts, run as a person runs it."""
    return subprocess.run(
        [sys.executable, str(RULES / name), *args], capture_output=True, text=True, timeout=60
    )


def test_the_shipped_links_pass_the_runbook_check() -> None:
    done = script("runbooks.py", "--check")
    assert done.returncode == 0, done.stderr


def test_the_runbook_check_refuses_a_relative_link_and_a_missing_page(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "          runbook_url: docs/runbooks/empty-results.md\n"
        "          runbook_url: https://git.example.com/r/docs/runbooks/no-such-page.md\n"
    )
    done = script("runbooks.py", "--check", str(rules))
    assert done.returncode == 1
    assert "rules.yml:1: docs/runbooks/empty-results.md is not" in done.stderr
    assert "rules.yml:2: no runbook docs/runbooks/no-such-page.md" in done.stderr


def test_example_prometheus_configuration_is_valid() -> None:
    done = subprocess.run(
        [promtool(), "check", "config", str(RULES / "prometheus.example.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_location_rules_are_the_generators_output_with_its_defaults() -> None:
    done = script("locations.py", "--check")
    assert done.returncode == 0, done.stderr


def test_the_generator_scales_windows_and_durations(tmp_path: Path) -> None:
    out = tmp_path / "fast.yml"
    args = ["--window", "20s", "--for", "5s", "--narrow-for", "6s", "--stale-for", "7s"]
    args += ["--quorum", "3", "-o", str(out)]
    subprocess.run([sys.executable, str(RULES / "locations.py"), *args], check=True, timeout=60)
    text = out.read_text()
    assert "[20s]" in text and "[5m]" not in text
    assert "for: 5s" in text and "for: 6s" in text and "for: 7s" in text
    assert "for: 2m" not in text and "for: 3m" not in text
    assert ">= 3" in text
    done = subprocess.run(
        [promtool(), "check", "rules", str(out)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


ALERTMANAGER = RULES.parent / "alertmanager" / "recmon-locations.yml"


def test_the_alertmanager_routing_is_valid_and_pages_one_class_per_cause() -> None:
    amtool = require_binary("amtool")
    done = subprocess.run(
        [amtool, "check-config", str(ALERTMANAGER)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr

    def receiver(*labels: str) -> str:
        routed = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert routed.returncode == 0, routed.stderr
        return routed.stdout.strip()

    assert receiver("class=platform", "check=search") == "recmon-pager"
    assert receiver("class=tenant", "tenant=acme") == "recmon-pager"
    assert receiver("class=stale", "location=eu") == "recmon-pager"
    assert receiver("class=location", "location=eu") == "recmon-tickets"


SLO_RULES = RULES / "recmon-slo.example.yml"
SLO_CONFIG = RULES / "slo-example.yaml"


def test_the_slo_rules_pass_promtool_check() -> None:
    """Their unit tests (a 15x burn pages within the 5m window, a 1.2x burn only tickets,
    none is nothing) run with the others, in both group orders."""
    done = subprocess.run(
        [promtool(), "check", "rules", str(SLO_RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_slo_rules_are_the_generators_output_for_their_configuration() -> None:
    args = ["--config", str(SLO_CONFIG), "--check", "-o", str(SLO_RULES)]
    done = subprocess.run(
        [sys.executable, str(RULES / "slo.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_the_slo_generator_scales_the_windows_with_the_slo_window(tmp_path: Path) -> None:
    config = tmp_path / "probes.yaml"
    text = SLO_CONFIG.read_text().replace(
        "slo: {objective: 99.5%}", "slo: {objective: 0.999, window: 7d}"
    )
    config.write_text(text)
    out = tmp_path / "slo.yml"
    subprocess.run(
        [sys.executable, str(RULES / "slo.py"), "--config", str(config), "-o", str(out)],
        check=True,
        timeout=60,
    )
    rules = out.read_text()
    # 1h and 5m of a 30-day SLO are 14m and 70s of a 7-day one.
    assert 'check:recmon_slo_burn_rate:14m{check="search"} >= 14.4' in rules
    assert 'check:recmon_slo_burn_rate:70s{check="search"} >= 14.4' in rules
    assert "/ 0.001\n" in rules and "slo: search-99.9-7d" in rules
    done = subprocess.run(
        [promtool(), "check", "rules", str(out)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_slo_generator_says_when_there_is_nothing_to_generate(tmp_path: Path) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(SLO_CONFIG.read_text().replace("slo:", "# slo:").replace("      ", "#     "))
    done = subprocess.run(
        [sys.executable, str(RULES / "slo.py"), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "no check has an slo: key" in done.stderr


def test_slo_alerts_page_once_recmons_own_and_the_rules_copies_recorded() -> None:
    amtool = require_binary("amtool")
    config = RULES.parent / "alertmanager" / "alertmanager.yml"

    def receiver(*labels: str) -> str:
        routed = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={config}", *labels],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert routed.returncode == 0, routed.stderr
        return routed.stdout.strip()

    for name in ("RecmonErrorBudgetBurn", "RecmonErrorBudgetSlowBurn"):
        assert receiver(f"alertname={name}", "source=recmon", "check=search") == "pager"
        assert receiver(f"alertname={name}", "check=search", "scope=fleet") == "recorded"
