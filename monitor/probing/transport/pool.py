"""The httpx.AsyncBaseTransport: kept-alive connections per origin, at most
`max_connections` in all, errors as httpx's exceptions (the prober's outcomes read them)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import NoReturn

import httpx

from monitor.probing.transport.connection import Connection, ConnectionClosed
from monitor.probing.transport.framing import ProtocolError, encode_request

Origin = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}


class AsyncioTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 on asyncio protocols. No proxies, no HTTP/2: a probe's request, lean."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits()
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._max = limits.max_connections or 1_000_000
        self._keepalive_expiry = limits.keepalive_expiry
        self._idle: dict[Origin, list[Connection]] = {}
        self._open = 0
        self._waiters: list[asyncio.Future[None]] = []  # requests waiting for a free slot
        self._busy: set[Connection] = set()
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
        origin = (url.scheme, url.host, url.port or _DEFAULT_PORTS[url.scheme])
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        read_timeout = timeouts.get("read")
        body = await request.aread()
        data = encode_request(request.method.encode(), url.raw_path, request.headers.raw, body)
        head_request = request.method == "HEAD"
        for attempt in (1, 2):
            connection, reused = await self._checkout(origin, timeouts)
            try:
                head = await connection.send(
                    data, head_request=head_request, read_timeout=read_timeout
                )
            except BaseException as exc:
                self._discard(connection)
                # A kept-alive connection the server had already closed: nothing of this
                # request was answered, so it goes again once, on a new connection.
                if (
                    attempt == 1
                    and reused
                    and not connection.received
                    and isinstance(exc, ConnectionClosed | ProtocolError)
                ):
                    continue
                _raise_as_httpx(exc, request)
            return httpx.Response(
                head.status,
                headers=list(head.headers),
                stream=_ResponseBody(self, connection, origin, read_timeout, request),
                extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason},
                request=request,
            )
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        for connection in list(self._busy):
            connection.close()
        self._busy.clear()
        self._open = 0

    # --- the pool ---------------------------------------------------------------------------

    async def _checkout(
        self, origin: Origin, timeouts: dict[str, float | None]
    ) -> tuple[Connection, bool]:
        loop = asyncio.get_running_loop()
        now = loop.time()
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.closed or (
                self._keepalive_expiry is not None
                and now - connection.idle_since > self._keepalive_expiry
            ):
                connection.close()
                self._forget()
                continue
            self._busy.add(connection)
            return connection, True
        if self._open >= self._max and not self._close_one_idle():
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(timeouts.get("pool")):
                    await waiter
            except TimeoutError:
                raise httpx.PoolTimeout("no free connection within the pool timeout") from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            return await self._checkout(origin, timeouts)
        self._open += 1
        try:
            connection = await self._connect(origin, timeouts.get("connect"))
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise
        self._busy.add(connection)
        return connection, False

    async def _connect(self, origin: Origin, within: float | None) -> Connection:
        scheme, host, port = origin
        context = self._ssl_context() if scheme == "https" else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(within):
                _, connection = await loop.create_connection(
                    Connection, host, port, ssl=context, server_hostname=host if context else None
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"no connection to {host}:{port} within {within}s") from exc
        except OSError as exc:  # refused, unreachable, unresolvable, TLS handshake (ssl.SSLError)
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return connection

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context(verify=self._verify)
        return self._ssl

    def release(self, connection: Connection, origin: Origin) -> None:
        self._busy.discard(connection)
        if connection.reusable and not self._closed:
            connection.release(asyncio.get_running_loop().time())
            self._idle.setdefault(origin, []).append(connection)
            self._wake_one()
        else:
            self._discard(connection)

    def _discard(self, connection: Connection) -> None:
        self._busy.discard(connection)
        connection.close()
        self._forget()

    def _forget(self) -> None:
        """One connection fewer: its slot goes to a waiting request."""
        self._open = max(0, self._open - 1)
        self._wake_one()

    def _close_one_idle(self) -> bool:
        """At the limit with connections idle to other origins: close one to make room."""
        for connections in self._idle.values():
            if connections:
                connections.pop(0).close()
                self._open -= 1
                return True
        return False

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return


class _ResponseBody(httpx.AsyncByteStream):
    def __init__(
        self,
        pool: AsyncioTransport,
        connection: Connection,
        origin: Origin,
        read_timeout: float | None,
        request: httpx.Request,
    ) -> None:
        self._pool = pool
        self._connection: Connection | None = connection
        self._origin = origin
        self._read_timeout = read_timeout
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            raise httpx.StreamClosed()
        while True:
            try:
                piece = await connection.read(self._read_timeout)
            except BaseException as exc:
                await self.aclose()
                _raise_as_httpx(exc, self._request)
            if not piece:
                break
            yield piece
        await self.aclose()  # complete: back to the pool before the caller closes

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.release(connection, self._origin)


def _raise_as_httpx(exc: BaseException, request: httpx.Request) -> NoReturn:
    """Raise what httpx's own transport would (the original stays as __cause__); httpx's
    errors, cancellation and anything unforeseen go on as they are."""
    if isinstance(exc, TimeoutError):
        raise httpx.ReadTimeout(
            "no response data within the read timeout", request=request
        ) from exc
    if isinstance(exc, ProtocolError):
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    if isinstance(exc, ConnectionClosed | OSError):
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
    raise exc
