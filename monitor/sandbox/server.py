"""Serving the sandbox: in-process for tests, the demo and the benchmark, or from the CLI."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from monitor.sandbox.app import SandboxApp, SandboxSettings
from monitor.sandbox.faults import FaultTable
from monitor.sandbox.stats import ServerStats
from monitor.telemetry.asgiserve import serve_asgi

__all__ = ["Sandbox", "SandboxSettings", "serve_sandbox"]


@dataclass
class Sandbox:
    url: str
    app: SandboxApp

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
) -> AsyncIterator[Sandbox]:
    """Serve until the block ends; port 0 picks a free port (see `sandbox.url`)."""
    app = SandboxApp(settings or SandboxSettings())
    async with serve_asgi(
        app, host, port, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile
    ) as served:
        yield Sandbox(served.url, app)
