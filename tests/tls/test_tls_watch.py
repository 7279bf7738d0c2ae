"""The TLS watch's bookkeeping: series of backends that left a host disappear, not after a
DNS failure; handshake refusals with a certificate count as invalid."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry

from monitor.alerting.hub import AlertHub
from monitor.config.model import AlertsSpec, TlsSpec
from monitor.core.certinfo import CertificateInfo
from monitor.core.clock import ManualClock
from monitor.telemetry.metrics import Metrics
from monitor.tls import watch as watch_module
from monitor.tls.prober import TlsResult
from monitor.tls.watch import TlsWatch

T0 = 1_763_990_400.0
CERT = CertificateInfo(
    "CN=a", "a", ("a.example",), (), "CN=CA", "1", T0 - 10, T0 + 86400 * 90, "ab" * 32, False
)


def result(address: str, reason: str = "", cert: CertificateInfo | None = CERT) -> TlsResult:
    return TlsResult(
        "a.example", 443, address, "a.example", not reason, reason, reason, cert, 0.01, T0
    )


async def test_departed_backends_lose_their_series_but_not_on_dns_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rounds: list[list[TlsResult]] = [
        [result("10.0.0.1"), result("10.0.0.2")],
        [
            TlsResult(
                "a.example", 443, "", "a.example", False, "dns_error", "nxdomain", None, 0.0, T0
            )
        ],
        [result("10.0.0.1")],
    ]

    async def fake_probe_host(*args: object, **kwargs: object) -> Sequence[TlsResult]:
        return rounds.pop(0)

    monkeypatch.setattr(watch_module, "probe_host", fake_probe_host)
    metrics = Metrics(CollectorRegistry())
    clock = ManualClock(start=T0)
    spec = TlsSpec(hosts=["a.example:443"])
    hub = AlertHub(AlertsSpec(), {}, metrics=metrics, clock=clock, route=lambda d: None, tls=spec)
    tls = TlsWatch(spec, {}, clock=clock, metrics=metrics, emit=hub.observe_tls)

    def addresses() -> set[str]:
        return {s.labels["address"] for f in metrics.tls_not_after.collect() for s in f.samples}

    await tls.round()
    assert addresses() == {"10.0.0.1", "10.0.0.2"}
    await tls.round()  # resolution failed: keep what we knew
    assert addresses() == {"10.0.0.1", "10.0.0.2"}
    await tls.round()
    assert addresses() == {"10.0.0.1"}
    assert {s.labels["address"] for f in metrics.tls_info.collect() for s in f.samples} == {
        "10.0.0.1"
    }


def test_a_certificate_refused_in_the_handshake_is_invalid_a_dead_backend_is_not() -> None:
    assert result("10.0.0.1", "handshake").invalid
    assert not result("10.0.0.1", "handshake", cert=None).invalid
    assert not result("10.0.0.1", "connect_error", cert=None).invalid
    assert result("10.0.0.1", "expired").invalid


def test_target_hosts_are_judged_with_the_trust_their_clients_use() -> None:
    from monitor.config.model import Target
    from monitor.tls.watch import tls_hosts

    targets = {
        "private": Target.model_validate(
            {"base_url": "https://internal.test:8443", "tls": {"ca_file": "/etc/private-ca.pem"}}
        ),
        "public": Target.model_validate({"base_url": "https://api.test"}),
        "unverified": Target.model_validate(
            {"base_url": "https://lab.test", "tls": {"verify": False}}
        ),
        "plain": Target.model_validate({"base_url": "http://plain.test"}),
    }
    spec = TlsSpec(hosts=["edge.test:443"], include_targets=True, ca_file="/etc/edge-ca.pem")
    assert tls_hosts(spec, targets) == {
        ("edge.test", 443): "/etc/edge-ca.pem",
        ("internal.test", 8443): "/etc/private-ca.pem",  # its own CA, not tls.ca_file
        ("api.test", 443): "/etc/edge-ca.pem",
        # lab.test asked for no verification: not watched (it would only ever read "invalid")
    }
