"""Per-tenant keys from a mounted Secret against the sandbox, which demands each tenant's own
key: every tenant probed with its key, a tenant whose key file goes skipped (never probed
without it), a key rotated on disk picked up by the running monitor."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.app.assembly import build_monitor
from monitor.app.service import Monitor
from monitor.config.loader import load_config_file
from monitor.core.clock import SystemClock
from monitor.core.results import Outcome
from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.server import Sandbox, SandboxSettings
from tests.helpers import FAST
from tests.secretdir import write_secret_dir

pytestmark = pytest.mark.integration
KEYS = {
    "tenant-001": "key-one-3b9f0c",
    "tenant-002": "key-two-81d2ae",
    "tenant-003": "key-three-5c7e11",
}


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(tenants=3, latency_ms=dict(FAST), tenant_keys=dict(KEYS))


@pytest.fixture(params=["asyncio", "httpx"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def keyed_config(sandbox: Sandbox, tmp_path: Path, transport: str, interval: float = 60) -> Path:
    text = sandbox_config(sandbox.url, interval=interval, timeout=1)
    text = text.replace(
        'request: {method: GET, path: "/v1/{tenant}/search", params: {q: "{query}"}}',
        'request: {method: GET, path: "/v1/{tenant}/search", params: {q: "{query}"},'
        ' headers: {X-Api-Key: "{api_key}"}}',
    ).replace(
        '      params: {product: "{product}"}',
        '      params: {product: "{product}"}\n      headers: {X-Api-Key: "{api_key}"}',
    )
    text = text.replace(
        "  default_vars: {query: shoes}",
        "  default_vars: {query: shoes}\n"
        "  credentials: {dir: keys, variable: api_key, refresh: 0.1s}",
    )
    config = tmp_path / "probes.yaml"
    config.write_text(text + f"\nengine: {{transport: {transport}}}\n")
    return config


def monitor_for(config: Path) -> Monitor:
    return build_monitor(
        load_config_file(config), clock=SystemClock(), registry=CollectorRegistry()
    )


async def test_every_tenant_is_probed_with_its_own_key_and_a_keyless_one_is_skipped(
    sandbox: Sandbox, tmp_path: Path, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    write_secret_dir(tmp_path / "keys", KEYS)
    monitor = monitor_for(keyed_config(sandbox, tmp_path, transport))
    try:
        results = await monitor.probe_round()
        assert {(r.tenant, r.check): r.outcome for r in results} == {
            (t, c): Outcome.OK for t in KEYS for c in ("search", "recommendations")
        }
        # The sandbox let each tenant in on its own key (a wrong one is refused).
        assert dict(sandbox.app.auth.accepted) == {t: 2 for t in KEYS}
        assert not sandbox.app.auth.refused

        write_secret_dir(tmp_path / "keys", {t: k for t, k in KEYS.items() if t != "tenant-003"})
        sandbox.app.auth.accepted.clear()
        with caplog.at_level(logging.WARNING, logger="recmon.engine"):
            results = await monitor.probe_round()
            results += await monitor.probe_round()
        assert {r.tenant for r in results} == {"tenant-001", "tenant-002"}
        skipped = monitor.registry.get_sample_value(
            "recmon_probes_skipped_total", {"check": "search", "reason": "missing_credential"}
        )
        assert skipped == 2.0  # once per round
        # Never probed anonymously: the sandbox heard nothing from it, not even a refusal.
        assert "tenant-003" not in sandbox.app.auth.accepted
        assert not sandbox.app.auth.refused
        said = [r for r in caplog.records if "no credential" in r.getMessage()]
        assert len(said) == 1 and said[0].fields["tenant"] == "tenant-003"  # type: ignore[attr-defined]
        assert monitor.skips[("tenant-003", "search")] == "no credential {api_key}"
    finally:
        await monitor.aclose()


async def test_a_key_rotated_on_disk_is_used_without_a_restart(
    sandbox: Sandbox, tmp_path: Path, transport: str
) -> None:
    write_secret_dir(tmp_path / "keys", KEYS)
    monitor = monitor_for(keyed_config(sandbox, tmp_path, transport, interval=0.3))
    seen: list[tuple[str, Outcome, str]] = []
    monitor.result_listeners.append(
        lambda r: (
            seen.append((r.tenant, r.outcome, r.credential)) if r.tenant == "tenant-001" else None
        )
    )
    stop = asyncio.Event()
    running = asyncio.create_task(monitor.run(stop))

    async def until(what: str, predicate: object) -> None:
        for _ in range(100):
            if callable(predicate) and predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; saw {seen[-5:]}")

    try:
        await until("a good probe", lambda: ("tenant-001", Outcome.OK, "") in seen)
        # The platform rotates the tenant's key; the mounted Secret still has the old one.
        sandbox.app.auth.update({"keys": {"tenant-001": "key-one-rotated-77"}})
        await until("the refusal", lambda: seen[-1] == ("tenant-001", Outcome.AUTH_ERROR, "tenant"))
        # The Secret is updated: the running monitor reads the new key and is let in again.
        write_secret_dir(tmp_path / "keys", {**KEYS, "tenant-001": "key-one-rotated-77"})
        await until("the new key in use", lambda: seen[-1] == ("tenant-001", Outcome.OK, ""))
        assert monitor.credentials is not None and monitor.credentials.reloads == 2
    finally:
        stop.set()
        await running
        await monitor.aclose()
