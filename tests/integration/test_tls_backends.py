"""Real TLS servers on several loopback addresses answering for one name, with certificates the
test generates: each case yields the right result, and an expired certificate still reports
its expiry and fingerprint."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.core.clock import SystemClock
from tests.tlsbackends import HOST, Backends
from tests.tlscerts import CertificateAuthority

pytestmark = pytest.mark.integration


async def test_every_case_on_its_own_backend(
    backends: Backends, ca: CertificateAuthority, tmp_path: Path
) -> None:
    valid = ca.issue("valid")
    expired = ca.issue("expired", valid_from=-100, valid_days=90)
    other = CertificateAuthority(tmp_path, name="someone else").issue("other")
    await backends.serve("127.0.0.2", valid)
    await backends.serve("127.0.0.3", expired)
    await backends.serve("127.0.0.4", other)
    results = await backends.probe(ca)
    ok, old, foreign = results["127.0.0.2"], results["127.0.0.3"], results["127.0.0.4"]
    assert ok.ok and ok.reason == "" and ok.certificate.fingerprint_sha256 == valid.fingerprint  # type: ignore[attr-defined]
    assert old.reason == "expired" and not old.ok  # type: ignore[attr-defined]
    # the certificate is still read: its expiry and fingerprint are reported
    assert old.certificate.fingerprint_sha256 == expired.fingerprint  # type: ignore[attr-defined]
    assert abs(old.certificate.not_after - expired.certificate.not_valid_after_utc.timestamp()) < 1  # type: ignore[attr-defined]
    assert foreign.reason == "unknown_issuer" and foreign.certificate.issuer == "CN=someone else"  # type: ignore[attr-defined]
    assert set(backends.sni_seen) == {HOST}  # every handshake named the host


async def test_expiring_wrong_name_and_not_yet_valid(
    backends: Backends, ca: CertificateAuthority
) -> None:
    soon = ca.issue("soon", valid_from=-88, valid_days=90)  # expires in 2 days: still valid
    wrong = ca.issue("wrong", names=("other.recmon.test",))
    future = ca.issue("future", valid_from=5, valid_days=90)
    await backends.serve("127.0.0.2", soon)
    await backends.serve("127.0.0.3", wrong)
    await backends.serve("127.0.0.4", future)
    results = await backends.probe(ca)
    assert results["127.0.0.2"].ok  # type: ignore[attr-defined]
    days_left = (results["127.0.0.2"].certificate.not_after - SystemClock().time()) / 86400  # type: ignore[attr-defined]
    assert 1.9 < days_left < 2.1
    assert results["127.0.0.3"].reason == "hostname_mismatch"  # type: ignore[attr-defined]
    assert "other.recmon.test" in results["127.0.0.3"].message  # type: ignore[attr-defined]
    assert results["127.0.0.4"].reason == "not_yet_valid"  # type: ignore[attr-defined]


@pytest.mark.timing  # cut within 0.5 s of its deadline
async def test_dead_and_silent_backends(backends: Backends, ca: CertificateAuthority) -> None:
    await backends.serve("127.0.0.2", ca.issue("valid"))
    await backends.serve_plain("127.0.0.4")
    results = await backends.probe(ca)
    assert (
        results["127.0.0.3"].reason == "connect_error" and results["127.0.0.3"].certificate is None
    )  # type: ignore[attr-defined]
    assert results["127.0.0.4"].reason == "timeout"  # type: ignore[attr-defined]
    assert results["127.0.0.4"].duration_s < 1.5  # type: ignore[attr-defined]


async def test_half_finished_rotation_shows_two_certificates(
    backends: Backends, ca: CertificateAuthority
) -> None:
    old, new = ca.issue("old", valid_from=-80, valid_days=90), ca.issue("new")
    for address in backends.addresses:
        await backends.serve(address, old)
    assert {r.certificate.fingerprint_sha256 for r in (await backends.probe(ca)).values()} == {
        old.fingerprint
    }  # type: ignore[attr-defined]
    await backends.serve("127.0.0.2", new)
    await backends.serve("127.0.0.3", new)
    served = {a: r.certificate.fingerprint_sha256 for a, r in (await backends.probe(ca)).items()}  # type: ignore[attr-defined]
    assert served == {
        "127.0.0.2": new.fingerprint,
        "127.0.0.3": new.fingerprint,
        "127.0.0.4": old.fingerprint,
    }
