"""Fixtures shared across the suite. A module that needs a different sandbox overrides
`sandbox_settings` (or only `sandbox_tenants`) with a fixture of the same name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from monitor.sandbox.server import Sandbox, SandboxSettings, serve_sandbox
from tests.helpers import FAST
from tests.tlsbackends import Backends
from tests.tlscerts import CertificateAuthority

# Hypothesis' per-example deadline (200 ms) and its too-slow health check are timings: on
# workers sharing the cores (tests/run.py) they failed tests that are about values, never time.
settings.register_profile("recmon", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("recmon")


@pytest.fixture
def sandbox_tenants() -> int:
    return 3


@pytest.fixture
def sandbox_settings(sandbox_tenants: int) -> SandboxSettings:
    return SandboxSettings(tenants=sandbox_tenants, latency_ms=dict(FAST))


@pytest.fixture
async def sandbox(sandbox_settings: SandboxSettings) -> AsyncIterator[Sandbox]:
    """The simulated service on a loopback port, answering in about 5 ms."""
    async with serve_sandbox(sandbox_settings) as served:
        yield served


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path)


@pytest.fixture
async def backends() -> AsyncIterator[Backends]:
    """Three TLS backends for one name, on 127.0.0.2-4 and one shared port."""
    b = Backends(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    yield b
    for address in list(b.servers):
        await b.stop(address)
