"""Certificate rules in virtual time: inconsistency after a grace period, expiry levels,
invalid certificates named by address."""

from __future__ import annotations

from monitor.config.model import TlsSpec
from monitor.core.certinfo import CertificateInfo
from monitor.core.notifications import Severity
from monitor.detect.series import AlertEvent, EventKind
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
        "10.0.0.3 serves aaaaaaaaaaaaaaaa" in event.summary
        and "10.0.0.1, 10.0.0.2 serve bbbb" in event.summary
    )
    assert event.details["certificates"] == {
        "aa" * 8: ["10.0.0.3"],
        "bb" * 8: ["10.0.0.1", "10.0.0.2"],
    }
    assert host.see(25 * 60, *half) == []  # no second page
    assert host.see(30 * 60, *(result(a, NEW) for a in ADDRESSES)) == []  # one good round
    (resolved,) = host.see(35 * 60, *(result(a, NEW) for a in ADDRESSES))  # two resolve
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
    # the critical opens beside the warning: nothing closes as things get worse
    assert {(e.rule, e.kind) for e in events} == {("tls_expiring_soon", EventKind.FIRING)}


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
    assert "1 of 3 backends serves an invalid certificate: 10.0.0.2 expired" in invalid.summary
    assert not any(e.rule.startswith("tls_expiring") for e in events)


def lagging() -> tuple[Host, tuple[TlsResult, ...]]:
    """.3 still on the old certificate (2 days left): inconsistency and expiring soon open."""
    host = Host()
    old = cert("aa", 2)
    half = (result("10.0.0.1", NEW), result("10.0.0.2", NEW), result("10.0.0.3", old))
    host.see(0, *half)
    host.see(20 * 60, *half)
    assert set(host.state.alerts) == {"tls_inconsistent", "tls_expiring_soon"}
    host.events.clear()
    return host, half


def test_a_lagging_backend_that_blips_keeps_its_certificate_in_the_judgement() -> None:
    host, half = lagging()
    gone = (*half[:2], result("10.0.0.3", None, "connect_error"))
    for minute in (25, 30, 35):  # refused for three rounds: judged on its last certificate
        assert host.see(minute * 60, *gone) == []
    assert host.see(40 * 60, *half) == []  # back with the same old certificate: nothing new
    assert set(host.state.alerts) == {"tls_inconsistent", "tls_expiring_soon"}


def test_a_backend_missing_one_round_in_three_is_still_paged_as_inconsistent() -> None:
    host = Host()
    old = cert("aa", 200)
    half = (result("10.0.0.1", NEW), result("10.0.0.2", NEW), result("10.0.0.3", old))
    gone = (*half[:2], result("10.0.0.3", None, "timeout"))
    for round_ in range(6):
        host.see(round_ * 300, *(gone if round_ % 3 == 1 else half))
    assert [(e.rule, e.kind) for _, e in host.events] == [("tls_inconsistent", EventKind.FIRING)]


def test_an_address_gone_longer_than_the_bound_pages_unreachable_by_name() -> None:
    host, half = lagging()
    gone = (*half[:2], result("10.0.0.3", None, "connect_error"))
    for minute in (25, 30, 35):
        assert host.see(minute * 60, *gone) == []
    events = host.see(40 * 60, *gone)  # 15 minutes without a certificate: the bound
    (unreachable,) = [e for e in events if e.kind is EventKind.FIRING]
    assert (unreachable.rule, unreachable.severity) == ("tls_unreachable", Severity.WARNING)
    assert unreachable.variant == HOST
    assert "10.0.0.3 for 15m" in unreachable.summary and "connect_error" in unreachable.summary
    assert unreachable.details["addresses"] == {"10.0.0.3": "connect_error: connect_error"}
    # its old certificate no longer counts: the rules it held open start to clear
    assert {e.rule for e in events if e.kind is EventKind.RESOLVED} == set()
    resolved = host.see(45 * 60, *gone)
    assert {e.rule for e in resolved} == {"tls_inconsistent", "tls_expiring_soon"}
    assert all(e.kind is EventKind.RESOLVED for e in resolved)
    # back: unreachable resolves after two good rounds
    assert [e.rule for e in host.see(50 * 60, *(result(a, NEW) for a in ADDRESSES))] == []
    (back,) = host.see(55 * 60, *(result(a, NEW) for a in ADDRESSES))
    assert (back.rule, back.kind) == ("tls_unreachable", EventKind.RESOLVED)


def test_an_expiring_certificate_that_expires_hands_over_to_invalid_without_closing() -> None:
    host = Host()
    old = cert("aa", 3.5)  # a warning first, critical a day later, expired after 3.5 days
    fine = (result("10.0.0.1", NEW), result("10.0.0.2", old))
    host.see(0, *fine)
    assert "tls_expiring" in host.state.alerts
    host.see(DAY, *fine)
    assert {"tls_expiring_soon", "tls_expiring"} <= set(host.state.alerts)  # both open
    expired = (result("10.0.0.1", NEW), result("10.0.0.2", old, "expired"))
    events = host.see(3.5 * DAY + 300, *expired)
    expiry_and_validity = [(e.rule, e.kind) for e in events if e.rule != "tls_inconsistent"]
    assert expiry_and_validity == [("tls_invalid", EventKind.FIRING)]
    assert "expired 5m ago and is still served" in host.state.alerts["tls_expiring_soon"].summary
    host.see(3.5 * DAY + 600, *expired)
    # the certificate is replaced: everything it held open resolves after two good rounds
    replaced = (result("10.0.0.1", NEW), result("10.0.0.2", NEW))
    assert host.see(3.5 * DAY + 900, *replaced) == []
    resolved = host.see(3.5 * DAY + 1200, *replaced)
    assert {(e.rule, e.kind) for e in resolved} == {
        ("tls_invalid", EventKind.RESOLVED),
        ("tls_expiring", EventKind.RESOLVED),
        ("tls_expiring_soon", EventKind.RESOLVED),
        ("tls_inconsistent", EventKind.RESOLVED),
    }


def test_an_address_that_leaves_the_address_list_is_forgotten() -> None:
    host, half = lagging()
    host.see(25 * 60, *half[:2])  # DNS lists two addresses now
    assert set(host.state.addresses) == {"10.0.0.1", "10.0.0.2"}


def test_host_state_with_remembered_addresses_round_trips_through_json() -> None:
    from monitor.tls.codec import tls_hosts_from_json, tls_hosts_to_json

    host, half = lagging()
    host.see(25 * 60, *half[:2], result("10.0.0.3", None, "connect_error"))
    assert tls_hosts_from_json(tls_hosts_to_json({HOST: host.state})) == {HOST: host.state}


def test_recmons_own_client_certificate_is_paged_before_it_lapses_and_resolves_on_renewal() -> None:
    from monitor.tls.rules import observe_client_certificate

    state = HostState()
    timeline: list[tuple[str, str]] = []
    old = cert("c" * 64, 20)  # 20 days left at T0
    for day, certificate in [(0, old), (7, old), (18, old), (21, old), (22, cert("d" * 64, 380))]:
        state, events = observe_client_certificate(state, "api", certificate, T0 + day * DAY, SPEC)
        timeline += [(e.rule, e.kind.value) for e in events]
    assert timeline == [
        ("tls_client_expiring", "firing"),  # day 7: 13 days left
        ("tls_client_expiring_soon", "firing"),  # day 18: 2 days left, the warning stays open
        ("tls_client_expiring", "resolved"),
        ("tls_client_expiring_soon", "resolved"),  # day 22: renewed
    ]
    assert state.alerts == {}
    # An unreadable file neither fires nor resolves anything.
    assert observe_client_certificate(state, "api", None, T0, SPEC) == (state, [])
