"""Certificate rules in virtual time: inconsistency after a grace period, expiry levels,
invalid certificates named by address."""

from __future__ import annotations

from monitor.config.model import TlsSpec
from monitor.core.certinfo import CertificateInfo
from monitor.core.notifications import Severity
from monitor.detect.state import AlertEvent, EventKind
from monitor.tls.prober import TlsResult
from monitor.tls.rules import HostState, observe_host

DAY = 86400.0
T0 = 1_763_990_400.0
HOST = "api.example.com:443"
SPEC = TlsSpec(hosts=[HOST], inconsistency_grace=900, warn_before=14 * DAY, critical_before=3 * DAY)


def cert(fingerprint: str, expires_in_days: float) -> CertificateInfo:
    return CertificateInfo(
        "CN=api.example.com",
        "api.example.com",
        ("api.example.com",),
        (),
        "CN=CA",
        fingerprint,
        T0 - 30 * DAY,
        T0 + expires_in_days * DAY,
        fingerprint * 8,
        False,
    )


def result(address: str, certificate: CertificateInfo | None, reason: str = "") -> TlsResult:
    return TlsResult(
        "api.example.com",
        443,
        address,
        "api.example.com",
        not reason,
        reason,
        reason,
        certificate,
        0.01,
        T0,
    )


class Host:
    def __init__(self) -> None:
        self.state = HostState()
        self.events: list[tuple[float, AlertEvent]] = []

    def see(self, at: float, *results: TlsResult) -> list[AlertEvent]:
        self.state, events = observe_host(self.state, HOST, results, T0 + at, SPEC)
        self.events += [(at, e) for e in events]
        return events


OLD, NEW = cert("aa", 20), cert("bb", 400)
ADDRESSES = ("10.0.0.1", "10.0.0.2", "10.0.0.3")


def test_consistent_valid_certificates_are_quiet() -> None:
    host = Host()
    for minute in range(0, 120, 5):
        assert host.see(minute * 60, *(result(a, NEW) for a in ADDRESSES)) == []


def test_rotation_left_behind_pages_after_the_grace_period_and_resolves() -> None:
    host = Host()
    host.see(0, *(result(a, OLD) for a in ADDRESSES))
    half = (result("10.0.0.1", NEW), result("10.0.0.2", NEW), result("10.0.0.3", OLD))
    for minute in (5, 10, 15):
        assert [e.rule for e in host.see(minute * 60, *half)] == []
    (event,) = host.see(20 * 60, *half)  # the first round after the 15-minute grace
    assert (event.rule, event.kind, event.severity) == (
        "tls_inconsistent",
        EventKind.FIRING,
        Severity.WARNING,
    )
    assert event.key == "recmon/tls_inconsistent/tls/-/api.example.com:443"
    assert (
        "10.0.0.3 serve aaaaaaaaaaaaaaaa" in event.summary
        and "10.0.0.1, 10.0.0.2 serve bbbb" in event.summary
    )
    assert event.details["certificates"] == {
        "aa" * 8: ["10.0.0.3"],
        "bb" * 8: ["10.0.0.1", "10.0.0.2"],
    }
    assert host.see(25 * 60, *half) == []  # no second page
    (resolved,) = host.see(30 * 60, *(result(a, NEW) for a in ADDRESSES))
    assert (resolved.rule, resolved.kind) == ("tls_inconsistent", EventKind.RESOLVED)


def test_expiry_warns_then_escalates_on_the_earliest_backend() -> None:
    host = Host()
    soon_old = cert("aa", 10)
    (warning,) = host.see(0, result("10.0.0.1", soon_old), result("10.0.0.2", soon_old))
    assert (warning.rule, warning.severity) == ("tls_expiring", Severity.WARNING)
    assert (
        warning.details["addresses"] == ["10.0.0.1", "10.0.0.2"]
        and warning.details["days_left"] == 10
    )
    events = host.see(8 * DAY, result("10.0.0.1", soon_old), result("10.0.0.2", soon_old))
    assert {(e.rule, e.kind) for e in events} == {
        ("tls_expiring", EventKind.RESOLVED),
        ("tls_expiring_soon", EventKind.FIRING),
    }


def test_invalid_certificates_are_named_by_address_and_do_not_also_count_as_expiring() -> None:
    host = Host()
    expired = cert("cc", -1)
    events = host.see(
        0,
        result("10.0.0.1", NEW),
        result("10.0.0.2", expired, "expired"),
        result("10.0.0.3", None, "connect_error"),
    )
    (invalid,) = [e for e in events if e.rule == "tls_invalid"]
    assert invalid.severity is Severity.CRITICAL
    assert invalid.details["addresses"] == {"10.0.0.2": "expired"}
    assert invalid.details["fingerprints"] == {"10.0.0.2": "cc" * 8}
    assert "1 of 3 backends serve an invalid certificate: 10.0.0.2 expired" in invalid.summary
    assert not any(e.rule.startswith("tls_expiring") for e in events)
