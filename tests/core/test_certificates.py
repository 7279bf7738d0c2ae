"""Certificate parsing, name matching and the TLS prober's verdicts (pure parts, fast)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from monitor.core.certinfo import CertificateInfo, matches_hostname, parse_certificate
from tests.tlscerts import CertificateAuthority


def info(*names: str) -> CertificateInfo:
    dns = tuple(n for n in names if not n[0].isdigit())
    ips = tuple(n for n in names if n[0].isdigit())
    return CertificateInfo("CN=x", "x", dns, ips, "CN=ca", "1", 0, 1, "ab", False)


def test_parse_reads_what_monitoring_needs(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    issued = ca.issue("leaf", names=("api.recmon.test", "127.0.0.2"), valid_from=-10, valid_days=40)
    parsed = parse_certificate(issued.certificate.public_bytes(serialization.Encoding.DER))
    assert parsed.dns_names == ("api.recmon.test",)
    assert parsed.ip_addresses == ("127.0.0.2",)
    assert parsed.issuer == "CN=recmon test CA"
    assert parsed.common_name == "api.recmon.test"
    assert parsed.fingerprint_sha256 == issued.fingerprint and len(parsed.fingerprint_sha256) == 64
    assert parsed.serial == format(issued.certificate.serial_number, "x")
    assert abs(parsed.not_after - issued.certificate.not_valid_after_utc.timestamp()) < 1
    assert not parsed.self_signed


@pytest.mark.parametrize(
    "names, host, expected",
    [
        (("api.recmon.test",), "api.recmon.test", True),
        (("API.recmon.test",), "api.RECMON.test.", True),
        (("*.recmon.test",), "api.recmon.test", True),
        (("*.recmon.test",), "a.b.recmon.test", False),
        (("*.recmon.test",), "recmon.test", False),
        (("*.test",), "recmon.test", False),  # no wildcard right under a top-level label
        (("other.recmon.test",), "api.recmon.test", False),
        (("127.0.0.2",), "127.0.0.2", True),
        (("127.0.0.2",), "127.0.0.3", False),
        (("api.recmon.test",), "127.0.0.2", False),
    ],
)
def test_hostname_matching(names: tuple[str, ...], host: str, expected: bool) -> None:
    assert matches_hostname(info(*names), host) is expected
