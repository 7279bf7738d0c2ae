"""check-config catches what used to pass: a 10,000-week interval, a timeout longer than the
interval, a tenants file that is not there, more probes in flight than the targets allow
connections; YAML syntax errors keep PyYAML's line and column; recmon's own wording."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from monitor.cli import main
from monitor.config.loader import ConfigError, load_config_file, load_config_text
from tests.helpers import ROOT

REPO = ROOT

BASE = """
targets:
  api: {base_url: "http://127.0.0.1:1"}
tenants: {static: [acme]}
checks:
  search: {target: api, request: {path: /search}}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, source="p.yaml")
    return [p.format("p.yaml") for p in caught.value.problems]


def test_an_interval_of_10000_weeks_is_an_error_on_its_line() -> None:
    assert problems(BASE + "defaults: {interval: 10000w}\n") == [
        "p.yaml:7: defaults.interval: interval 10000w is longer than a day: probes that far "
        "apart never fill an alert window (a unit typo?)"
    ]
    per_check = BASE.replace("{path: /search}}", "{path: /search}, interval: 2d}")
    assert problems(per_check)[0].startswith("p.yaml:6: checks.search.interval: interval 2d")
    load_config_text(BASE + "defaults: {interval: 1d}\n")  # a day is the limit


def test_a_timeout_longer_than_the_interval_is_a_warning_naming_the_check() -> None:
    loaded = load_config_text(BASE + "defaults: {interval: 10s, timeout: 30s}\n", source="p.yaml")
    assert [w.format("p.yaml") for w in loaded.warnings] == [
        "p.yaml:7: defaults.timeout: check search: timeout 30s is longer than its interval "
        "10s: a hanging target still holds the previous probe when the next is due, and that "
        "one is skipped"
    ]
    own = BASE.replace("{path: /search}}", "{path: /search}, timeout: 90s}")
    (warning,) = load_config_text(own).warnings
    assert warning.path == ("checks", "search", "timeout")
    assert load_config_text(BASE + "defaults: {interval: 10s, timeout: 10s}\n").warnings == ()


def test_a_tenants_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(BASE.replace("{static: [acme]}", "{file: tenants.txt}"))
    with pytest.raises(ConfigError) as caught:
        load_config_file(config)
    assert str(caught.value) == (
        f"{config}:4: tenants.file: no such file: {tmp_path / 'tenants.txt'}"
    )
    (tmp_path / "tenants.txt").write_text("acme\n")
    load_config_file(config)


def test_more_probes_in_flight_than_connections_is_a_warning() -> None:
    text = BASE + "engine: {max_in_flight: 256}\n"
    (warning,) = load_config_text(text, source="p.yaml").warnings
    assert warning.format("p.yaml").startswith(
        "p.yaml:7: engine.max_in_flight: 256 probes in flight, but the targets allow 100 "
        "connections (sum of max_connections)"
    )
    assert load_config_text(BASE + "engine: {max_in_flight: 100}\n").warnings == ()
    # Not set in the file: the defaults are nobody's choice.
    assert load_config_text(BASE).warnings == ()


def test_the_shipped_probes_yaml_passes_without_warnings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check-config", "--strict", str(REPO / "probes.yaml")]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err + captured.out


def test_check_config_prints_warnings_and_strict_fails_on_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(BASE + "defaults: {interval: 10s, timeout: 30s}\n")
    assert main(["check-config", str(config)]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(f"warning: {config}:7: defaults.timeout: check search")
    assert "ok (1 targets, 1 checks, 1 warning(s))" in captured.out
    assert main(["check-config", str(config), "--strict"]) == 2


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: [1, 2\nc: 3\n",
        BASE + 'location: "unterminated\n',
        "a:\n  - b\n c: 1\n",
        "a: {b: 1\n",
    ],
)
def test_yaml_syntax_errors_keep_pyyamls_line_and_column(text: str) -> None:
    with pytest.raises(yaml.MarkedYAMLError) as pyyaml:
        yaml.safe_load(text)
    mark = pyyaml.value.context_mark or pyyaml.value.problem_mark
    assert mark is not None
    (problem,) = problems(text)
    assert problem.startswith(f"p.yaml:{mark.line + 1}:{mark.column + 1}: invalid YAML: ")
    # Both of PyYAML's positions are kept, as it counts them.
    for found in (pyyaml.value.context_mark, pyyaml.value.problem_mark):
        if found is not None:
            assert f"(line {found.line + 1}, column {found.column + 1})" in problem


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('api: {base_url: "http://127.0.0.1:1", max_connections: many}', "expected a whole number"),
        ('api: {base_url: "http://127.0.0.1:1", max_connections: 0}', "must be at least 1"),
        (
            "search: {target: api, enabled: maybe, request: {path: /search}}",
            "expected true or false",
        ),
        (
            "search: {target: api, request: {path: /search, method: GOT}}",
            "expected one of 'GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE' or 'OPTIONS'",
        ),
        (
            "search: {target: api, request: {path: /search}, expect: {status: []}}",
            "needs at least 1",
        ),
    ],
)
def test_messages_are_recmons_wording(change: str, message: str) -> None:
    key = change.split(":", 1)[0]
    lines = [
        line[: len(line) - len(line.lstrip())] + change
        if line.strip().startswith(f"{key}:")
        else line
        for line in BASE.splitlines()
    ]
    (problem,) = problems("\n".join(lines))
    assert message in problem
    assert "Input should" not in problem
    assert "List should" not in problem


def test_dates_and_unmapped_types_read_as_recmons_too() -> None:
    (problem,) = problems(
        BASE + "alerts: {maintenance: [{start: yesterday, end: 2026-12-24T18:00:00Z}]}\n"
    )
    assert problem == (
        "p.yaml:7: alerts.maintenance[0].start: expected a date and time like "
        "2026-12-24T18:00:00Z (input is too short)"
    )
