"""mTLS against the sandbox on a TLS listener that demands client certificates: the handshake
on every transport, a missing or foreign certificate as auth_error (recmon's credentials, not
the platform), a certificate replaced on disk used without a restart, and the client
certificate's own expiry paged before it lapses."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.alerting.hub import Decision
from monitor.app.assembly import build_monitor
from monitor.app.service import Monitor
from monitor.config.loader import load_config_file
from monitor.core.clock import SystemClock
from monitor.core.notifications import Notification
from monitor.core.results import Outcome, ProbeResult
from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.server import Sandbox, SandboxSettings, serve_sandbox
from tests.helpers import FAST
from tests.tlscerts import CertificateAuthority

pytestmark = pytest.mark.integration


@pytest.fixture
async def sandbox(ca: CertificateAuthority) -> AsyncIterator[Sandbox]:
    server = ca.issue("server", names=("127.0.0.1",))
    async with serve_sandbox(
        SandboxSettings(tenants=2, latency_ms=dict(FAST)),
        ssl_certfile=str(server.cert_pem),
        ssl_keyfile=str(server.key_pem),
        ssl_client_ca=str(ca.pem),
    ) as served:
        yield served


@pytest.fixture(params=["asyncio", "aiohttp", "httpx"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def mtls_config(
    sandbox: Sandbox,
    ca: CertificateAuthority,
    tmp_path: Path,
    transport: str,
    client: bool = True,
    discover: bool = True,
) -> Path:
    tls = f"tls: {{ca_file: {ca.pem}"
    if client:
        tls += ", cert_file: client.crt, key_file: client.key"
    text = sandbox_config(sandbox.url, interval=60, timeout=2).replace(
        "    rate_limit: 200/s", f"    rate_limit: 200/s\n    {tls}}}"
    )
    # The tenant list is behind mTLS too: discovery uses the target's client certificate.
    # Without an accepted one it cannot list tenants: static ones then.
    if client and discover:
        text = text.replace("refresh: 10m}", "refresh: 10m, target: sandbox}")
    else:
        text = "\n".join(
            "  static: [tenant-001, tenant-002]" if line.startswith("  discover:") else line
            for line in text.splitlines()
        )
    config = tmp_path / "probes.yaml"
    config.write_text(text + f"\nengine: {{transport: {transport}}}\ntls: {{interval: 1h}}\n")
    return config


def install(issued_cert: Path, issued_key: Path, tmp_path: Path) -> None:
    shutil.copy(issued_cert, tmp_path / "client.crt.new")
    shutil.copy(issued_key, tmp_path / "client.key.new")
    (tmp_path / "client.crt.new").replace(tmp_path / "client.crt")
    (tmp_path / "client.key.new").replace(tmp_path / "client.key")


class Pages:
    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def __call__(self, decision: Decision) -> None:
        self.sent += decision.notifications


def monitor_for(config: Path, pages: Pages | None = None) -> Monitor:
    return build_monitor(
        load_config_file(config),
        clock=SystemClock(),
        registry=CollectorRegistry(),
        route=pages,
    )


def outcomes(results: list[ProbeResult]) -> set[Outcome]:
    return {r.outcome for r in results}


async def test_the_client_certificate_is_presented_on_every_transport(
    sandbox: Sandbox, ca: CertificateAuthority, tmp_path: Path, transport: str
) -> None:
    client = ca.issue("recmon-client", names=("recmon-probe",))
    install(client.cert_pem, client.key_pem, tmp_path)
    monitor = monitor_for(mtls_config(sandbox, ca, tmp_path, transport))
    try:
        results = await monitor.probe_round()
    finally:
        await monitor.aclose()
    assert len(results) == 4 and outcomes(results) == {Outcome.OK}


async def test_without_a_client_certificate_the_refusal_is_auth_error(
    sandbox: Sandbox, ca: CertificateAuthority, tmp_path: Path, transport: str
) -> None:
    monitor = monitor_for(mtls_config(sandbox, ca, tmp_path, transport, client=False))
    try:
        results = await monitor.probe_round()
    finally:
        await monitor.aclose()
    # search refused for both tenants; recommendations never ran without a product
    assert [r.check for r in results] == ["search", "search"]
    assert outcomes(results) == {Outcome.AUTH_ERROR}, [r.reason for r in results]
    assert {r.credential for r in results} == {"none"}
    assert results[0].reason == (
        "TLS alert certificate required: refused, and the request carried no credentials"
    )
    front = sandbox.tls_front
    assert front is not None
    # The front's thread counts a refusal after its alert is on the wire, so the client can read
    # the alert first: wait (bounded) for the count rather than race it.
    for _ in range(500):  # at most about 5 s
        if front.refused >= 2:
            break
        await asyncio.sleep(0.01)
    assert front.refused >= 2


async def test_a_foreign_certificate_is_refused_and_its_replacement_used_without_restart(
    sandbox: Sandbox, ca: CertificateAuthority, tmp_path: Path, transport: str
) -> None:
    (tmp_path / "other").mkdir()
    foreign = CertificateAuthority(tmp_path / "other", "someone else's CA")
    wrong = foreign.issue("wrong-client", names=("recmon-probe",))
    install(wrong.cert_pem, wrong.key_pem, tmp_path)
    monitor = monitor_for(mtls_config(sandbox, ca, tmp_path, transport, discover=False))
    try:
        refused = await monitor.probe_round()
        assert outcomes(refused) == {Outcome.AUTH_ERROR}
        assert refused[0].credential == "shared"
        assert "the client certificate of target sandbox rejected" in refused[0].reason
        right = ca.issue("right-client", names=("recmon-probe",))
        install(right.cert_pem, right.key_pem, tmp_path)
        monitor.client_certificates.refresh()  # what its background check does every 5 s
        accepted = await monitor.probe_round()
        assert outcomes(accepted) == {Outcome.OK}
        assert monitor.client_certificates.by_target["sandbox"].reloads == 2
    finally:
        await monitor.aclose()


async def test_the_client_certificates_expiry_is_paged_before_it_lapses(
    sandbox: Sandbox, ca: CertificateAuthority, tmp_path: Path
) -> None:
    # Valid now, two days left: within tls.critical_before (3 days).
    client = ca.issue("short-client", names=("recmon-probe",), valid_from=-88, valid_days=90)
    install(client.cert_pem, client.key_pem, tmp_path)
    pages = Pages()
    monitor = monitor_for(mtls_config(sandbox, ca, tmp_path, "asyncio"), pages)
    try:
        results = await monitor.probe_round()
    finally:
        await monitor.aclose()
    assert outcomes(results) == {Outcome.OK}  # still accepted: paged before it lapses
    expiry = monitor.registry.get_sample_value(
        "recmon_tls_client_cert_not_after_timestamp_seconds", {"target": "sandbox"}
    )
    assert expiry == client.certificate.not_valid_after_utc.timestamp()
    (page,) = pages.sent
    assert page.rule == "tls_client_expiring_soon"
    # its target labelled as RecmonTLSClientCertificateExpiringSoon labels it
    assert page.labels == {"host": "client:sandbox", "target": "sandbox"}
    assert page.severity.value == "critical"
    assert page.summary.startswith("client certificate of target sandbox (CN=recmon-probe")
    assert "expires in 2.0 days" in page.summary
