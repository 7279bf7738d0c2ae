"""A scripted rotation on real TLS backends (127.0.0.2-4), through recmon's TLS watch, metrics
and detector: the inconsistency pages on the first round after the grace period, days before
the old certificate expires, and resolves when the last backend rotates."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.alerting.hub import AlertHub, Decision
from monitor.config.model import AlertsSpec, TlsSpec
from monitor.core.notifications import Action, Notification
from monitor.telemetry.metrics import Metrics
from monitor.tls.watch import TlsWatch
from tests.tlsbackends import HOST, Backends
from tests.tlscerts import CertificateAuthority

pytestmark = pytest.mark.integration


class ShiftedClock:
    """Real time, plus however far the test has moved it forward."""

    def __init__(self) -> None:
        self.shift = 0.0

    def time(self) -> float:
        return time.time() + self.shift

    def monotonic(self) -> float:
        return time.perf_counter() + self.shift

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("the test drives rounds itself")


def watch(
    backends: Backends, ca: CertificateAuthority, clock: ShiftedClock
) -> tuple[TlsWatch, Metrics, list[Notification]]:
    hostport = f"{HOST}:{backends.port}"
    spec = TlsSpec(
        hosts=[hostport],
        addresses={hostport: backends.addresses},
        ca_file=str(ca.pem),
        timeout=1,
        inconsistency_grace=900,
    )
    metrics = Metrics(CollectorRegistry())
    pages: list[Notification] = []

    def route(decision: Decision) -> None:
        pages.extend(decision.notifications)

    hub = AlertHub(AlertsSpec(), {}, metrics=metrics, clock=clock, route=route, tls=spec)
    return TlsWatch(spec, {}, clock=clock, metrics=metrics, emit=hub.observe_tls), metrics, pages


async def test_rotation_left_behind(backends: Backends, tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    old = ca.issue(
        "old", valid_from=-80, valid_days=90
    )  # 10 days left: not yet "expiring"... (14d)
    new = ca.issue("new", valid_from=-1, valid_days=365)
    clock = ShiftedClock()
    tls, metrics, pages = watch(backends, ca, clock)
    hostport = f"{HOST}:{backends.port}"
    for address in backends.addresses:
        await backends.serve(address, old)
    await tls.round()
    # The old certificate is within 14 days: its expiry warning is not this test's business.
    pages.clear()

    await backends.serve("127.0.0.2", new)
    await backends.serve("127.0.0.3", new)
    await tls.round()
    assert [p.rule for p in pages if p.rule == "tls_inconsistent"] == []  # within the grace period
    fingerprints = {
        s.labels["address"]: s.labels["fingerprint_sha256"]
        for f in metrics.tls_info.collect()
        for s in f.samples
    }
    assert fingerprints == {
        "127.0.0.2": new.fingerprint,
        "127.0.0.3": new.fingerprint,
        "127.0.0.4": old.fingerprint,
    }

    clock.shift += 16 * 60  # past the 15-minute grace
    await tls.round()
    inconsistent = [p for p in pages if p.rule == "tls_inconsistent"]
    assert [p.action for p in inconsistent] == [Action.TRIGGER]
    assert inconsistent[0].labels == {"host": hostport}
    assert "127.0.0.4 serves" in inconsistent[0].summary
    days_before_expiry = (old.certificate.not_valid_after_utc.timestamp() - clock.time()) / 86400
    assert days_before_expiry > 9  # paged days before the old certificate breaks anything

    await backends.serve("127.0.0.4", new)
    clock.shift += 5 * 60
    await tls.round()
    assert [p.action for p in pages if p.rule == "tls_inconsistent"] == [Action.TRIGGER]
    clock.shift += 5 * 60
    await tls.round()  # the second consecutive good round resolves
    assert [p.action for p in pages if p.rule == "tls_inconsistent"] == [
        Action.TRIGGER,
        Action.RESOLVE,
    ]
    # the old certificate's identity is gone from the metrics
    assert {
        s.labels["fingerprint_sha256"] for f in metrics.tls_info.collect() for s in f.samples
    } == {new.fingerprint}


async def test_expired_backend_is_invalid_and_still_reports_its_certificate(
    backends: Backends, tmp_path: Path
) -> None:
    ca = CertificateAuthority(tmp_path)
    good, expired = ca.issue("good"), ca.issue("expired", valid_from=-100, valid_days=90)
    tls, metrics, pages = watch(backends, ca, ShiftedClock())
    await backends.serve("127.0.0.2", good)
    await backends.serve("127.0.0.3", good)
    await backends.serve("127.0.0.4", expired)
    await tls.round()
    hostport = f"{HOST}:{backends.port}"
    (invalid,) = [p for p in pages if p.rule == "tls_invalid"]
    assert invalid.severity.value == "critical" and invalid.details["addresses"] == {
        "127.0.0.4": "expired"
    }
    expiry = metrics.registry.get_sample_value(
        "recmon_tls_cert_not_after_timestamp_seconds", {"host": hostport, "address": "127.0.0.4"}
    )
    assert (
        expiry is not None and abs(expiry - expired.certificate.not_valid_after_utc.timestamp()) < 1
    )
    assert (
        metrics.registry.get_sample_value(
            "recmon_tls_cert_valid", {"host": hostport, "address": "127.0.0.4"}
        )
        == 0
    )
    assert (
        metrics.registry.get_sample_value(
            "recmon_tls_cert_info",
            {
                "host": hostport,
                "address": "127.0.0.4",
                "fingerprint_sha256": expired.fingerprint,
                "serial": format(expired.certificate.serial_number, "x"),
                "issuer": "CN=recmon test CA",
            },
        )
        == 1
    )


@pytest.mark.parametrize(
    "case, rule, severity, reason",
    [
        ("valid", None, None, ""),
        ("expires-in-10-days", "tls_expiring", "warning", ""),
        ("expires-in-2-days", "tls_expiring_soon", "critical", ""),
        ("already-expired", "tls_invalid", "critical", "expired"),
        ("not-yet-valid", "tls_invalid", "critical", "not_yet_valid"),
        ("another-issuer", "tls_invalid", "critical", "unknown_issuer"),
        ("wrong-name", "tls_invalid", "critical", "hostname_mismatch"),
    ],
)
async def test_each_certificate_case_yields_its_metrics_and_alert(
    backends: Backends,
    tmp_path: Path,
    case: str,
    rule: str | None,
    severity: str | None,
    reason: str,
) -> None:
    ca = CertificateAuthority(tmp_path)
    issued = {
        "valid": lambda: ca.issue("valid"),
        "expires-in-10-days": lambda: ca.issue("ten", valid_from=-80, valid_days=90),
        "expires-in-2-days": lambda: ca.issue("two", valid_from=-88, valid_days=90),
        "already-expired": lambda: ca.issue("old", valid_from=-100, valid_days=90),
        "not-yet-valid": lambda: ca.issue("future", valid_from=5, valid_days=90),
        "another-issuer": lambda: CertificateAuthority(tmp_path, name="else").issue("x"),
        "wrong-name": lambda: ca.issue("wrong", names=("other.recmon.test",)),
    }[case]()
    good = ca.issue("good")
    tls, metrics, pages = watch(backends, ca, ShiftedClock())
    await backends.serve("127.0.0.2", good)
    await backends.serve("127.0.0.3", good)
    await backends.serve("127.0.0.4", issued)
    await tls.round()

    assert [(p.rule, p.severity.value) for p in pages] == ([(rule, severity)] if rule else [])
    if rule == "tls_invalid":
        assert pages[0].details["addresses"] == {"127.0.0.4": reason}
        assert "127.0.0.4" in pages[0].summary
    hostport = f"{HOST}:{backends.port}"
    labels = {"host": hostport, "address": "127.0.0.4"}
    # Read and reported whatever its state: expiry and identity, and whether clients accept it.
    expiry = metrics.registry.get_sample_value(
        "recmon_tls_cert_not_after_timestamp_seconds", labels
    )
    assert expiry == pytest.approx(issued.certificate.not_valid_after_utc.timestamp(), abs=1)
    valid = metrics.registry.get_sample_value("recmon_tls_cert_valid", labels)
    assert valid == (0 if reason else 1)
    info = [
        s
        for family in metrics.registry.collect()
        if family.name == "recmon_tls_cert_info"
        for s in family.samples
        if s.labels["address"] == "127.0.0.4"
    ]
    assert [s.labels["fingerprint_sha256"] for s in info] == [issued.fingerprint]


async def test_an_expiring_intermediate_is_caught_behind_a_valid_leaf(
    backends: Backends, tmp_path: Path
) -> None:
    """The leaf has a year left; the intermediate it was issued by, two days."""
    ca = CertificateAuthority(tmp_path)
    intermediate = ca.intermediate("recmon issuing CA", valid_from=-363, valid_days=365)
    leaf = intermediate.issue("leaf", valid_from=-1, valid_days=365)
    tls, metrics, pages = watch(backends, ca, ShiftedClock())
    for address in backends.addresses:
        await backends.serve(address, leaf)
    await tls.round()
    (page,) = pages
    assert page.rule == "tls_expiring_soon" and page.severity.value == "critical"
    assert "intermediate CA certificate CN=recmon issuing CA" in page.summary
    assert page.details["addresses"] == backends.addresses
    labels = {"host": f"{HOST}:{backends.port}", "address": "127.0.0.3"}
    chain_expiry = metrics.registry.get_sample_value(
        "recmon_tls_chain_not_after_timestamp_seconds", labels
    )
    expected = intermediate.certificate.not_valid_after_utc.timestamp()
    assert chain_expiry == pytest.approx(expected, abs=1)
    assert metrics.registry.get_sample_value("recmon_tls_cert_valid", labels) == 1


async def test_a_lagging_backend_that_disappears_and_returns_changes_no_incident(
    backends: Backends, tmp_path: Path
) -> None:
    """.4 still serves the old certificate (2 days left): the inconsistency and the expiry are
    paged. It refuses connections for 3 rounds and comes back with the same certificate: no
    resolve, no new trigger. Gone longer than tls.unreachable_after: tls_unreachable names it."""
    ca = CertificateAuthority(tmp_path)
    old = ca.issue("old", valid_from=-88, valid_days=90)  # 2 days left
    new = ca.issue("new", valid_from=-1, valid_days=365)
    clock = ShiftedClock()
    tls, metrics, pages = watch(backends, ca, clock)
    hostport = f"{HOST}:{backends.port}"
    await backends.serve("127.0.0.2", new)
    await backends.serve("127.0.0.3", new)
    await backends.serve("127.0.0.4", old)

    def served() -> float | None:  # what RecmonTLSBackendUnreachable reads
        labels = {"host": hostport, "address": "127.0.0.4"}
        return metrics.registry.get_sample_value("recmon_tls_cert_served", labels)

    async def round_() -> list[tuple[str, Action]]:
        before = len(pages)
        await tls.round()
        clock.shift += 5 * 60  # tls.interval
        return [(p.rule, p.action) for p in pages[before:]]

    opened = await round_()
    assert opened == [("tls_expiring_soon", Action.TRIGGER)]  # one page, the critical
    clock.shift += 15 * 60  # past the inconsistency grace
    assert await round_() == [("tls_inconsistent", Action.TRIGGER)]
    assert served() == 1
    await backends.stop("127.0.0.4")
    for _ in range(3):  # refused for three rounds (10 minutes from the first miss)
        assert await round_() == []
    assert served() == 0
    await backends.serve("127.0.0.4", old)
    assert await round_() == []  # back with the same old certificate: nothing new
    assert served() == 1
    assert await round_() == []

    await backends.stop("127.0.0.4")
    for _ in range(3):
        assert await round_() == []
    unreachable = await round_()  # 15 minutes without a certificate: the bound
    assert ("tls_unreachable", Action.TRIGGER) in unreachable
    (page,) = [p for p in pages if p.rule == "tls_unreachable"]
    assert page.summary.startswith(f"{hostport}: 1 backend served no certificate")
    assert "127.0.0.4 for 15m" in page.summary
    assert list(page.details["addresses"]) == ["127.0.0.4"]
    assert page.labels == {"host": hostport}
    triggers = [p for p in pages if p.action is Action.TRIGGER]
    assert len(triggers) == 3  # the two first pages and the unreachable warning, once each
