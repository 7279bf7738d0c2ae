"""One httpx.AsyncClient per target. Tests inject a transport (httpx.MockTransport) here."""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable

import httpx

from monitor import __version__
from monitor.config.model import Target

USER_AGENT = f"recmon/{__version__}"
# Honoured by httpx's own transport only; named in a warning, their values never logged
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
) -> httpx.AsyncClient:
    """A client whose pool is as large as the target allows, so probes never queue inside
    httpx (queuing time would be reported as the target's latency)."""
    limits = httpx.Limits(
        max_connections=target.max_connections,
        max_keepalive_connections=target.max_connections,
        keepalive_expiry=30.0,
    )
    verify = tls_verification(target)
    if transport is None and kind != "httpx":
        _warn_if_proxy_ignored(name, kind)
    if transport is None and kind == "asyncio":
        # Same httpx API, recmon's own lean HTTP/1.1 client underneath (monitor.probing.transport).
        from monitor.probing.transport.pool import AsyncioTransport

        transport = AsyncioTransport(verify=verify, limits=limits)
    elif transport is None and kind == "aiohttp":
        # Same httpx API, aiohttp underneath: several times less CPU per request (DESIGN.md).
        from monitor.probing.aiohttp_transport import HeadCappedAiohttpTransport

        transport = HeadCappedAiohttpTransport(verify=verify, limits=limits)
    return httpx.AsyncClient(
        base_url=target.base_url,
        headers={
            "user-agent": USER_AGENT,
            # Where the probe comes from, for the API's logs (and the sandbox's faults by
            # location); the target's own headers may override it.
            **({LOCATION_HEADER: location} if location else {}),
            **target.headers,
        },
        timeout=httpx.Timeout(timeout),
        limits=limits,
        verify=verify,
        transport=transport,
        follow_redirects=False,
    )


def _warn_if_proxy_ignored(target: str, kind: str) -> None:
    present = [v for v in PROXY_VARIABLES if os.environ.get(v)]
    if present:
        log.warning(
            "proxy settings in the environment are not used by this transport: probes go "
            "direct (set engine.transport: httpx to probe through the proxy)",
            extra={"fields": {"target": target, "transport": kind, "variables": present}},
        )


def mock_client_factory(transport: httpx.AsyncBaseTransport) -> ClientFactory:
    """A factory whose clients all answer through `transport` (for tests)."""

    def factory(name: str, target: Target, timeout: float) -> httpx.AsyncClient:
        return build_client(name, target, timeout, transport=transport)

    return factory
