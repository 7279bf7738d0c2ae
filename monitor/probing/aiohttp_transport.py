"""`engine.transport: aiohttp`: httpx-aiohttp's transport, with recmon's one limit on the size of
a response head instead of aiohttp's 8,190 bytes per header line (a 10 KB header is fine on
every transport, a head over MAX_HEAD_BYTES is refused on every one: the prober checks the
total)."""

from __future__ import annotations

import aiohttp
from httpx_aiohttp import AiohttpTransport

from monitor.probing.transport.framing import MAX_HEAD_BYTES


class HeadCappedAiohttpTransport(AiohttpTransport):
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
