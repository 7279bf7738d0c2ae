"""Serving the sandbox: in-process for tests, the demo and the benchmark, or from the CLI."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from monitor.sandbox.app import SandboxApp, SandboxSettings
from monitor.sandbox.faults import FaultTable
from monitor.sandbox.stats import ServerStats
from monitor.sandbox.tlsfront import TlsFront, server_context
from monitor.telemetry.asgiserve import listen, serve_asgi

__all__ = ["Sandbox", "SandboxSettings", "serve_backends", "serve_sandbox"]


@dataclass
class Sandbox:
    url: str
    app: SandboxApp
    tls_front: TlsFront | None = None  # the mTLS listener, when client certificates are required

    @property
    def faults(self) -> FaultTable:
        return self.app.faults

    @property
    def stats(self) -> ServerStats:
        return self.app.stats

    @property
    def tenants(self) -> tuple[str, ...]:
        return self.app.catalog.tenants


@contextlib.asynccontextmanager
async def serve_sandbox(
    settings: SandboxSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    ssl_client_ca: str | None = None,
) -> AsyncIterator[Sandbox]:
    """Serve until the block ends; port 0 picks a free port (see `sandbox.url`). With
    `ssl_client_ca`, every TLS client must present a certificate that CA issued."""
    app = SandboxApp(settings or SandboxSettings())
    if ssl_client_ca is not None:
        if ssl_certfile is None or ssl_keyfile is None:
            raise ValueError("a client CA needs the server's certificate and key")
        # mTLS in front of the plain sandbox on a private port (see tlsfront for why).
        context = server_context(ssl_certfile, ssl_keyfile, ssl_client_ca)
        async with serve_asgi(app, "127.0.0.1", 0) as plain:
            front = TlsFront(context, ("127.0.0.1", plain.port), host, port)
            try:
                yield Sandbox(f"https://{host}:{front.port}", app, front)
            finally:
                await asyncio.to_thread(front.close)
        return
    async with serve_asgi(
        app, host, port, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile
    ) as served:
        yield Sandbox(served.url, app)


@contextlib.asynccontextmanager
async def serve_backends(
    hosts: Sequence[str],
    settings: SandboxSettings | None = None,
    *,
    port: int = 0,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> AsyncIterator[list[Sandbox]]:
    """Several backends of one service on one port, each on its own address (127.0.0.2,
    127.0.0.3, ...): the same catalog, but each its own faults and stats, as separate
    processes behind one name would be. A probe's target lists them as its `addresses`."""
    async with contextlib.AsyncExitStack() as stack:
        backends: list[Sandbox] = []
        for host in hosts:
            # The first binds the port (0: any free one); the others bind the same.
            sock = listen(host, port)
            port = sock.getsockname()[1]
            app = SandboxApp(settings or SandboxSettings())
            served = await stack.enter_async_context(
                serve_asgi(
                    app, host, port, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, sock=sock
                )
            )
            backends.append(Sandbox(served.url, app))
        yield backends
