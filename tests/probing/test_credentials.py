"""Per-tenant credentials and `*_file` secrets: reading, change detection, what the
configuration accepts and refuses, and whose credential a check carries."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from monitor.config.loader import ConfigError, load_config_file
from monitor.config.model import CredentialsSpec
from monitor.core.clock import ManualClock
from monitor.core.results import (
    CREDENTIAL_EITHER,
    CREDENTIAL_NONE,
    CREDENTIAL_SHARED,
    CREDENTIAL_TENANT,
)
from monitor.probing.checks import compile_checks
from monitor.probing.credentials import TenantCredentials, parse_mapping, read_directory
from tests.helpers import BASE_CONFIG
from tests.secretdir import write_secret_dir


def test_a_secret_directory_maps_file_names_to_trimmed_values(tmp_path: Path) -> None:
    write_secret_dir(tmp_path, {"acme": "k-acme", "globex": "  k-globex \n", "empty": ""})
    (tmp_path / "not a tenant!").write_text("x")
    loaded = read_directory(tmp_path)
    # ..data and the timestamped directory are not tenants; an empty file is no credential
    assert dict(loaded.values) == {"acme": "k-acme", "globex": "k-globex"}
    assert loaded.problems == ("'not a tenant!' is not a tenant id; ignored",)


def test_a_mapping_file_is_read_and_its_problems_never_quote_values() -> None:
    loaded = parse_mapping("acme: k-1\nglobex: 12345\n'../x': k-3\ninitech: [a]\n", "keys.yaml")
    assert dict(loaded.values) == {"acme": "k-1", "globex": "12345"}
    assert len(loaded.problems) == 2
    broken = parse_mapping("acme: 'k-secret-value\n", "keys.yaml")
    assert broken.values == {} and "k-secret-value" not in broken.problems[0]


def test_credentials_are_reread_only_when_the_files_change(tmp_path: Path) -> None:
    write_secret_dir(tmp_path / "keys", {"acme": "k-1"})
    seen: list[str] = []
    store = TenantCredentials(
        CredentialsSpec(dir=str(tmp_path / "keys"), variable="api_key"),
        clock=ManualClock(),
        on_secrets=seen.extend,
    )
    assert store.refresh() and store.get("acme") == "k-1"
    assert not store.refresh()  # nothing changed: not read again
    write_secret_dir(tmp_path / "keys", {"acme": "k-2", "globex": "k-3"})
    assert store.refresh()
    assert (store.get("acme"), store.get("globex")) == ("k-2", "k-3")
    write_secret_dir(tmp_path / "keys", {"globex": "k-3"})
    assert store.refresh() and store.get("acme") is None
    assert sorted(set(seen)) == ["k-1", "k-2", "k-3"]  # every value known to the redactor


def test_reading_logs_counts_and_tenant_ids_never_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_secret_dir(tmp_path / "keys", {"acme": "k-secret-1", "globex": "k-secret-2"})
    store = TenantCredentials(
        CredentialsSpec(dir=str(tmp_path / "keys")), clock=ManualClock(), on_secrets=list
    )
    with caplog.at_level(logging.DEBUG):
        store.refresh()
        write_secret_dir(tmp_path / "keys", {"globex": "k-secret-2"})
        store.refresh()
    text = repr([r.__dict__ for r in caplog.records])
    assert "k-secret" not in text
    assert caplog.records[-1].fields["removed"] == ["acme"]  # type: ignore[attr-defined]


def keyed(tmp_path: Path, extra: str = "", headers: str = '{X-Api-Key: "{api_key}"}') -> Path:
    text = BASE_CONFIG.replace(
        "  default_vars: {query: shoes}",
        "  default_vars: {query: shoes}\n  credentials: {dir: keys, variable: api_key}",
    ).replace(
        'request: {path: "/v1/{tenant}/search", params: {q: "{query}"}}',
        f'request: {{path: "/v1/{{tenant}}/search", params: {{q: "{{query}}"}}, '
        f"headers: {headers}}}",
    )
    config = tmp_path / "probes.yaml"
    config.write_text(text + extra)
    return config


def test_a_check_using_the_tenant_key_points_its_refusals_at_the_tenant(tmp_path: Path) -> None:
    checks = compile_checks(load_config_file(keyed(tmp_path)).config)
    assert checks["search"].credential_scope == CREDENTIAL_TENANT
    assert checks["search"].credential_label == "the tenant's {api_key} (header X-Api-Key)"
    assert checks["recommendations"].credential_scope == CREDENTIAL_NONE


def test_the_tenant_key_with_recmons_token_is_either_and_names_both(tmp_path: Path) -> None:
    """A tenant's key and recmon's OAuth2 token on one request: a 401 is one or the other, so
    the check's refusals name both, not the tenant's key alone."""
    (tmp_path / "secret").write_text("s-1\n")
    config = keyed(tmp_path)
    config.write_text(
        config.read_text().replace(
            '  api: {base_url: "http://api.test"}',
            '  api: {base_url: "http://api.test", oauth2: {token_url: "http://auth.test/token", '
            "client_id: recmon, client_secret_file: secret}}",
        )
    )
    checks = compile_checks(load_config_file(config).config)
    assert checks["search"].credential_scope == CREDENTIAL_EITHER
    assert checks["search"].credential_label == (
        "the tenant's {api_key} (header X-Api-Key) or the OAuth2 token of target api"
    )
    assert checks["recommendations"].credential_scope == CREDENTIAL_SHARED


def test_recmons_own_credentials_are_shared(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("pw-9f1e2d\n")
    config = tmp_path / "probes.yaml"
    config.write_text(
        BASE_CONFIG.replace(
            '  api: {base_url: "http://api.test"}',
            '  api: {base_url: "http://api.test", basic_auth: {username: probe, '
            "password_file: password}}",
        )
    )
    loaded = load_config_file(config)
    checks = compile_checks(loaded.config)
    assert checks["search"].credential_scope == CREDENTIAL_SHARED
    assert checks["search"].credential_label == "the basic auth password of target api"
    assert loaded.config.targets["api"].basic_auth is not None
    assert loaded.config.targets["api"].basic_auth.password == "pw-9f1e2d"
    assert "pw-9f1e2d" in loaded.secrets
    assert str(tmp_path / "password") in loaded.secret_files


def test_a_credential_variable_may_not_have_a_fallback(tmp_path: Path) -> None:
    config = keyed(tmp_path)
    config.write_text(
        config.read_text().replace(
            "default_vars: {query: shoes}", "default_vars: {query: shoes, api_key: anonymous}"
        )
    )
    with pytest.raises(ConfigError) as error:
        load_config_file(config)
    assert "tenants.default_vars.api_key: {api_key} comes from tenants.credentials" in str(
        error.value
    )


def test_file_secrets_are_read_trimmed_and_problems_name_key_and_line(tmp_path: Path) -> None:
    (tmp_path / "pd").write_text("rk-3c9d1e77\n")
    (tmp_path / "hook").write_text("hk-0f4e2a9b")
    config = tmp_path / "probes.yaml"
    notify = """
notify:
  pagerduty: {routing_key_file: pd}
  webhook: {url: "http://hooks.test/x", header_files: {X-Token: hook}}
"""
    config.write_text(BASE_CONFIG + notify)
    loaded = load_config_file(config)
    assert loaded.config.notify.pagerduty is not None
    assert loaded.config.notify.pagerduty.routing_key == "rk-3c9d1e77"
    assert loaded.config.notify.webhook is not None
    assert loaded.config.notify.webhook.headers == {"X-Token": "hk-0f4e2a9b"}
    assert {"rk-3c9d1e77", "hk-0f4e2a9b"} <= loaded.secrets

    config.write_text(
        BASE_CONFIG + notify.replace("routing_key_file: pd", "routing_key_file: nope")
    )
    with pytest.raises(ConfigError) as missing:
        load_config_file(config)
    assert str(missing.value) == (
        f"{config}:21: notify.pagerduty.routing_key_file: cannot read {tmp_path}/nope: "
        "No such file or directory"
    )
    config.write_text(
        BASE_CONFIG + notify.replace("routing_key_file: pd", "routing_key: x, routing_key_file: pd")
    )
    with pytest.raises(ConfigError, match="set routing_key or routing_key_file, not both"):
        load_config_file(config)
