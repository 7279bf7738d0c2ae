"""`slo:` under a check and `alerts.slo`: objectives as ratios or percentages (Sloth and Pyrra
write 99.5), errors named by key path and line."""

from __future__ import annotations

import textwrap

import pytest

from monitor.config.loader import ConfigError, load_config_text
from monitor.core.results import Outcome
from tests.helpers import BASE_CONFIG, checks, load

SEARCH = '    expect: {items: "$.results", min_items: 1}\n'


def with_slo(slo: str, extra: str = "") -> str:
    assert SEARCH in BASE_CONFIG
    return BASE_CONFIG.replace(SEARCH, SEARCH + f"    slo: {slo}\n", 1) + extra


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(textwrap.dedent(text), source="p.yaml", environ={})
    return str(info.value).splitlines()


@pytest.mark.parametrize("objective", ["0.995", "99.5", '"99.5%"', '" 99.5 %"'])
def test_an_objective_reads_as_a_ratio_or_a_percentage(objective: str) -> None:
    config = load(with_slo(f"{{objective: {objective}, window: 28d}}")).config
    slo = config.checks["search"].slo
    assert slo is not None
    assert slo.objective == pytest.approx(0.995) and slo.window == 28 * 86400
    assert not slo.per_tenant and Outcome.OK not in slo.error_outcomes
    assert Outcome.EMPTY in slo.error_outcomes  # every outcome but ok spends the budget
    assert config.checks["recommendations"].slo is None
    assert config.alerts.slo.page_severity.value == "critical"
    assert config.alerts.slo.ticket_severity.value == "warning"
    assert checks(with_slo(f"{{objective: {objective}}}"))["search"].slo == config.checks[
        "search"
    ].slo.model_copy(update={"window": 30 * 86400.0})


def test_no_slo_unless_configured() -> None:
    assert all(spec.slo is None for spec in load().config.checks.values())


def test_a_bad_objective_names_key_path_and_line() -> None:
    (line,) = problems(with_slo("{objective: 100}"))
    assert line.startswith("p.yaml:13: checks.search.slo.objective: ")
    assert "an objective of 100% leaves no error budget" in line
    (line,) = problems(with_slo('{objective: "ninety%"}'))
    assert line.startswith("p.yaml:13: checks.search.slo.objective: expected an objective like")


def test_bad_slo_keys_name_key_path_and_line() -> None:
    (line,) = problems(with_slo("{objective: 0.99, windw: 7d}"))
    assert line == "p.yaml:13: checks.search.slo.windw: unknown key"
    (line,) = problems(with_slo("{objective: 0.99, errors: [ok]}"))
    assert line.startswith("p.yaml:13: checks.search.slo: ")
    assert "errors: list the outcomes that spend the budget (not ok)" in line
    (line,) = problems(with_slo("{objective: 0.99}", "alerts: {slo: {min_errors: 0}}\n"))
    assert line.startswith("p.yaml:20: alerts.slo.min_errors: ")
