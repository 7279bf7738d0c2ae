"""Probes through a real proxy (Debian's tinyproxy, started here on loopback): plain http in
absolute form, https through a CONNECT tunnel with TLS to the origin (SNI, verified against the
target's CA), proxy authentication, a proxy that refuses or is down, and NO_PROXY. A proxy's
refusal is an outcome with the proxy named in its reason, never `ok`."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from monitor.core.results import Outcome, ProbeResult
from monitor.probing.httpclient import PROXY_VARIABLES
from tests.binaries import free_port, tinyproxy
from tests.integration.test_hostile_targets import raw_target_monitor
from tests.tlscerts import CertificateAuthority

pytestmark = pytest.mark.integration
BODY = b'{"results":[{"id":"p1"}],"recommendations":[{"id":"p2"}]}'
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)
PASSWORD = "pr0xy-s3cret-77"
TRANSPORTS = ["asyncio", "aiohttp", "httpx"]


@dataclass
class Origin:
    url: str
    heads: list[bytes] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_VARIABLES, "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


async def serve_origin(context: ssl.SSLContext | None = None) -> tuple[Origin, asyncio.Server]:
    """A loopback origin that answers every request on a connection with OK."""
    origin = Origin("")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                origin.heads.append(await reader.readuntil(b"\r\n\r\n"))
                writer.write(OK)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    origin.url = (
        f"{'https' if context else 'http'}://{'localhost' if context else '127.0.0.1'}:{port}"
    )
    return origin, server


@pytest.fixture
async def http_origin() -> AsyncIterator[Origin]:
    origin, server = await serve_origin()
    yield origin
    server.close()


@pytest.fixture
async def https_origin(ca: CertificateAuthority) -> AsyncIterator[Origin]:
    """TLS with a certificate for `localhost` only, recording the SNI each handshake sent."""
    issued = ca.issue("origin", names=("localhost",))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.cert_pem, issued.key_pem)
    origin_ref: list[Origin] = []

    def record(sock: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        origin_ref[0].server_names.append(server_name)

    context.sni_callback = record  # type: ignore[assignment]
    origin, server = await serve_origin(context)
    origin_ref.append(origin)
    yield origin
    server.close()


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with tinyproxy(tmp_path) as running:
        yield running


@pytest.fixture
def authenticating_proxy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with tinyproxy(tmp_path, settings=f"BasicAuth alice {PASSWORD}\n") as running:
        yield running


@pytest.fixture
def refusing_proxy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Refuses every plain-http request (a filter that denies by default) and every tunnel
    (CONNECT only to port 1): 403 for both."""
    (tmp_path / "filter").write_text("")
    settings = f'Filter "{tmp_path / "filter"}"\nFilterDefaultDeny Yes\nConnectPort 1\n'
    with tinyproxy(tmp_path, settings=settings) as running:
        yield running


async def search(
    origin: Origin,
    transport: str = "asyncio",
    *,
    target: str = "",
    ca: CertificateAuthority | None = None,
) -> ProbeResult:
    if ca is not None:
        target += f"    tls: {{ca_file: {ca.pem}}}\n"
    monitor = raw_target_monitor(origin.url, transport, target=target)
    try:
        results = await monitor.probe_round()
    finally:
        await monitor.aclose()
    (result,) = [r for r in results if r.check == "search"]
    return result


def carried(log: Path) -> list[str]:
    """The requests the proxy was asked to carry, as its log names them."""
    return [line.split("): ", 1)[1] for line in log.read_text().splitlines() if "Request (" in line]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_http_goes_through_the_proxy_in_http_proxy(
    transport: str,
    http_origin: Origin,
    proxy: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, log = proxy
    monkeypatch.setenv("HTTP_PROXY", url)
    result = await search(http_origin, transport)
    assert result.outcome is Outcome.OK, result
    assert f"GET {http_origin.url}/v1/acme/search?q=shoes HTTP/1.1" in carried(log)
    assert http_origin.heads and all(b"tinyproxy/" in head for head in http_origin.heads)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_https_goes_through_a_connect_tunnel_with_tls_to_the_origin(
    transport: str,
    https_origin: Origin,
    ca: CertificateAuthority,
    proxy: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, log = proxy
    monkeypatch.setenv("HTTPS_PROXY", url)
    result = await search(https_origin, transport, ca=ca)
    assert result.outcome is Outcome.OK, result
    port = https_origin.url.rsplit(":", 1)[1]
    assert f"CONNECT localhost:{port} HTTP/1.1" in carried(log)
    assert https_origin.server_names and set(https_origin.server_names) == {"localhost"}  # SNI


async def test_the_tunnelled_origin_is_verified_against_the_targets_ca(
    https_origin: Origin, tmp_path: Path, proxy: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy[0])
    stranger = CertificateAuthority(tmp_path, "another CA")
    result = await search(https_origin, ca=stranger)
    assert result.outcome is Outcome.TLS_ERROR, result
    assert result.tls_reason == "unknown_issuer", result


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_targets_proxy_with_credentials_authenticates_and_keeps_them_secret(
    scheme: str,
    http_origin: Origin,
    https_origin: Origin,
    ca: CertificateAuthority,
    authenticating_proxy: tuple[str, Path],
) -> None:
    url, log = authenticating_proxy
    origin = http_origin if scheme == "http" else https_origin
    with_password = url.replace("http://", f"http://alice:{PASSWORD}@")
    result = await search(origin, target=f"    proxy: {with_password}\n", ca=ca)
    assert result.outcome is Outcome.OK, result
    assert len(carried(log)) >= 1
    assert all(b"Proxy-Authorization" not in head for head in origin.heads)  # the proxy's only


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_proxy_that_wants_credentials_is_connect_error_naming_it(
    scheme: str,
    http_origin: Origin,
    https_origin: Origin,
    ca: CertificateAuthority,
    authenticating_proxy: tuple[str, Path],
) -> None:
    url, _ = authenticating_proxy
    origin = http_origin if scheme == "http" else https_origin
    result = await search(origin, target=f"    proxy: {url}\n", ca=ca)
    assert result.outcome is Outcome.CONNECT_ERROR, result
    assert f"proxy {url.removeprefix('http://')} requires authentication (407" in result.reason
    assert origin.heads == []


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_wrong_proxy_credentials_are_never_ok(
    scheme: str,
    http_origin: Origin,
    https_origin: Origin,
    ca: CertificateAuthority,
    authenticating_proxy: tuple[str, Path],
) -> None:
    """tinyproxy answers wrong credentials with 401, not 407. To CONNECT only the proxy can
    answer, so it is the proxy's refusal; for plain http a 401 reads as the origin's own
    would (auth_error with the status), as it does under any HTTP client."""
    url, _ = authenticating_proxy
    origin = http_origin if scheme == "http" else https_origin
    wrong = url.replace("http://", "http://alice:not-the-password@")
    result = await search(origin, target=f"    proxy: {wrong}\n", ca=ca)
    if scheme == "https":
        assert result.outcome is Outcome.CONNECT_ERROR, result
        assert f"proxy {url.removeprefix('http://')} requires authentication (401" in result.reason
    else:
        assert (result.outcome, result.status) == (Outcome.AUTH_ERROR, 401), result
        assert result.reason == "status 401: the proxy credentials of target sandbox rejected"
    assert "not-the-password" not in result.reason
    assert origin.heads == []


async def test_a_tunnel_the_proxy_refuses_is_connect_error_naming_it(
    https_origin: Origin, ca: CertificateAuthority, refusing_proxy: tuple[str, Path]
) -> None:
    url, _ = refusing_proxy
    result = await search(https_origin, target=f"    proxy: {url}\n", ca=ca)
    assert result.outcome is Outcome.CONNECT_ERROR, result
    assert f"proxy {url.removeprefix('http://')} refused the tunnel (403" in result.reason


async def test_plain_http_the_proxy_refuses_is_its_403(
    http_origin: Origin, refusing_proxy: tuple[str, Path]
) -> None:
    """For plain http the proxy's refusal is an HTTP response like the origin's would be: the
    probe fails on its status (auth_error for a 403), and the origin was never asked."""
    result = await search(http_origin, target=f"    proxy: {refusing_proxy[0]}\n")
    assert (result.outcome, result.status) == (Outcome.AUTH_ERROR, 403), result
    assert http_origin.heads == []


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_proxy_that_is_down_is_connect_error_naming_it(
    scheme: str, http_origin: Origin, https_origin: Origin, ca: CertificateAuthority
) -> None:
    down = f"127.0.0.1:{free_port()}"
    origin = http_origin if scheme == "http" else https_origin
    result = await search(origin, target=f"    proxy: http://{down}\n", ca=ca)
    assert result.outcome is Outcome.CONNECT_ERROR, result
    assert f"cannot connect to proxy {down}" in result.reason
    assert origin.heads == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_no_proxy_sends_its_hosts_direct(
    transport: str,
    http_origin: Origin,
    proxy: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, log = proxy
    monkeypatch.setenv("HTTP_PROXY", url)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    result = await search(http_origin, transport)
    assert result.outcome is Outcome.OK, result
    assert carried(log) == []
    assert http_origin.heads and all(b"Via:" not in head for head in http_origin.heads)


async def test_a_dead_proxy_in_the_environment_fails_what_no_proxy_does_not_cover(
    http_origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NO_PROXY", "example.test")
    result = await search(http_origin)
    assert result.outcome is Outcome.CONNECT_ERROR, result
    assert "cannot connect to proxy" in result.reason
