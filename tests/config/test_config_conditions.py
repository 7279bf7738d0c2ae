"""check-config on conditions and schemas: a malformed one names its key path and line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from monitor.config.loader import ConfigError, load_config_text
from tests.helpers import BASE_CONFIG, load

REC_EXPECT = '    expect: {items: "$.recommendations", min_items: 1}'


def with_expect(lines: str) -> str:
    return BASE_CONFIG.replace(
        REC_EXPECT,
        '    expect:\n      items: "$.recommendations"\n' + textwrap.indent(lines, "      "),
    )


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(textwrap.dedent(text), source="p.yaml", environ={})
    return str(info.value).splitlines()


GOOD = """\
conditions:
  - name: item-ids-belong-to-tenant
    path: "$.recommendations[*].id"
    op: matches
    value: "^{tenant}-"
  - {name: enough, path: "$.recommendations", op: ">=", value: 3, length: true}
schema: {type: object, required: [recommendations]}
"""


def test_good_conditions_load_and_compile() -> None:
    from monitor.probing.checks import compile_checks

    check = compile_checks(load(with_expect(GOOD)).config)["recommendations"]
    assert [c.name for c in check.conditions] == ["item-ids-belong-to-tenant", "enough"]
    assert check.schema is not None
    assert check.tenant_pattern is not None and check.judged_across
    assert check.fallback  # on by default with items


@pytest.mark.parametrize(
    ("expect", "problem"),
    [
        (
            'conditions:\n  - {name: a, path: "$.x", op: "~=", value: 1}\n',
            "p.yaml:21: checks.recommendations.expect.conditions[0].op: expected one of",
        ),
        (
            'conditions:\n  - {name: ok, path: "$.x", op: "==", value: 1}\n'
            '  - {name: bad-regex, path: "$.recommendations[*].id", op: matches, value: "^(x"}\n',
            "p.yaml:22: checks.recommendations.expect.conditions[1]: invalid regular "
            "expression '^(x': missing ), unterminated subpattern at position 1",
        ),
        (
            'conditions:\n  - {name: a, path: "recommendations", op: present}\n',
            "p.yaml:21: checks.recommendations.expect.conditions[0].path: invalid JSON path",
        ),
        (
            'conditions:\n  - {name: a, path: "$.x", op: "in", value: 3}\n',
            "p.yaml:21: checks.recommendations.expect.conditions[0]: in takes a non-empty list",
        ),
        (
            'conditions:\n  - {name: a, path: "$.x", op: present}\n'
            '  - {name: a, path: "$.y", op: present}\n',
            "p.yaml:20: checks.recommendations.expect.conditions: condition names must be "
            "unique; repeated: a",
        ),
        (
            'conditions:\n  - {name: a, path: "$.x", op: "==", value: "{region}"}\n',
            "p.yaml:21: checks.recommendations.expect.conditions[0].value: template variable "
            "{region} is not defined",
        ),
        (
            "schema:\n  type: object\n  properties: {id: {type: strnig}}\n",
            "p.yaml:20: checks.recommendations.expect.schema: invalid JSON Schema at "
            "/properties/id/type: 'strnig' is not valid",
        ),
    ],
)
def test_malformed_conditions_and_schemas_name_key_and_line(expect: str, problem: str) -> None:
    lines = problems(with_expect(expect))
    assert any(line.startswith(problem) for line in lines), lines


def test_check_config_rejects_a_bad_condition_with_key_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "probes.yaml"
    bad.write_text(
        with_expect('conditions:\n  - {name: a, path: "$.x[*].id", op: matches, value: "[z-a]"}\n')
    )
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert (
        f"{bad}:21: checks.recommendations.expect.conditions[0]: invalid regular expression"
        in done.stderr
    ), done.stderr
