"""Building a target's client: which transport, and what it tells the operator."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from monitor.config.model import Target
from monitor.probing.httpclient import build_client
from monitor.probing.transport.pool import AsyncioTransport
from tests.binaries import free_port


@pytest.mark.parametrize("kind", ["asyncio", "aiohttp", "httpx"])
async def test_proxy_variables_every_transport_honours_are_named_never_shown(
    kind: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:hunter2@127.0.0.1:3128")
    target = Target(base_url="http://127.0.0.1:9")
    with caplog.at_level("INFO", logger="recmon.http"):
        await build_client("api", target, 1.0, kind=kind).aclose()
    (line,) = [r for r in caplog.records if "proxy" in r.getMessage()]
    assert line.levelname == "INFO"
    assert line.fields["variables"] == ["HTTPS_PROXY"]  # type: ignore[attr-defined]
    assert line.fields["transport"] == kind  # type: ignore[attr-defined]
    assert "hunter2" not in str(line.__dict__)


async def test_a_targets_proxy_is_named_by_host_and_port_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    target = Target(base_url="http://127.0.0.1:9", proxy="http://user:hunter2@127.0.0.1:3128")
    with caplog.at_level("INFO", logger="recmon.http"):
        await build_client("api", target, 1.0, kind="asyncio").aclose()
    (line,) = [r for r in caplog.records if "proxy" in r.getMessage()]
    assert line.fields["proxy"] == "127.0.0.1:3128"  # type: ignore[attr-defined]
    assert "hunter2" not in str(line.__dict__)


@pytest.mark.parametrize(
    ("url", "no_proxy", "expected"),
    [
        ("http://api.test/x", "", "proxy.test:3128"),
        ("https://api.test/x", "", "secure.test:3129"),
        ("http://api.test/x", "api.test", None),
        ("http://eu.api.test/x", ".api.test", None),
        ("http://api.test/x", "other.test", "proxy.test:3128"),
        ("http://api.test/x", "*", None),
    ],
)
def test_the_environment_picks_a_proxy_per_url_and_no_proxy_bypasses_it(
    url: str, no_proxy: str, expected: str | None
) -> None:
    environment = {"http": "http://proxy.test:3128", "https": "http://secure.test:3129"}
    if no_proxy:
        environment["no"] = no_proxy
    transport = AsyncioTransport(environment=environment)
    scheme, host = url.split("://")[0], url.split("/")[2]
    proxy = transport._proxy_for(scheme, host)
    assert (proxy.name if proxy else None) == expected


def test_a_targets_proxy_wins_over_the_environment() -> None:
    transport = AsyncioTransport(
        proxy="http://a:b@mine.test:8080", environment={"http": "http://env.test:1", "no": "*"}
    )
    proxy = transport._proxy_for("http", "api.test")
    assert proxy is not None and proxy.name == "mine.test:8080"
    assert proxy.authorization == b"Basic YTpi"  # a:b


class _Gate:
    """A loopback HTTP/1.1 server that holds every answer until `expected` requests are in
    (each answered at once after that), counting the connections it accepted."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.connections = 0
        self.requests = 0
        self.all_in = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while await reader.readuntil(b"\r\n\r\n"):
                self.requests += 1
                if self.requests >= self.expected:
                    self.all_in.set()
                await self.all_in.wait()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        writer.close()


async def _get_all(client: httpx.AsyncClient, count: int) -> list[int]:
    answers = await asyncio.gather(*(client.get("/x") for _ in range(count)))
    return [answer.status_code for answer in answers]


async def test_httpx_pools_run_as_many_requests_at_once_as_the_target_has_connections() -> None:
    """33 connections are several httpcore pools (at most POOL_SHARD each, not all of one
    size): 33 requests at once all reach the server, none held inside a full pool while
    another has room (the server answers none until all 33 are in, so one held back would
    never be answered); and again once their connections are back, on the same connections."""
    gate = _Gate(expected=33)
    server = await asyncio.start_server(gate.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = Target(base_url=f"http://127.0.0.1:{port}", max_connections=33)
    client = build_client("api", target, 5.0, kind="httpx")
    try:
        assert await asyncio.wait_for(_get_all(client, 33), 10) == [200] * 33
        assert gate.connections == 33
        gate.requests, gate.all_in = 0, asyncio.Event()
        assert await asyncio.wait_for(_get_all(client, 33), 10) == [200] * 33
        assert gate.connections == 33
    finally:
        await client.aclose()
        server.close()


async def test_a_light_load_keeps_to_one_kept_alive_connection() -> None:
    gate = _Gate(expected=1)
    server = await asyncio.start_server(gate.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = build_client("api", Target(base_url=f"http://127.0.0.1:{port}"), 5.0, kind="httpx")
    try:
        for _ in range(10):
            assert (await client.get("/x")).status_code == 200
        assert gate.connections == 1
    finally:
        await client.aclose()
        server.close()


async def test_a_failed_request_gives_its_connection_back() -> None:
    """Ten refused requests, then as many at once as the target has connections all go out."""
    refused = Target(base_url=f"http://127.0.0.1:{free_port()}", max_connections=33)
    client = build_client("api", refused, 5.0, kind="httpx")
    for _ in range(10):
        with pytest.raises(httpx.ConnectError):
            await client.get("/x")
    gate = _Gate(expected=33)
    server = await asyncio.start_server(gate.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client.base_url = httpx.URL(f"http://127.0.0.1:{port}")
        assert await asyncio.wait_for(_get_all(client, 33), 10) == [200] * 33
    finally:
        await client.aclose()
        server.close()
