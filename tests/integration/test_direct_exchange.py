"""The asyncio transport's two paths give the same probe results: probe_http talks to recmon's
own transport directly (AsyncioTransport.exchange: no httpx.Request, Response or Headers per
probe), and any other caller goes through httpx's API (handle_async_request). Each answer here
comes from a raw loopback socket (or a TLS one) to both, and the two ProbeResults must agree
in every field but the timing (test_the_wait_after_the_last_byte_is_left_out_alike)."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import fields, replace
from unittest import mock

import httpx
import pytest

from monitor.core.clock import SystemClock
from monitor.core.results import Outcome, ProbeResult
from monitor.probing import http
from monitor.probing.checks import HttpCheck
from monitor.probing.http import prepare, probe_http
from monitor.probing.transport.connection import Connection
from monitor.probing.transport.pool import AsyncioTransport
from tests.helpers import BASE_CONFIG, checks
from tests.http_corpus import BODY, CASES, JSON, Case
from tests.tlscerts import CertificateAuthority

pytestmark = pytest.mark.integration

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class ThroughHttpx(httpx.AsyncBaseTransport):
    """The same transport behind httpx's API only: probe_http does not take it for its own,
    so its probes build an httpx.Request and read an httpx.Response."""

    def __init__(self, inner: AsyncioTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def search_check(timeout: float = 0.5, max_body_bytes: int = 1024 * 1024) -> HttpCheck:
    defaults = f"defaults: {{interval: 10s, timeout: {timeout}s}}"
    text = BASE_CONFIG.replace("defaults: {interval: 10s, timeout: 2s}", defaults)
    return replace(checks(text)["search"], max_body_bytes=max_body_bytes)


def replying(raw: bytes, *, then: str = "close") -> Handler:
    """Answers each request with `raw`; then closes, keeps the connection open ("hang"),
    or resets it ("reset")."""

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(raw)
                await writer.drain()
                if then == "hang":
                    await asyncio.sleep(3)
                if then == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                if then == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        writer.close()

    return reply


async def both_paths(
    handler: Handler,
    check: HttpCheck | None = None,
    *,
    tls: ssl.SSLContext | None = None,
    verify: ssl.SSLContext | bool = True,
    rounds: int = 1,
) -> tuple[list[ProbeResult], list[ProbeResult]]:
    """`rounds` probes through each path against a server that answers as `handler` says."""
    check = check or search_check()
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if tls is not None else "http"
    found: dict[bool, list[ProbeResult]] = {}
    try:
        for direct in (True, False):
            transport = AsyncioTransport(verify=verify)
            async with httpx.AsyncClient(
                base_url=f"{scheme}://127.0.0.1:{port}",
                headers={"user-agent": "recmon-test"},
                timeout=httpx.Timeout(check.timeout),
                transport=transport if direct else ThroughHttpx(transport),
            ) as client:
                request = prepare(client, check.render({"tenant": "acme", "query": "shoes"}))
                with mock.patch.object(http, "_exchange", wraps=http._exchange) as exchanged:
                    found[direct] = [
                        await probe_http(check, "acme", request, client, SystemClock())
                        for _ in range(rounds)
                    ]
                assert exchanged.call_count == (rounds if direct else 0)  # the path it says
    finally:
        server.close()
        await asyncio.sleep(0.05)  # the handlers see their connections close, and end
    return found[True], found[False]


# What the machine decides, not the answer: when, how long, and whether the loop was busy
# enough around the last byte to distrust the latency.
TIMING = ("duration_s", "started_at", "latency_trusted")


def assert_alike(direct: list[ProbeResult], through_httpx: list[ProbeResult]) -> None:
    for one, other in zip(direct, through_httpx, strict=True):
        for name in (f.name for f in fields(ProbeResult)):
            if name not in TIMING:
                assert getattr(one, name) == getattr(other, name), (name, one, other)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_the_corpus_reads_alike_on_both_paths(case: Case) -> None:
    direct, through_httpx = await both_paths(replying(case.raw))
    assert_alike(direct, through_httpx)


def answer(status: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\n" + JSON + extra + b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body


GZIPPED = gzip.compress(BODY)
BOMB = gzip.compress(b'{"results": [' + b" " * 2_000_000 + b"]}")


@pytest.mark.parametrize(
    ("raw", "outcome"),
    [
        (answer(b"200 OK", BODY), Outcome.OK),
        (answer(b"200 OK", b'{"results": []}'), Outcome.EMPTY),
        (answer(b"404 Not Found", b"{}"), Outcome.HTTP_ERROR),
        (answer(b"401 Unauthorized", b"{}"), Outcome.AUTH_ERROR),
        (answer(b"503 Service Unavailable", b""), Outcome.HTTP_ERROR),
        (answer(b"200 OK", b"not json"), Outcome.INVALID_BODY),
        (answer(b"200 OK", GZIPPED, b"Content-Encoding: gzip\r\n"), Outcome.OK),
        (answer(b"200 OK", GZIPPED, b"Content-Encoding: GZip \r\n"), Outcome.OK),
        (answer(b"200 OK", BODY[:-3], b"Content-Encoding: gzip\r\n"), Outcome.INVALID_BODY),
        (answer(b"200 OK", BOMB, b"Content-Encoding: gzip\r\n"), Outcome.INVALID_BODY),
        (answer(b"200 OK", BODY, b"Content-Encoding: identity\r\n"), Outcome.OK),
        # An encoding httpx never asked for: httpx's own decoding (identity) on both paths.
        (answer(b"200 OK", BODY, b"Content-Encoding: x-unknown\r\n"), Outcome.OK),
        (answer(b"200 OK", b"[" + b"1," * 40_000 + b"1]"), Outcome.INVALID_BODY),  # > 64 KiB
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=\xe9\r\n"
            b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY,
            Outcome.OK,
        ),
        (b"HTTP/1.1 200 OK\r\n" + JSON + b"\r\n" + b"[1," * 60_000, Outcome.INVALID_BODY),
    ],
    ids=[
        "ok",
        "empty",
        "404",
        "401",
        "503-no-body",
        "not-json",
        "gzip",
        "gzip-odd-case",
        "gzip-broken",
        "gzip-bomb",
        "identity",
        "unknown-encoding",
        "over-the-cap",
        "latin-1-header",
        "over-the-cap-until-close",
    ],
)
async def test_answers_read_alike_on_both_paths(raw: bytes, outcome: Outcome) -> None:
    check = search_check(max_body_bytes=64 * 1024)
    direct, through_httpx = await both_paths(replying(raw, then="keep"), check, rounds=2)
    assert direct[0].outcome is outcome, direct[0]
    assert_alike(direct, through_httpx)


async def test_a_slow_body_arrives_in_pieces_alike() -> None:
    """The body in pieces a few milliseconds apart: the reader waits for each."""

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n" + JSON + b"Transfer-Encoding: chunked\r\n\r\n")
        for byte in BODY:
            writer.write(b"1\r\n" + bytes([byte]) + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    direct, through_httpx = await both_paths(drip)
    assert direct[0].outcome is Outcome.OK, direct[0]
    assert_alike(direct, through_httpx)


@pytest.mark.parametrize(
    ("handler", "outcome"),
    [
        (replying(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n[1,", then="reset"), "connect"),
        (replying(b"", then="reset"), "connect"),
        (replying(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n[1,", then="hang"), "timeout"),
        (replying(b"", then="hang"), "timeout"),
    ],
    ids=["reset-mid-body", "reset-before-head", "hang-mid-body", "hang-before-head"],
)
async def test_resets_and_timeouts_alike(handler: Handler, outcome: str) -> None:
    direct, through_httpx = await both_paths(handler, search_check(timeout=0.3))
    assert direct[0].outcome is Outcome(f"{outcome}_error" if outcome == "connect" else outcome)
    assert_alike(direct, through_httpx)


async def test_nothing_listening_alike() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens on it now
    results = {}
    for direct in (True, False):
        transport = AsyncioTransport()
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=httpx.Timeout(0.5),
            transport=transport if direct else ThroughHttpx(transport),
        ) as client:
            check = search_check()
            request = prepare(client, check.render({"tenant": "acme", "query": "shoes"}))
            results[direct] = [await probe_http(check, "acme", request, client, SystemClock())]
    assert results[True][0].outcome is Outcome.CONNECT_ERROR
    assert_alike(results[True], results[False])


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted-ca", "unknown-ca"])
async def test_tls_alike(ca: CertificateAuthority, trusted: bool) -> None:
    leaf = ca.issue("server", names=("127.0.0.1",))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(leaf.cert_pem, leaf.key_pem)
    verify = ssl.create_default_context(cafile=str(ca.pem)) if trusted else True
    direct, through_httpx = await both_paths(
        replying(answer(b"200 OK", BODY), then="keep"), tls=server, verify=verify, rounds=2
    )
    assert direct[0].outcome is (Outcome.OK if trusted else Outcome.TLS_ERROR), direct[0]
    assert_alike(direct, through_httpx)


async def test_the_wait_after_the_last_byte_is_left_out_alike() -> None:
    """The loop stands still for 0.1 s between the last byte's arrival and the probe's next
    step: on both paths that wait is the monitor's, left out of the latency, which is marked
    untrusted."""
    original = Connection.data_received

    def then_stall(connection: Connection, data: bytes) -> None:
        # Runs before the probe's task, which the head's arrival wakes (call_soon order).
        asyncio.get_running_loop().call_soon(time.sleep, 0.1)
        original(connection, data)

    with mock.patch.object(Connection, "data_received", then_stall):
        direct, through_httpx = await both_paths(replying(answer(b"200 OK", BODY)))
    for result in (*direct, *through_httpx):
        assert result.outcome is Outcome.OK, result
        assert not result.latency_trusted
        assert result.duration_s < 0.1, result  # the stall is not the target's
    assert_alike(direct, through_httpx)
