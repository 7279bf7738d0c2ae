"""The asyncio transport's pool against hand-written loopback servers: connections kept and
reused, a connection the server closed while idle retried once, the connection limit held,
abandoned bodies never reused."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from monitor.probing.transport import connection as connection_module
from monitor.probing.transport import pool as pool_module
from monitor.probing.transport.framing import ResponseParser
from monitor.probing.transport.peer import WAITED
from monitor.probing.transport.pool import AsyncioTransport

pytestmark = pytest.mark.integration
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


@dataclass
class Server:
    url: str = ""
    accepted: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[bytes] = field(default_factory=list)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> Server:
        state = Server()

        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            state.accepted += 1
            state.open_now += 1
            state.most_open = max(state.most_open, state.open_now)
            try:
                await handler(reader, writer, state)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                state.open_now -= 1
                writer.close()

        server = await asyncio.start_server(connected, "127.0.0.1", 0)
        servers.append(server)
        state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return state

    yield start
    for server in servers:
        server.close()


async def answer_each(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server
) -> None:
    while True:
        state.requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(OK)
        await writer.drain()


def answer_once(answer: bytes) -> Handler:
    """Read one request's head, write `answer`; the connection closes after it (serve's)."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()

    return handler


def client(**limits: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=AsyncioTransport(limits=httpx.Limits(**limits)))


async def test_a_kept_alive_connection_is_reused(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    server = await serve(answer_each)
    async with client() as http:
        for _ in range(3):
            response = await http.get(server.url + "/x?q=1")
            assert (response.status_code, response.text) == (200, "ok")
    assert server.accepted == 1
    assert server.requests[0].startswith(b"GET /x?q=1 HTTP/1.1\r\n")


@pytest.mark.parametrize(
    "answer",
    [OK, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nok"],
    ids=["content-length", "until-close"],
)
async def test_a_response_says_how_long_it_waited_for_its_reader(
    serve: Callable[[Handler], Awaitable[Server]], answer: bytes
) -> None:
    """Read off the socket while the reader's task had not run yet: the wait after the last
    byte (here the loop held by a blocking sleep) is reported, so a probe leaves it out."""

    server = await serve(answer_once(answer))
    async with client() as http, http.stream("GET", server.url) as response:
        waited = response.extensions[WAITED]
        assert waited() == 0.0  # not read yet
        connection = waited.__self__._connection  # the body stream's
        for _ in range(1000):  # until the transport has the whole answer
            if connection.completed_at is not None:
                break
            await asyncio.sleep(0.001)
        time.sleep(0.2)  # noqa: ASYNC251  (the loop stands still: the body waits)
        assert await response.aread() == b"ok"
        assert waited() >= 0.2


async def test_idle_connections_are_used_in_turn_while_warm_then_newest_first(
    serve: Callable[[Handler], Awaitable[Server]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three requests at once open three connections. While the longest idle has idled at
    most WARM_S, each request takes it (all three stay in use, none left for the server's
    idle timeout to close); once it has idled longer, the one idle shortest is taken."""
    seen: list[int] = []

    async def numbered(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server
    ) -> None:
        number = state.accepted
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(0.03 * number)  # the first three overlap, and end in turn
        while True:
            writer.write(OK)
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            seen.append(number)

    server = await serve(numbered)
    async with client() as http:
        await asyncio.gather(*(http.get(server.url) for _ in range(3)))
        assert server.accepted == 3  # back in the pool in the order 1, 2, 3
        for _ in range(6):
            assert (await http.get(server.url)).text == "ok"
        assert seen == [1, 2, 3, 1, 2, 3]  # in turn, the one idle longest first
        monkeypatch.setattr(pool_module, "WARM_S", -1.0)  # every idle connection now "cold"
        seen.clear()
        for _ in range(3):
            assert (await http.get(server.url)).text == "ok"
        assert len(set(seen)) == 1  # the one idle shortest, again and again
    assert server.accepted == 3


async def test_connection_close_is_not_reused(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def once_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()  # until the client hangs up

    server = await serve(once_then_close)
    async with client() as http:
        for _ in range(2):
            assert (await http.get(server.url)).text == "ok"
    assert server.accepted == 2


async def test_a_connection_the_server_closed_while_idle_is_replaced(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def one_answer_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)  # says nothing about closing, then closes: a keep-alive timeout
        await writer.drain()

    server = await serve(one_answer_then_close)
    async with client() as http:
        assert (await http.get(server.url)).text == "ok"
        await asyncio.sleep(0.1)  # the close reaches the idle connection
        assert (await http.get(server.url)).text == "ok"
    assert server.accepted == 2


async def test_a_closed_connection_frees_its_parser_without_the_garbage_collector(
    serve: Callable[[Handler], Awaitable[Server]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # llhttp's parser holds the response parser's bound methods: a cycle, unless the closed
    # connection drops it. Closed connections' parsers must not wait for a full collection.
    made: list[weakref.ref[ResponseParser]] = []

    class Recorded(ResponseParser):
        def __init__(self, *, head_request: bool = False) -> None:
            super().__init__(head_request=head_request)
            made.append(weakref.ref(self))

    monkeypatch.setattr(connection_module, "ResponseParser", Recorded)

    server = await serve(answer_once(OK))
    gc.collect()
    gc.disable()
    try:
        async with client() as http:
            assert (await http.get(server.url)).text == "ok"
            await asyncio.sleep(0.1)  # the server closes the idle connection
            assert (await http.get(server.url)).text == "ok"  # on a new one: the old dropped
            assert len(made) == 2 and made[0]() is None
    finally:
        gc.enable()


async def test_a_request_the_server_closes_on_unanswered_goes_again_once(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def first_connection_drops_its_second_request(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server
    ) -> None:
        first = state.accepted == 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        if not first:
            writer.write(OK)
            await writer.drain()
        # first connection: the race a keep-alive timeout makes, closed with the request unread

    server = await serve(first_connection_drops_its_second_request)
    async with client() as http:
        assert (await http.get(server.url)).text == "ok"
        assert (await http.get(server.url)).text == "ok"  # retried on a new connection
    assert server.accepted == 2


async def test_a_request_dropped_on_a_new_connection_is_not_retried(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def drop(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")

    server = await serve(drop)
    async with client() as http:
        with pytest.raises(httpx.RemoteProtocolError, match="without a response"):
            await http.get(server.url)
    assert server.accepted == 1


async def test_the_connection_limit_holds_and_waiting_requests_get_their_turn(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def slow(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server
    ) -> None:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(0.02)
            writer.write(OK)
            await writer.drain()

    server = await serve(slow)
    async with client(max_connections=2) as http:
        responses = await asyncio.gather(*(http.get(server.url) for _ in range(6)))
    assert [r.text for r in responses] == ["ok"] * 6
    assert server.most_open == 2 and server.accepted == 2


async def test_pool_timeout_when_every_connection_is_busy(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def hang(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server
    ) -> None:
        await reader.read()

    server = await serve(hang)
    async with httpx.AsyncClient(
        transport=AsyncioTransport(limits=httpx.Limits(max_connections=1)),
        timeout=httpx.Timeout(5, pool=0.1),
    ) as http:
        first = asyncio.ensure_future(http.get(server.url))
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.PoolTimeout):
            await http.get(server.url)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first


async def test_a_body_left_unread_closes_its_connection(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def big(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server
    ) -> None:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
            await writer.drain()

    server = await serve(big)
    async with client() as http:
        for _ in range(2):
            async with http.stream("GET", server.url) as response:
                assert response.status_code == 200  # closed with 999,000 bytes unread
    assert server.accepted == 2


async def test_read_timeout_and_refused_connection_are_httpx_errors(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def mute(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server
    ) -> None:
        await reader.read()

    server = await serve(mute)
    async with httpx.AsyncClient(transport=AsyncioTransport(), timeout=0.1) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(server.url)
        with pytest.raises(httpx.ConnectError):
            await http.get("http://127.0.0.1:1/")
        with pytest.raises(httpx.UnsupportedProtocol):
            await http.get("ftp://127.0.0.1/")


async def test_bytes_after_a_complete_answer_keep_the_answer_and_drop_the_connection(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def stray(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server
    ) -> None:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            # A byte too many (a stray CRLF is skipped, as RFC 9112 section 2.2 allows).
            writer.write(OK + b"!")
            await writer.drain()

    server = await serve(stray)
    async with client() as http:
        for _ in range(2):
            assert (await http.get(server.url)).text == "ok"
    assert server.accepted == 2
