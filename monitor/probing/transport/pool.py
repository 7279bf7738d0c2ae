"""The httpx.AsyncBaseTransport: kept-alive connections per origin, at most
`max_connections` in all, errors as httpx's exceptions (the prober's outcomes read them)."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import random
import socket
import ssl
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import NoReturn
from urllib.parse import unquote, urlsplit

import httpx

from monitor.probing.transport.connection import Connection, ConnectionClosed
from monitor.probing.transport.framing import Head, ProtocolError, encode_request
from monitor.probing.transport.peer import (
    PEER,
    READ_DOUBT,
    VIA_PROXY,
    WAITED,
    format_peer,
    with_peer,
)
from monitor.telemetry.polltime import TimedSelector

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Proxy:
    """An http:// proxy: absolute-form requests for http, a CONNECT tunnel for https. Its
    credentials live only in `authorization`; `name` (host:port) is what messages show."""

    host: str
    port: int
    authorization: bytes | None = None

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def from_url(cls, url: str) -> Proxy:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            # No credentials in the message: only the scheme is wrong.
            raise ValueError(f"a proxy URL must be http://host:port, not {parts.scheme}://")
        authorization = None
        if parts.username is not None:
            userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = b"Basic " + base64.b64encode(userinfo.encode())
        return cls(parts.hostname, parts.port or 80, authorization)


def environment_proxies() -> Mapping[str, str]:
    """HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY (either case), as urllib reads them."""
    return urllib.request.getproxies_environment()


# A pool key: scheme, host, port, and the proxy's host:port or, for a direct connection, the
# backend address it goes to.
Origin = tuple[str, str, int, str]
# How long a host name's addresses are used before it is resolved again.
RESOLVE_EVERY_S = 30.0
# Idle connections are reused in turn, the one idle longest first, while that one has idled at
# most this long; past it, the one idle shortest. Most probes on a pool the one idle shortest
# (always) left the connections at the bottom unused until the server closed them (uvicorn
# after 5 s idle): whenever more probes were in flight than a few seconds before, new
# connections (10k tenants x 2 / 60 s: ~6% of recmon's CPU in connects, py-spy --gil). In turn,
# each connection a busy pool holds is used every few hundred ms and stays open; a quiet pool
# (its oldest idle beyond this) uses its newest, fewest at a time, as before. Shorter than the
# idle timeouts of common servers (gunicorn 2 s, uvicorn and node 5 s, nginx 75 s).
WARM_S = 1.0


class AsyncioTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 on asyncio protocols, directly or through an http:// proxy. No HTTP/2: a
    probe's request, lean."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
        proxy: str | None = None,
        environment: Mapping[str, str] | None = None,
        addresses: Sequence[str] = (),
        polls: TimedSelector | None = None,
    ) -> None:
        """`proxy` (a target's `proxy:` key) carries every request; without it, `environment`
        (environment_proxies()) picks one per request URL, NO_PROXY honoured. `addresses`
        (a target's `addresses:` key) stand for whatever the host name resolves to. `polls`:
        the selector of the loop it runs on, when that one times its polls: each answer then
        says when it was read and how late that may be (Answer.read_doubt)."""
        limits = limits or httpx.Limits()
        self._new_connection = partial(Connection, polls)
        self._addresses = tuple(addresses)
        # Each request goes to one of its host's addresses, each address with its own kept-
        # alive connections, so every backend behind a name answers probes (one failing
        # backend shows as a share of failures, named). Resolved names are kept a while.
        self._random = random.Random()
        self._resolved: dict[tuple[str, int], tuple[float, tuple[str, ...]]] = {}
        self._proxy = Proxy.from_url(proxy) if proxy else None
        self._environment = dict(environment or {})
        self._environment_proxies: dict[str, Proxy | None] = {}
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._max = limits.max_connections or 1_000_000
        self._keepalive_expiry = limits.keepalive_expiry
        # Per origin, oldest release first.
        self._idle: dict[Origin, deque[Connection]] = {}
        self._open = 0
        self._waiters: list[asyncio.Future[None]] = []  # requests waiting for a free slot
        self._busy: set[Connection] = set()
        self._closed = False
        # The loop its connections belong to, the last one that ran a request (`_loop_time`).
        self._loop: asyncio.AbstractEventLoop | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        body = await request.aread()
        answer = await self.exchange(
            request.method,
            url.scheme,
            url.host,
            url.port,
            url.raw_path,
            request.headers.raw,
            request.extensions.get("timeout", _NO_TIMEOUTS),
            body,
            request,
        )
        head = answer.head
        return httpx.Response(
            head.status,
            headers=list(head.headers),
            stream=answer,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": head.reason,
                PEER: answer.peer,
                VIA_PROXY: answer.via_proxy,
                WAITED: answer.waited,
                READ_DOUBT: answer.read_doubt,
            },
            request=request,
        )

    async def exchange(
        self,
        method: str,
        scheme: str,
        host: str,
        port: int | None,
        raw_path: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        timeouts: Mapping[str, float | None],
        body: bytes = b"",
        request: httpx.Request | None = None,
    ) -> Answer:
        """Send the request; the answer's head, its body to be read from it. The prober's
        own path (http.probe_http) calls this directly, without an httpx.Request or Response
        (building them and reading the head back through httpx.Headers was about a sixth of
        the probe path's CPU); handle_async_request wraps the same. Raises httpx's errors."""
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        port = port or _DEFAULT_PORTS[scheme]
        proxy = self._proxy_for(scheme, host)
        now = self._loop_time()
        if proxy is None:
            # Known addresses without a coroutine (resolving is rare: every RESOLVE_EVERY_S).
            addresses = self._known_addresses(host, port, now)
            resolved = not addresses
            if resolved:
                addresses = await self._resolve(host, port)
            origin = (scheme, host, port, self._pick(addresses))
        else:
            resolved = False
            origin = (scheme, host, port, proxy.name)
        read_timeout = timeouts.get("read")
        target = raw_path
        if proxy is not None and scheme == "http":
            # Absolute form through the proxy (RFC 9112 section 3.2.2); https goes through
            # a tunnel, where the request is the same as direct.
            authority = f"[{host}]" if ":" in host else host
            target = f"http://{authority}:{port}".encode() + raw_path
            if proxy.authorization is not None:
                headers = [*headers, (b"Proxy-Authorization", proxy.authorization)]
        data = encode_request(method.encode(), target, headers, body)
        head_request = method == "HEAD"
        # Whether the request is written in the caller's own step, without the loop running
        # anything in between (no resolving, no new connection, no retry): then its start
        # stamp is its send time, and the loop's delays are all after the answer's read.
        at_once = not resolved
        for attempt in (1, 2):
            # A kept-alive connection without a coroutine, most often; else a new one, or a wait.
            connection = self._idle_connection(origin, now)
            reused = connection is not None
            if connection is None:
                at_once = False
                connection, reused = await self._checkout(origin, proxy, timeouts)
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
                    at_once = False
                    continue
                _raise_as_httpx(exc, request)
            if proxy is not None and scheme == "http" and head.status == 407:
                self._discard(connection)
                raise httpx.ProxyError(
                    f"proxy {proxy.name} requires authentication (407)", request=request
                )
            return Answer(
                self, connection, origin, head, proxy is not None, read_timeout, request, at_once
            )
        raise AssertionError("unreachable")

    def _loop_time(self) -> float:
        """The running loop's time. The loop is kept while it runs: get_running_loop asks the
        OS for the process id on every call (a getpid system call, ~0.7 us a probe under
        py-spy --native), and a pool's connections all belong to the one loop that runs it."""
        loop = self._loop
        if loop is None or not loop.is_running():
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()

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

    def _proxy_for(self, scheme: str, host: str) -> Proxy | None:
        if self._proxy is not None or not self._environment:
            return self._proxy
        key = f"{scheme}://{host}"
        if key not in self._environment_proxies:  # once per scheme and host
            env = self._environment
            url = env.get(scheme) or env.get("all")
            # NO_PROXY as urllib reads it (hosts, domain suffixes, *), for requests too.
            bypass = url is None or urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
                host, env
            )
            self._environment_proxies[key] = None if bypass else Proxy.from_url(url or "")
        return self._environment_proxies[key]

    # --- the pool ---------------------------------------------------------------------------

    def _idle_connection(self, origin: Origin, now: float) -> Connection | None:
        """A kept-alive connection to `origin` still open and fresh, now busy; None if none:
        the one idle longest while it has idled at most WARM_S (in turn, so that every
        connection the probes needed stays in use), else the one idle shortest."""
        idle = self._idle.get(origin)
        if not idle:
            return None
        expiry = self._keepalive_expiry
        while idle:
            connection = idle[0]
            idled = now - connection.idle_since
            if connection.closed or (expiry is not None and idled > expiry):
                idle.popleft()
                connection.close()
                self._forget()
                continue
            if idled <= WARM_S:
                idle.popleft()
                self._busy.add(connection)
                return connection
            break
        while idle:
            connection = idle.pop()
            if connection.closed or (expiry is not None and now - connection.idle_since > expiry):
                connection.close()
                self._forget()
                continue
            self._busy.add(connection)
            return connection
        return None

    async def _checkout(
        self, origin: Origin, proxy: Proxy | None, timeouts: Mapping[str, float | None]
    ) -> tuple[Connection, bool]:
        loop = asyncio.get_running_loop()
        connection = self._idle_connection(origin, loop.time())
        if connection is not None:
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
            return await self._checkout(origin, proxy, timeouts)
        self._open += 1
        try:
            connection = await self._connect(origin, proxy, timeouts.get("connect"))
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise
        self._busy.add(connection)
        return connection, False

    async def _connect(
        self, origin: Origin, proxy: Proxy | None, within: float | None
    ) -> Connection:
        scheme, host, port, _ = origin
        context = self._ssl_context() if scheme == "https" else None
        loop = asyncio.get_running_loop()
        peer = proxy.name if proxy is not None else ""
        try:
            async with asyncio.timeout(within):
                if proxy is None:
                    return await self._connect_direct(host, port, origin[3], context)
                try:
                    _, connection = await loop.create_connection(
                        self._new_connection, proxy.host, proxy.port
                    )
                except OSError as exc:
                    raise httpx.ProxyError(
                        f"cannot connect to proxy {proxy.name}: {exc or type(exc).__name__}"
                    ) from None
                connection.peer = peer
                if context is not None:
                    try:
                        await self._tunnel(connection, proxy, host, port, context)
                    except BaseException:
                        connection.close()
                        raise
                return connection
        except TimeoutError as exc:
            through = f" through proxy {proxy.name}" if proxy else ""
            raise with_peer(
                httpx.ConnectTimeout(f"no connection to {host}:{port}{through} within {within}s"),
                getattr(exc, PEER, peer),
                proxy is not None,
            ) from exc
        except OSError as exc:  # refused, unreachable, unresolvable, TLS handshake (ssl.SSLError)
            raise with_peer(
                httpx.ConnectError(str(exc) or type(exc).__name__),
                getattr(exc, PEER, peer),
                proxy is not None,
            ) from exc

    async def _connect_direct(
        self, host: str, port: int, address: str, context: ssl.SSLContext | None
    ) -> Connection:
        """To `address`; if it refuses, to the host's other addresses (as any client does). A
        TLS handshake that fails is that address's answer. The error raised carries the
        address it came from (PEER)."""
        loop = asyncio.get_running_loop()
        addresses = self._known_addresses(host, port, loop.time()) or (address,)
        first = addresses.index(address) if address in addresses else 0
        refused: OSError | None = None
        for n in range(len(addresses)):
            peer = addresses[(first + n) % len(addresses)]
            try:
                _, connection = await loop.create_connection(
                    self._new_connection,
                    peer,
                    port,
                    ssl=context,
                    server_hostname=host if context else None,
                )
            except ssl.SSLError as exc:
                raise with_peer(exc, format_peer(peer, port)) from None
            except OSError as exc:
                refused = with_peer(exc, format_peer(peer, port))
                continue
            connection.peer = format_peer(peer, port)
            return connection
        assert refused is not None
        raise refused

    def _pick(self, addresses: tuple[str, ...]) -> str:
        # At random, not in turn: a schedule whose rounds hold a multiple of the address
        # count would send each tenant to the same backend every time (one tenant always
        # failing, the others never); at random each tenant sees every backend's share.
        return addresses[0] if len(addresses) == 1 else self._random.choice(addresses)

    def _known_addresses(self, host: str, port: int, now: float) -> tuple[str, ...]:
        """The configured addresses, or the host's resolved recently enough; () if none."""
        if self._addresses:
            return self._addresses
        known = self._resolved.get((host, port))
        if known is None or known[0] < now:
            return ()
        return known[1]

    async def _resolve(self, host: str, port: int) -> tuple[str, ...]:
        try:
            addresses: tuple[str, ...] = (str(ipaddress.ip_address(host)),)
        except ValueError:
            try:
                found = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
            except OSError as exc:  # unresolvable: this request's connect error
                raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
            # Unique, in the resolver's order (RFC 6724: the preferred address first).
            addresses = tuple(dict.fromkeys(str(info[4][0]) for info in found))
        expires = asyncio.get_running_loop().time() + RESOLVE_EVERY_S
        self._resolved[(host, port)] = (expires, addresses)
        return addresses

    async def _tunnel(
        self, connection: Connection, proxy: Proxy, host: str, port: int, context: ssl.SSLContext
    ) -> None:
        """CONNECT through the proxy, then TLS with the origin inside the tunnel: SNI and
        verification for the origin's name, as on a direct connection."""
        authority = (f"[{host}]" if ":" in host else host).encode() + b":%d" % port
        headers = [(b"Host", authority)]
        if proxy.authorization is not None:
            headers.append((b"Proxy-Authorization", proxy.authorization))
        try:
            # A 2xx to CONNECT has no body (RFC 9110 section 9.3.6): read as a HEAD's answer.
            head = await connection.send(
                encode_request(b"CONNECT", authority, headers, b""),
                head_request=True,
                read_timeout=None,  # the caller's connect timeout bounds the whole tunnel
            )
        except (ProtocolError, ConnectionClosed) as exc:
            connection.close()
            raise httpx.ProxyError(f"proxy {proxy.name} broke off the tunnel: {exc}") from None
        if not 200 <= head.status < 300:
            connection.close()
            # To CONNECT only the proxy answers: a 401 is its too (tinyproxy's for wrong
            # credentials).
            refusal = {
                401: "requires authentication",
                407: "requires authentication",
                403: "refused the tunnel",
            }.get(head.status, "did not open the tunnel")
            raise httpx.ProxyError(
                f"proxy {proxy.name} {refusal} ({head.status} {head.reason.decode('latin-1')[:60]})"
            )
        try:
            raw = connection.tunnel_transport()
        except ProtocolError as exc:
            connection.close()
            raise httpx.ProxyError(f"proxy {proxy.name} broke off the tunnel: {exc}") from None
        loop = asyncio.get_running_loop()
        tls = await loop.start_tls(raw, connection, context, server_hostname=host)
        if tls is None:  # the tunnel closed during the handshake
            raise ConnectionResetError("the tunnel closed during the TLS handshake")
        connection.start_tls_over(tls)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context(verify=self._verify)
        return self._ssl

    def release(self, connection: Connection, origin: Origin) -> None:
        self._busy.discard(connection)
        if connection.reusable and not self._closed:
            connection.release(connection.loop.time())
            idle = self._idle.get(origin)
            if idle is None:
                idle = self._idle[origin] = deque()
            idle.append(connection)
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
                connections.popleft().close()
                self._open -= 1
                return True
        return False

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return


class Answer(httpx.AsyncByteStream):
    """A response's head, and its body as it is read off the connection: as an httpx stream
    (handle_async_request), or piece by piece (`piece`, `wait`: the prober's direct path). The
    connection goes back to the pool once the body is whole, or when closed (`release`)."""

    __slots__ = (
        "_completed_at",
        "_connection",
        "_origin",
        "_pool",
        "_read_doubt",
        "_read_timeout",
        "_request",
        "_time",
        "head",
        "peer",
        "sent_at_once",
        "via_proxy",
    )

    def __init__(
        self,
        pool: AsyncioTransport,
        connection: Connection,
        origin: Origin,
        head: Head,
        via_proxy: bool,
        read_timeout: float | None,
        request: httpx.Request | None,
        sent_at_once: bool = False,
    ) -> None:
        """`sent_at_once`: the request was written in the caller's own step (exchange)."""
        self._pool = pool
        self._connection: Connection | None = connection
        self._time = connection.time  # the clock of its completed_at
        self._origin = origin
        self.head = head
        self.peer = connection.peer  # the address that answered (the proxy's, via one)
        self.via_proxy = via_proxy
        self._read_timeout = read_timeout
        self._request = request
        self._completed_at: float | None = None
        self._read_doubt: float | None = None
        self.sent_at_once = sent_at_once

    def waited(self) -> float:
        """Seconds since the whole body was read off the socket, as stamped (0.0 until it
        was)."""
        completed_at = self._completed_at
        return 0.0 if completed_at is None else self._time() - completed_at

    def read_doubt(self) -> float | None:
        """How far off, either way, the body's completion may have been stamped (half the
        interval its last bytes came in: monitor.telemetry.polltime), if the loop times its
        polls, the body is whole and the request went out in the caller's own step
        (`sent_at_once`: else the loop's delays before the send are in the latency too);
        None otherwise."""
        return self._read_doubt if self.sent_at_once else None

    def piece(self) -> bytes | None:
        """The next body piece already read off the socket; b"" once the body is whole (the
        connection then goes back to the pool); None if the next must be waited for (`wait`).
        Raises httpx's errors (the connection closed)."""
        connection = self._connection
        if connection is None:
            raise httpx.StreamClosed()
        try:
            piece = connection.buffered_piece()
        except BaseException as exc:
            self.release()
            _raise_as_httpx(exc, self._request)
        if piece == b"":
            # Before the next request resets them.
            self._completed_at = connection.completed_at
            self._read_doubt = connection.read_doubt
            self.release()
        return piece

    async def wait(self) -> None:
        """Until `piece` has something to say. Raises httpx's errors (the connection closed)."""
        connection = self._connection
        if connection is None:
            raise httpx.StreamClosed()
        try:
            await connection.readable(self._read_timeout)
        except BaseException as exc:
            self.release()
            _raise_as_httpx(exc, self._request)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            piece = self.piece()
            if piece is None:
                await self.wait()
                continue
            if not piece:
                break
            yield piece

    def release(self) -> None:
        """Done with the body (whole or not): the connection goes back to the pool, kept
        alive only if the response ended cleanly."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.release(connection, self._origin)

    async def aclose(self) -> None:
        self.release()


_NO_TIMEOUTS: Mapping[str, float | None] = {}


def _raise_as_httpx(exc: BaseException, request: httpx.Request | None) -> NoReturn:
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
