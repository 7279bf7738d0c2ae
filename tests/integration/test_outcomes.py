"""Every outcome in docs/ARCHITECTURE.md, produced by the real monitor against the real sandbox
on loopback."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import CollectorRegistry

from monitor.app.assembly import build_monitor
from monitor.config.loader import load_config_text
from monitor.core.clock import SystemClock
from monitor.core.results import Outcome, ProbeResult
from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import Sandbox, SandboxSettings, serve_sandbox
from tests.helpers import FAST

pytestmark = pytest.mark.integration


@pytest.fixture(params=["httpx", "aiohttp", "asyncio"])
def transport(request: pytest.FixtureRequest) -> str:
    """Every outcome, through both HTTP transports behind the httpx API."""
    return str(request.param)


def engine(transport: str) -> str:
    return f"\nengine: {{transport: {transport}}}\n"


async def probe_round(
    url: str, transport: str, *, probe_timeout: float = 0.5
) -> dict[tuple[str, str], ProbeResult]:
    text = sandbox_config(url, interval=60, timeout=probe_timeout) + engine(transport)
    loaded = load_config_text(text, source="<test>")
    monitor = build_monitor(loaded, clock=SystemClock(), registry=CollectorRegistry())
    try:
        results = await monitor.probe_round()
    finally:
        await monitor.aclose()
    return {(r.tenant, r.check): r for r in results}


async def test_ok(sandbox: Sandbox, transport: str) -> None:
    results = await probe_round(sandbox.url, transport)
    assert {r.outcome for r in results.values()} == {Outcome.OK}
    assert len(results) == 6


async def test_empty(sandbox: Sandbox, transport: str) -> None:
    sandbox.faults.set("tenant-002", "recommendations", Fault(empty=True))
    results = await probe_round(sandbox.url, transport)
    assert results[("tenant-002", "recommendations")].outcome is Outcome.EMPTY
    assert results[("tenant-002", "recommendations")].items == 0
    assert results[("tenant-001", "recommendations")].outcome is Outcome.OK


async def test_http_error_from_a_broken_proxy(sandbox: Sandbox, transport: str) -> None:
    sandbox.faults.set("tenant-001", "search", Fault(status=502))
    result = (await probe_round(sandbox.url, transport))[("tenant-001", "search")]
    assert result.outcome is Outcome.HTTP_ERROR and result.status == 502


@pytest.mark.parametrize(
    "fault", [Fault(hang=True), Fault(drip_interval_ms=100)], ids=["hang", "slow-drip"]
)
@pytest.mark.timing  # cut within 0.6 s of its deadline
async def test_timeout(sandbox: Sandbox, fault: Fault, transport: str) -> None:
    sandbox.faults.set("tenant-001", "search", fault)
    result = (await probe_round(sandbox.url, transport, probe_timeout=0.4))[
        ("tenant-001", "search")
    ]
    assert result.outcome is Outcome.TIMEOUT
    assert 0.4 <= result.duration_s < 1.0


@pytest.mark.parametrize(
    "fault",
    [
        Fault(invalid_json=True),
        Fault(truncated_json=True),
        Fault(wrong_content_type=True),
        Fault(huge_body_bytes=5_000_000),
    ],
    ids=["invalid-json", "truncated-json", "wrong-content-type", "too-large"],
)
async def test_invalid_body(sandbox: Sandbox, fault: Fault, transport: str) -> None:
    sandbox.faults.set("tenant-003", "search", fault)
    result = (await probe_round(sandbox.url, transport))[("tenant-003", "search")]
    assert result.outcome is Outcome.INVALID_BODY


async def test_connect_error_when_nothing_listens(transport: str) -> None:
    async with serve_sandbox(SandboxSettings(tenants=2, latency_ms=dict(FAST))) as served:
        url = served.url
        loaded = load_config_text(
            sandbox_config(url, timeout=0.5) + engine(transport), source="<test>"
        )
        monitor = build_monitor(loaded, clock=SystemClock(), registry=CollectorRegistry())
        await monitor.refresh_tenants()  # discovery while the sandbox is up
    try:
        results = []
        monitor.result_listeners.append(results.append)
        await monitor.engine.run_round(monitor.tenants)  # the sandbox is gone: refused
    finally:
        await monitor.aclose()
    assert {r.outcome for r in results} == {Outcome.CONNECT_ERROR}
    assert "refused" in results[0].reason.lower() or "connect" in results[0].reason.lower()


def self_signed(tmp_path: Path, *, expired: bool) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    not_after = now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=30)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=60))
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


@pytest.mark.parametrize("expired, reason", [(True, "expired"), (False, "unknown_issuer")])
async def test_tls_error_keeps_the_reason(
    tmp_path: Path, expired: bool, reason: str, transport: str
) -> None:
    cert, key = self_signed(tmp_path, expired=expired)
    settings = SandboxSettings(tenants=2, latency_ms=dict(FAST))
    async with serve_sandbox(settings, ssl_certfile=cert, ssl_keyfile=key) as served:
        assert served.url.startswith("https://")
        # Tenants are listed statically: discovery over the same broken TLS would fail first.
        text = sandbox_config(served.url, timeout=1).replace(
            f'discover: {{url: "{served.url}/v1/tenants", items: "$.tenants[*].id", refresh: 10m}}',
            "static: [tenant-001, tenant-002]",
        )
        text += engine(transport)
        if expired:
            # Trust the certificate itself, so the only fault left is its age.
            text = text.replace(
                "    rate_limit: 200/s", f"    rate_limit: 200/s\n    tls: {{ca_file: {cert}}}"
            )
        monitor = build_monitor(
            load_config_text(text, source="<test>"),
            clock=SystemClock(),
            registry=CollectorRegistry(),
        )
        try:
            results = await monitor.probe_round()
        finally:
            await monitor.aclose()
    search = [r for r in results if r.check == "search"]
    assert {r.outcome for r in search} == {Outcome.TLS_ERROR}
    assert {r.tls_reason for r in search} == {reason}
    # ... and a dashboard can say "expired certificate", not just "tls_error".
    counted = monitor.registry.get_sample_value(
        "recmon_probe_tls_errors_total", {"check": "search", "reason": reason}
    )
    assert counted == 2
