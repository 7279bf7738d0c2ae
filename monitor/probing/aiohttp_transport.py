"""`engine.transport: aiohttp`: httpx-aiohttp's transport, with recmon's one limit on the size of
a response head instead of aiohttp's 8,190 bytes per header line (a 10 KB header is fine on
every transport, a head over MAX_HEAD_BYTES is refused on every one: the prober checks the
total)."""

from __future__ import annotations

import urllib.request
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import AiohttpResponseStream

from monitor.probing.transport.framing import MAX_HEAD_BYTES
from monitor.probing.transport.peer import PEER, VIA_PROXY, format_peer


class HeadCappedAiohttpTransport(AiohttpTransport):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._proxied_cache: dict[tuple[str, str], bool] = {}

    def get_client(self) -> aiohttp.ClientSession:
        # As httpx-aiohttp builds it (its ssl_context carries verify and any client
        # certificate), plus the line and field limits and the proxy variables.
        connector = aiohttp.TCPConnector(
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
            limit=self.limits.max_connections or 0,
        )
        return aiohttp.ClientSession(
            connector=connector,
            max_line_size=MAX_HEAD_BYTES,
            max_field_size=MAX_HEAD_BYTES,
            trust_env=True,  # HTTP_PROXY, HTTPS_PROXY, NO_PROXY, as the other transports
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        # The address that answered, as the other transports name it.
        stream = response.stream
        if isinstance(stream, AiohttpResponseStream):
            # Its protocol, not its connection: a body that arrived whole has already
            # released the connection.
            protocol = stream._aiohttp_response._protocol
            transport = protocol.transport if protocol is not None else None
            peername = transport.get_extra_info("peername") if transport is not None else None
            if peername:
                response.extensions[PEER] = format_peer(str(peername[0]), int(peername[1]))
                response.extensions[VIA_PROXY] = self._proxied(request.url)
        return response

    def _proxied(self, url: httpx.URL) -> bool:
        """Whether aiohttp sends this URL through a proxy: the target's, or one of the
        environment (trust_env), as urllib reads them; once per scheme and host."""
        if self.proxy is not None:
            return True
        cache = self._proxied_cache
        key = (url.scheme, url.host)
        if key not in cache:
            proxies = urllib.request.getproxies_environment()
            cache[key] = url.scheme in proxies and not urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
                url.host, proxies
            )
        return cache[key]
