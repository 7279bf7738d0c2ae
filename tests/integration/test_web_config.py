"""`recmon run` under a web configuration file (the Prometheus exporters' format): a real
HTTPS port with generated certificates, probed by a real TLS client (httpx) with no, wrong
and right credentials and client certificates; the probes' endpoints stay open; neither the
password nor its hash reaches a log."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import bcrypt
import httpx
import pytest
from cryptography import x509

from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.server import Sandbox
from tests.integration.recmonproc import RecmonProcess
from tests.tlscerts import CertificateAuthority

pytestmark = pytest.mark.integration
PASSWORD = "correct horse battery staple"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
PROTECTED = ("/", "/status", "/metrics", "/tenants/tenant-001", "/static/status.css")


@pytest.fixture
def sandbox_tenants() -> int:
    return 2


async def start(recmon: RecmonProcess, ca: Path, cert: tuple[Path, Path] | None = None) -> None:
    """Started, and ready as seen over HTTPS (the process helper waits over plain HTTP)."""
    recmon.url = f"https://127.0.0.1:{recmon.port}"
    await recmon.start(ready=False)

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient(verify=client_context(ca, cert), timeout=2) as http:
                return (await http.get(recmon.url + "/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    await recmon.wait_for(ready, "ready over HTTPS")


async def served_certificate(port: int, ca: Path) -> int:
    """The serial number of the certificate the port serves now."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(ca))
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return int(x509.load_der_x509_certificate(der).serial_number)


async def served_is(port: int, ca: Path, serial: int) -> bool:
    return await served_certificate(port, ca) == serial


def client_context(ca: Path, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    return context


async def test_tls_and_basic_auth_guard_the_page_status_and_metrics(
    sandbox: Sandbox, tmp_path: Path, ca: CertificateAuthority
) -> None:
    server = ca.issue("recmon-server", names=("127.0.0.1",))
    web = tmp_path / "web-config.yml"
    web.write_text(
        "tls_server_config:\n"
        f"  cert_file: {server.cert_pem.name}\n"  # relative: to the web configuration's folder
        f"  key_file: {server.key_pem.name}\n"
        "basic_auth_users:\n"
        f"  prometheus: '{HASH}'\n"
    )
    config = tmp_path / "probes.yaml"
    config.write_text(
        sandbox_config(sandbox.url, interval=2.0, timeout=1)
        + "metrics: {web_config_file: web-config.yml}\n"
    )
    recmon = RecmonProcess(config)
    await start(recmon, ca.pem)
    try:
        async with httpx.AsyncClient(verify=client_context(ca.pem), timeout=10) as http:
            for path in PROTECTED:
                anonymous = await http.get(recmon.url + path)
                assert anonymous.status_code == 401, path
                assert anonymous.headers["www-authenticate"].startswith("Basic")
                assert "tenant-001" not in anonymous.text
                wrong = await http.get(recmon.url + path, auth=("prometheus", "Tr0ub4dor&3"))
                assert wrong.status_code == 401, path
                stranger = await http.get(recmon.url + path, auth=("admin", PASSWORD))
                assert stranger.status_code == 401, path
                right = await http.get(recmon.url + path, auth=("prometheus", PASSWORD))
                assert right.status_code in (200, 404), path  # a tenant not listed yet: 404
            status = await http.get(recmon.url + "/status", auth=("prometheus", PASSWORD))
            assert status.json()["schema"] == "recmon.status/v1"
            metrics = await http.get(recmon.url + "/metrics", auth=("prometheus", PASSWORD))
            assert "recmon_build_info" in metrics.text
            # The kubelet's and Docker's probes need no credentials.
            assert (await http.get(recmon.url + "/healthz")).status_code == 200
            assert (await http.get(recmon.url + "/readyz")).status_code == 200
        # A rotated certificate (cert-manager renewing the Secret) is served without a restart.
        first = await served_certificate(recmon.port, ca.pem)
        assert first == server.certificate.serial_number
        renewed = ca.issue("recmon-server", names=("127.0.0.1",))  # the same two files
        await recmon.wait_for(
            lambda: served_is(recmon.port, ca.pem, renewed.certificate.serial_number),
            "the renewed certificate served",
            within=15,
        )
        # Not over plain HTTP, and not to a client that does not trust the certificate.
        with pytest.raises(httpx.HTTPError):
            async with httpx.AsyncClient(timeout=5) as plain:
                await plain.get(f"http://127.0.0.1:{recmon.port}/status")
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            async with httpx.AsyncClient(timeout=5) as untrusting:
                await untrusting.get(recmon.url + "/status")
        started = await recmon.wait_for_log("recmon running: status page at https://")
        assert started["status_page"] == f"https://127.0.0.1:{recmon.port}/"
        assert any(
            m.endswith("TLS, basic auth for 1 user(s); /healthz and /readyz stay open for probes")
            for m in recmon.messages()
        )
    finally:
        assert await recmon.stop() == 0
    logs = "\n".join(recmon.stderr_lines)
    assert PASSWORD not in logs and HASH not in logs and HASH[7:29] not in logs


async def test_client_certificates_from_the_configured_ca_are_required(
    sandbox: Sandbox, tmp_path: Path, ca: CertificateAuthority
) -> None:
    server = ca.issue("recmon-server", names=("127.0.0.1",))
    clients = CertificateAuthority(tmp_path, "client CA")
    scraper = clients.issue("prometheus", names=("prometheus.recmon.test",))
    impostor = ca.issue("impostor", names=("prometheus.recmon.test",))  # the wrong CA
    web = tmp_path / "web-config.yml"
    web.write_text(
        "tls_server_config:\n"
        f"  cert_file: {server.cert_pem}\n"
        f"  key_file: {server.key_pem}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        f"  client_ca_file: {clients.pem}\n"
        "  min_version: TLS13\n"
    )
    config = tmp_path / "probes.yaml"
    config.write_text(sandbox_config(sandbox.url, interval=2.0, timeout=1))
    recmon = RecmonProcess(config, args=["--web.config.file", str(web)])
    await start(recmon, ca.pem, (scraper.cert_pem, scraper.key_pem))
    try:
        async with httpx.AsyncClient(
            verify=client_context(ca.pem, (scraper.cert_pem, scraper.key_pem)), timeout=10
        ) as http:
            assert (await http.get(recmon.url + "/metrics")).status_code == 200
        for cert in (None, (impostor.cert_pem, impostor.key_pem)):
            with pytest.raises(httpx.HTTPError):
                async with httpx.AsyncClient(verify=client_context(ca.pem, cert), timeout=5) as h:
                    (await h.get(recmon.url + "/metrics")).raise_for_status()
        # TLS 1.2 is below the configured minimum.
        old = client_context(ca.pem, (scraper.cert_pem, scraper.key_pem))
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(verify=old, timeout=5) as h:
                await h.get(recmon.url + "/metrics")
    finally:
        assert await recmon.stop() == 0


async def test_a_broken_web_configuration_is_exit_2_naming_the_key(tmp_path: Path) -> None:
    web = tmp_path / "web-config.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: {PASSWORD!r}\n")
    config = tmp_path / "probes.yaml"
    config.write_text(sandbox_config("http://127.0.0.1:9", interval=2.0, timeout=1))
    recmon = RecmonProcess(config, args=["--web.config.file", str(web)])
    await recmon.start(ready=False)
    assert recmon.process is not None
    assert await asyncio.wait_for(recmon.process.wait(), 30) == 2
    await recmon.stop()
    error = "\n".join(recmon.stderr_lines)
    assert f"{web}:2: basic_auth_users.prometheus: not a bcrypt hash" in error
    assert PASSWORD not in error
