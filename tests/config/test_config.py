from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from monitor.config.loader import ConfigError, dotted, load_config_file, load_config_text
from monitor.config.units import Rate, parse_duration, parse_rate, parse_size
from tests.helpers import BASE_CONFIG, ROOT, load


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(textwrap.dedent(text), source="p.yaml", environ=environ or {})
    return str(info.value).splitlines()


def test_base_config_loads_with_defaults() -> None:
    config = load().config
    assert config.defaults.interval == 10
    assert config.checks["search"].expect.status == [200]
    assert config.checks["recommendations"].after == "search"
    assert config.engine.max_in_flight == 256


def test_repository_probes_yaml_is_valid() -> None:
    loaded = load_config_file(ROOT / "probes.yaml", environ={})
    assert set(loaded.config.checks) == {"search", "recommendations"}


def test_unknown_key_names_path_and_line() -> None:
    text = BASE_CONFIG.replace(
        '  api: {base_url: "http://api.test"}', '  api: {base_url: "http://api.test", colour: red}'
    )
    assert problems(text) == ["p.yaml:4: targets.api.colour: unknown key"]


def test_bad_duration_names_path_and_line() -> None:
    text = BASE_CONFIG.replace("interval: 10s", "interval: ten seconds")
    (line,) = problems(text)
    assert line.startswith("p.yaml:2: defaults.interval: invalid duration 'ten seconds'")


def test_missing_environment_variable_names_path_line_and_variable() -> None:
    text = BASE_CONFIG.replace(
        '{base_url: "http://api.test"}',
        '{base_url: "http://api.test", headers: {Authorization: "Bearer ${API_TOKEN}"}}',
    )
    (line,) = problems(text)
    assert (
        line == "p.yaml:4: targets.api.headers.Authorization: "
        "environment variable API_TOKEN is not set (referenced as ${API_TOKEN})"
    )


def test_environment_values_are_substituted_and_remembered_as_secrets() -> None:
    text = BASE_CONFIG.replace(
        '{base_url: "http://api.test"}',
        '{base_url: "http://api.test", headers: {Authorization: "Bearer ${API_TOKEN}"}}',
    )
    loaded = load(text, environ={"API_TOKEN": "s3cr3t-token"})
    assert loaded.config.targets["api"].headers["Authorization"] == "Bearer s3cr3t-token"
    assert loaded.secrets == {"s3cr3t-token"}


def test_environment_default_and_dollar_escape() -> None:
    text = BASE_CONFIG.replace('"http://api.test"', '"${API_URL:-http://fallback.test}"').replace(
        'q: "{query}"', 'q: "$${query}"'
    )
    loaded = load(text)
    assert loaded.config.targets["api"].base_url == "http://fallback.test"
    assert loaded.config.checks["search"].request.params["q"] == "${query}"
    assert loaded.secrets == frozenset()


def test_all_problems_are_reported_together_sorted_by_line() -> None:
    text = """
    defaults: {interval: 5x}
    targets:
      api: {base_url: "ftp://api.test"}
    tenants:
      static: [acme, ../admin, 7]
    checks:
      search:
        target: nowhere
        request: {path: "v1/{tenant}", method: FETCH}
        expect: {items: results, min_items: -1}
    """
    lines = problems(text)
    assert lines[0].startswith("p.yaml:2: defaults.interval:")
    assert lines[1].startswith(
        "p.yaml:4: targets.api.base_url: expected an http:// or https:// URL"
    )
    assert "tenants.static[1]: invalid tenant id '../admin'" in lines[2]
    assert "tenants.static[2]: tenant id must be a string, got int (quote it in YAML)" in lines[3]
    joined = "\n".join(lines)
    assert "p.yaml:10: checks.search.request.method:" in joined
    assert "p.yaml:10: checks.search.request.path: Value" not in joined
    assert "p.yaml:10: checks.search.request.path: path must start with '/'" in joined
    assert "p.yaml:11: checks.search.expect.items: invalid JSON path 'results'" in joined
    assert "p.yaml:11: checks.search.expect.min_items:" in joined


def test_cross_references_are_checked() -> None:
    text = BASE_CONFIG.replace(
        "target: api\n    after: search", "target: elsewhere\n    after: serch"
    )
    lines = problems(text)
    assert any(
        "checks.recommendations.target: unknown target 'elsewhere' (targets: api)" in line
        for line in lines
    )
    assert any("checks.recommendations.after: unknown check 'serch'" in line for line in lines)


def test_undefined_template_variable_is_an_error() -> None:
    text = BASE_CONFIG.replace('q: "{query}"', 'q: "{qeury}"')
    (line,) = problems(text)
    assert line.startswith(
        "p.yaml:11: checks.search.request.params: template variable {qeury} is not defined"
    )


def test_capture_is_only_visible_to_checks_that_run_after() -> None:
    text = BASE_CONFIG.replace("    after: search\n", "")
    (line,) = problems(text)
    assert (
        "checks.recommendations.request.params: template variable {product} is not defined" in line
    )


def test_dependency_cycle_is_rejected() -> None:
    text = BASE_CONFIG.replace(
        "    capture: {product", "    after: recommendations\n    capture: {product"
    )
    assert any("cycle" in line for line in problems(text))


def test_exactly_one_tenant_source() -> None:
    text = BASE_CONFIG.replace("static: [acme, globex]", "static: [acme]\n  file: tenants.txt")
    (line,) = problems(text)
    assert (
        "tenants: set exactly one tenant source: static, file or discover (found static, file)"
        in line
    )


def test_duplicate_keys_are_rejected() -> None:
    text = BASE_CONFIG.replace(
        "defaults: {interval: 10s, timeout: 2s}", "defaults: {interval: 10s, interval: 20s}"
    )
    (line,) = problems(text)
    assert line == "p.yaml:2: duplicate key 'interval' (first defined on line 2)"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "the configuration must be a mapping of keys"),
        ("- a\n- b\n", "the configuration must be a mapping of keys"),
        ("a: [\n", "invalid YAML"),
        ("a: &x [*x]\n", "an alias refers to itself"),
        ("a: !!python/object:os.system ls\n", "invalid YAML"),
    ],
)
def test_malformed_documents_give_clean_errors(text: str, message: str) -> None:
    (line,) = problems(text)
    assert message in line


def test_alias_expansion_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    (line,) = problems("\n".join(lines) + "\n")
    assert "too large once aliases expand" in line


def test_units() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    assert parse_duration(3) == 3.0
    assert parse_size("1MiB") == 1048576
    assert parse_size("2 KB") == 2000
    assert parse_rate("3000/m") == Rate(3000, 60)
    assert parse_rate("50/s").per_second == 50
    for bad in ("5", "1h 30m", "m", "-1s", True):
        with pytest.raises(ValueError):
            parse_duration(bad)
    with pytest.raises(ValueError):
        parse_rate("0/s")


def test_check_config_command_exits_non_zero_with_path_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "probes.yaml"
    bad.write_text(
        BASE_CONFIG.replace("interval: 10s", "interval: soon").replace(
            '{base_url: "http://api.test"}',
            '{base_url: "http://api.test", extra: 1, headers: {X: "${RECMON_TEST_UNSET_VAR}"}}',
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"{bad}:2: defaults.interval: invalid duration 'soon'" in done.stderr
    assert f"{bad}:4: targets.api.extra: unknown key" in done.stderr
    assert (
        f"{bad}:4: targets.api.headers.X: environment variable RECMON_TEST_UNSET_VAR is not set"
        in done.stderr
    )


def test_check_config_command_accepts_a_good_file(tmp_path: Path) -> None:
    good = tmp_path / "probes.yaml"
    good.write_text(BASE_CONFIG)
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", str(good)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "ok (1 targets, 2 checks)" in done.stdout


def test_check_config_never_prints_secret_values(tmp_path: Path) -> None:
    bad = tmp_path / "probes.yaml"
    bad.write_text(
        BASE_CONFIG.replace('{base_url: "http://api.test"}', '{base_url: "${RECMON_TEST_SECRET}"}')
    )
    env = {"RECMON_TEST_SECRET": "not-a-url-but-a-secret", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2
    assert "targets.api.base_url" in done.stderr
    assert "not-a-url-but-a-secret" not in done.stderr + done.stdout


def test_missing_or_garbled_ca_files_are_configuration_errors(tmp_path: Path) -> None:
    """Caught when the file is loaded (check-config, a reload), never when clients are built."""
    (tmp_path / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    config = tmp_path / "probes.yaml"
    config.write_text(
        BASE_CONFIG.replace(
            '{base_url: "http://api.test"}',
            '{base_url: "https://api.test", tls: {ca_file: garbage.pem}}',
        )
        + "tls: {hosts: ['api.test:443'], ca_file: missing.pem}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config_file(config)
    problems = {(dotted(p.path), p.line) for p in caught.value.problems}
    assert problems == {("targets.api.tls.ca_file", 4), ("tls.ca_file", 19)}
    assert "missing.pem" in str(caught.value) and "not a usable CA file" in str(caught.value)


def test_credentials_written_into_urls_are_secrets_too() -> None:
    loaded = load(
        BASE_CONFIG.replace(
            "  static: [acme, globex]\n",
            '  discover: {url: "https://bot:hunter2-discovery@tenants.test/list?api_key=K3Y-42"}\n',
        ).replace(
            '{base_url: "http://api.test"}',
            '{base_url: "http://api.test", proxy: "http://me:pr%40xy-pw@proxy.test:3128"}',
        )
        + "notify:\n"
        + '  heartbeat: {url: "https://hc-ping.test/0f8fad5b-d9cb-469f-a165-70867728950e"}\n'
        + '  webhook: {url: "https://hooks.test/in?token=T0KEN-99&team=search"}\n'
    )
    assert {
        "hunter2-discovery",
        "K3Y-42",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "T0KEN-99",
        "pr%40xy-pw",  # the proxy's password as written, and as it goes out
        "pr@xy-pw",
    } <= loaded.secrets
    assert "search" not in loaded.secrets  # only credential-looking parameters


@pytest.mark.parametrize(
    "proxy", ["https://me:pw-1234@proxy.test:3128", "socks5://proxy.test:1080", "http://"]
)
def test_a_proxy_must_be_an_http_url_and_the_error_never_echoes_it(proxy: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(
            BASE_CONFIG.replace(
                '{base_url: "http://api.test"}',
                f'{{base_url: "http://api.test", proxy: "{proxy}"}}',
            )
        )
    (problem,) = caught.value.problems
    assert dotted(problem.path) == "targets.api.proxy"
    assert "http://[user:password@]host:port" in problem.message
    assert "pw-1234" not in str(caught.value)


def test_a_variable_only_some_static_tenants_define_is_an_error() -> None:
    text = BASE_CONFIG.replace(
        "  default_vars: {query: shoes}\n", "  vars: {acme: {query: shoes}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load(text)
    (problem,) = caught.value.problems
    assert dotted(problem.path) == "checks.search.request.params"
    assert "{query} is set for some tenants only; not for globex" in problem.message


def test_target_addresses_are_ip_addresses_for_the_asyncio_transport() -> None:
    with_addresses = BASE_CONFIG.replace(
        '{base_url: "http://api.test"}',
        '{base_url: "http://api.test", addresses: ["10.0.0.1", "::1"]}',
    )
    assert load(with_addresses).config.targets["api"].addresses == ["10.0.0.1", "::1"]
    with pytest.raises(ConfigError) as caught:
        load(with_addresses.replace('"::1"', '"backend-2"'))
    (problem,) = caught.value.problems
    assert dotted(problem.path) == "targets.api.addresses[1]"
    assert "expected an IP address" in problem.message
    with pytest.raises(ConfigError) as caught:
        load(with_addresses + "engine: {transport: httpx}\n")
    (problem,) = caught.value.problems
    assert dotted(problem.path) == "targets.api.addresses"
    assert problem.line is not None
    assert "needs engine.transport asyncio (it is httpx)" in problem.message
