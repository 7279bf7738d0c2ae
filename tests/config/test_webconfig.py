"""The web configuration file (exporter-toolkit's format): what it accepts, and errors that
name the key and line but never a hash or a password written where a hash belongs."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import pytest

from monitor.cli import main
from monitor.config.loader import load_config_text
from monitor.config.webconfig import (
    WebConfigError,
    load_web_config,
    on_every_interface,
    parse_web_config,
)
from tests.helpers import BASE_CONFIG
from tests.tlscerts import CertificateAuthority

HASH = bcrypt.hashpw(b"s3cret-pass", bcrypt.gensalt(4)).decode()


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "server.crt").write_text("cert")
    (tmp_path / "server.key").write_text("key")
    (tmp_path / "clients.pem").write_text("ca")
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


def test_tls_and_users_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: clients.pem
  min_version: TLS13
basic_auth_users:
  prometheus: {HASH}
""",
    )
    web = load_web_config(path)
    assert web.cert_file == str(tmp_path / "server.crt")
    assert web.key_file == str(tmp_path / "server.key")
    assert web.client_ca_file == str(tmp_path / "clients.pem")
    assert (web.client_auth_type, web.min_version) == ("RequireAndVerifyClientCert", "TLS13")
    assert dict(web.users) == {"prometheus": HASH.encode()}
    assert HASH not in repr(web)
    assert web.describe() == (
        "TLS, client certificates (RequireAndVerifyClientCert), basic auth for 1 user(s)"
    )


def test_basic_auth_alone_is_allowed(tmp_path: Path) -> None:
    web = parse_web_config(f"basic_auth_users: {{a: '{HASH}'}}", source="w.yml", base=tmp_path)
    assert not web.tls and set(web.users) == {"a"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "tls_server_config: {cert_file: server.crt}",
            "w.yml:1: tls_server_config.key_file: required with tls_server_config",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            "  client_auth_type: RequireAnyClientCert\n",
            "w.yml:4: tls_server_config.client_auth_type: RequireAnyClientCert accepts "
            "certificates it does not verify",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            "  client_ca_file: clients.pem\n",
            "tls_server_config.client_auth_type: client_ca_file is set but client_auth_type "
            "is NoClientCert",
        ),
        (
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n",
            "w.yml:2: tls_server_config.cert_file: no such file:",
        ),
        ("rate_limit: {interval: 1s, burst: 20}", "rate_limit: not supported by recmon"),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [X]\n",
            "w.yml:4: tls_server_config.cipher_suites: not supported by recmon",
        ),
        ("basic_auth: {a: b}", "w.yml:1: basic_auth: unknown key"),
        ("- a list", "expected a mapping of keys"),
    ],
)
def test_errors_name_the_key_and_line(tmp_path: Path, text: str, expected: str) -> None:
    write(tmp_path, "")
    with pytest.raises(WebConfigError) as caught:
        parse_web_config(text, source="w.yml", base=tmp_path)
    assert expected in str(caught.value)


def test_a_password_where_a_hash_belongs_is_refused_and_never_repeated(tmp_path: Path) -> None:
    text = "basic_auth_users:\n  alice: hunter2-plaintext\n  bob: '$2b$10$tooshort'\n"
    with pytest.raises(WebConfigError) as caught:
        parse_web_config(text, source="w.yml", base=tmp_path)
    message = str(caught.value)
    assert "w.yml:2: basic_auth_users.alice: not a bcrypt hash" in message
    assert "w.yml:3: basic_auth_users.bob: not a bcrypt hash" in message
    assert "hunter2" not in message and "tooshort" not in message


def test_a_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="cannot read the web configuration: No such file"):
        load_web_config(tmp_path / "nope.yml")


def test_check_config_warns_when_the_page_is_served_on_every_interface_unprotected() -> None:
    def warnings(metrics: str) -> list[str]:
        loaded = load_config_text(BASE_CONFIG + metrics, source="probes.yaml")
        return [w.format("probes.yaml") for w in loaded.warnings]

    [warning] = warnings('metrics: {listen: "0.0.0.0:9464"}\n')
    assert warning.startswith("probes.yaml:19: metrics.listen: 0.0.0.0:9464 serves the status")
    assert "set metrics.web_config_file" in warning
    assert warnings('metrics: {listen: "[::]:9464"}\n')
    assert warnings("") == []  # the default is loopback
    assert warnings('metrics: {listen: "127.0.0.1:9464"}\n') == []
    protected = 'metrics: {listen: "0.0.0.0:9464", web_config_file: web.yml}\n'
    assert warnings(protected) == []


def test_which_listen_addresses_are_every_interface() -> None:
    assert on_every_interface("0.0.0.0:9464") and on_every_interface("[::]:9464")
    assert on_every_interface(":9464")
    assert not on_every_interface("127.0.0.1:9464") and not on_every_interface("[::1]:9464")
    assert not on_every_interface("10.0.0.5:9464")  # one interface: chosen on purpose


def test_check_config_checks_the_web_configuration_and_its_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ca: CertificateAuthority
) -> None:
    server = ca.issue("recmon", names=("127.0.0.1",))
    config = tmp_path / "probes.yaml"
    config.write_text(BASE_CONFIG + 'metrics: {listen: "0.0.0.0:9464", web_config_file: web.yml}\n')
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config: {{cert_file: {server.cert_pem.name},"
        f" key_file: {server.key_pem.name}}}\n"
        f"basic_auth_users: {{prometheus: '{HASH}'}}\n"
    )
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr()
    assert "warning" not in out.err  # on every interface, but protected

    other = ca.issue("other", names=("127.0.0.1",))
    server.key_pem.write_bytes(other.key_pem.read_bytes())  # a key of another certificate
    assert main(["check-config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"web configuration error: {web}: tls_server_config: cannot load cert_file" in err
    assert "PRIVATE KEY" not in err and HASH not in err
