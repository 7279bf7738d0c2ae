"""One httpx.AsyncClient per target. Tests inject a transport (httpx.MockTransport) here."""

from __future__ import annotations

import heapq
import logging
import math
import os
import ssl
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import httpx

from monitor import __version__
from monitor.config.model import Target
from monitor.probing.transport.peer import PEER, VIA_PROXY, format_peer
from monitor.telemetry.polltime import TimedSelector

USER_AGENT = f"recmon/{__version__}"
# Every transport honours them (and NO_PROXY); named in a log line, their values never shown
# (a proxy URL can carry a password).
PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "https_proxy",
    "http_proxy",
    "all_proxy",
)

log = logging.getLogger("recmon.http")

ClientFactory = Callable[[str, Target, float], httpx.AsyncClient]


def tls_verification(target: Target) -> ssl.SSLContext | bool:
    if not target.tls.verify:
        return False
    if target.tls.ca_file:
        return ssl.create_default_context(cafile=target.tls.ca_file)
    return True


LOCATION_HEADER = "x-recmon-location"


def build_client(
    name: str,
    target: Target,
    timeout: float,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    kind: str = "httpx",
    location: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    polls: TimedSelector | None = None,
) -> httpx.AsyncClient:
    """A client whose pool is as large as the target allows, so probes never queue inside
    httpx (queuing time would be reported as the target's latency). `polls`: the running
    loop's selector when it times its polls (recmon's own transport reads by it)."""
    limits = httpx.Limits(
        max_connections=target.max_connections,
        max_keepalive_connections=target.max_connections,
        keepalive_expiry=30.0,
    )
    # A client certificate's context (monitor.probing.clientcert), reloaded in place: every
    # transport below is handed the same object.
    verify = ssl_context or tls_verification(target)
    if transport is None:
        _say_which_proxy(name, target, kind)
    if transport is None and kind == "asyncio":
        # Same httpx API, recmon's own lean HTTP/1.1 client underneath (monitor.probing.transport).
        from monitor.probing.transport.pool import AsyncioTransport, environment_proxies

        transport = AsyncioTransport(
            verify=verify,
            limits=limits,
            proxy=target.proxy,
            environment=environment_proxies(),
            addresses=target.addresses,
            polls=polls,
        )
    elif transport is None and kind == "aiohttp":
        # Same httpx API, aiohttp underneath: several times less CPU per request (bench/).
        # Its session reads the proxy variables itself (trust_env).
        from monitor.probing.aiohttp_transport import HeadCappedAiohttpTransport

        transport = HeadCappedAiohttpTransport(
            verify=verify,
            limits=limits,
            proxy=httpx.Proxy(target.proxy) if target.proxy else None,
        )
    elif transport is None and target.proxy is None and not _proxy_variables():
        # httpx's own, direct: the same transport, naming the address that answered, in
        # pools of a few connections.
        transport = ShardedPoolTransport(verify=verify, limits=limits)
    return httpx.AsyncClient(
        base_url=target.base_url,
        headers={
            "user-agent": USER_AGENT,
            # Where the probe comes from, for the API's logs (and the sandbox's faults by
            # location); the target's own headers may override it.
            **({LOCATION_HEADER: location} if location else {}),
            **(
                {"authorization": f"Basic {target.basic_auth.credentials}"}
                if target.basic_auth is not None
                else {}
            ),
            **target.headers,
        },
        timeout=httpx.Timeout(timeout),
        limits=limits,
        verify=verify,
        transport=transport,
        proxy=target.proxy if transport is None else None,  # httpx's own: env, or this
        follow_redirects=False,
    )


def _say_which_proxy(target: str, config: Target, kind: str) -> None:
    """One line per target client when a proxy is in play: the configured one by host:port,
    or the proxy variables by name (their values, which may carry a password, never)."""
    if config.proxy is not None:
        parts = urlsplit(config.proxy)
        log.info(
            "probes go through the target's proxy",
            extra={
                "fields": {
                    "target": target,
                    "transport": kind,
                    "proxy": f"{parts.hostname}:{parts.port or 80}",
                }
            },
        )
        return
    present = _proxy_variables()
    if present:
        log.info(
            "proxy settings in the environment are honoured (NO_PROXY too)",
            extra={"fields": {"target": target, "transport": kind, "variables": present}},
        )


def _proxy_variables() -> list[str]:
    return [v for v in PROXY_VARIABLES if os.environ.get(v)]


class PeerNamingTransport(httpx.AsyncHTTPTransport):
    """httpx's transport for direct connections, naming the peer of each response as recmon's
    other transports do."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        stream = response.extensions.get("network_stream")
        server = stream.get_extra_info("server_addr") if stream is not None else None
        if server:
            response.extensions[PEER] = format_peer(str(server[0]), int(server[1]))
            response.extensions[VIA_PROXY] = False
        return response


# httpcore's pool walks every connection it holds on each request and on each response
# closed (has_expired asks anyio for an idle socket's extra info: a getpeername and a poll
# each), so its cost per request grows with its size. In one pool of 100 (the default) a
# recmon offered 500 probes/s here fell behind for good (it did not even stop within 60 s);
# in pools of 32 it ran 521/s at 1.9 ms of CPU each, of 8 501/s at 1.5 ms, of 4 501/s at
# 1.1 ms (bench/run.py --quick --transport httpx --rates 500; README, Transport).
POOL_SHARD = 4


class ShardedPoolTransport(httpx.AsyncBaseTransport):
    """httpx's direct transport as many pools of at most POOL_SHARD connections, together as
    large as `limits` says. A request goes to the first pool with a connection to spare (a
    light load reuses the first pools' kept-alive connections), so none waits inside httpcore
    while another pool has room: recmon bounds a target's probes by its connections."""

    def __init__(self, *, verify: ssl.SSLContext | bool, limits: httpx.Limits) -> None:
        total = limits.max_connections
        if total is None:  # a target's max_connections is 1 or more (config.model)
            raise ValueError("a sharded pool needs max_connections")
        count = math.ceil(total / POOL_SHARD)
        sizes = [total // count + (i < total % count) for i in range(count)]
        context = httpx.create_ssl_context(verify=verify)  # one for all the pools
        self._pools = [
            PeerNamingTransport(
                verify=context,
                limits=httpx.Limits(
                    max_connections=size,
                    max_keepalive_connections=size,
                    keepalive_expiry=limits.keepalive_expiry,
                ),
            )
            for size in sizes
        ]
        self._room = sizes  # connections each pool has to spare: its size less its requests
        self._with_room = list(range(count))  # a heap of the pools whose room is above 0
        self._next = 0  # beyond the bound (a caller that does not keep it): in turn

    def _take(self) -> int:
        if self._with_room:
            index = self._with_room[0]
            self._room[index] -= 1
            if not self._room[index]:
                heapq.heappop(self._with_room)
        else:
            self._next = index = (self._next + 1) % len(self._pools)
            self._room[index] -= 1
        return index

    def _give(self, index: int) -> None:
        self._room[index] += 1
        if self._room[index] == 1:
            heapq.heappush(self._with_room, index)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = self._take()
        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            self._give(index)
            raise
        # The connection is the pool's again once the body is closed.
        response.stream = _ReleasingStream(response.stream, self._give, index)
        return response

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that gives its pool's connection back once, when it is closed."""

    def __init__(
        self,
        stream: httpx.SyncByteStream | httpx.AsyncByteStream,
        give: Callable[[int], None],
        index: int,
    ) -> None:
        assert isinstance(stream, httpx.AsyncByteStream)
        self._stream = stream
        self._give = give
        self._index = index
        self._open = True

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        if not self._open:
            return
        self._open = False
        try:
            await self._stream.aclose()
        finally:  # counted back once the pool has its connection again
            self._give(self._index)
