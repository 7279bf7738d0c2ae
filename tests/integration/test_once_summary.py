"""What `recmon once` prints against the real sandbox: alerts on their way in the first round,
a storm as the one grouped incident it is (not a line per tenant), skipped probes with why."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from monitor.app.once import OnceOptions, one_round
from monitor.config.loader import load_config_file
from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import Sandbox
from monitor.telemetry.asgiserve import serve_asgi
from tests.fakes import RecordingEndpoint

pytestmark = pytest.mark.integration
TENANTS = 12


@pytest.fixture
def sandbox_tenants() -> int:
    return TENANTS


async def once(config: Path) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = await one_round(load_config_file(config), OnceOptions(flush_within=1), out=out)
    return code, out.getvalue().splitlines()


async def test_a_storm_is_printed_as_one_grouped_incident_after_it_was_on_its_way(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(
        sandbox_config(sandbox.url, timeout=2) + "alerts:\n  empty_results: {window: 1s}\n"
    )
    sandbox.faults.set("*", "recommendations", Fault(empty=True))

    code, first = await once(config)
    assert code == 0
    assert "no alerts firing" in first
    assert "12 alert(s) on their way (they fire after enough probes in a row):" in first
    assert (
        "  empty_results on recommendations, 1 of 2 (12 tenants: tenant-001, tenant-002, "
        "tenant-003, tenant-004, tenant-005, +7 more)"
    ) in first

    code, second = await once(config)
    assert code == 1
    # The storm's grouped incident and, since every tenant fires, its fleet-wide one — and no
    # sink is configured, so neither was paged: they would have been.
    assert not [line for line in second if "incident(s) paged" in line]
    paged = second.index("2 incident(s) would page (no sink configured):")
    incidents = second[paged + 1 : paged + 3]
    assert incidents[0].startswith(
        "  critical  empty_results    grouped    recommendations returned no items for all 12"
    ), incidents
    assert incidents[1].startswith(
        "  critical  empty_results    fleet-wide recommendations returned no items for all 12"
    ), incidents
    assert "12 alert(s) firing:" in second
    assert "  empty_results on recommendations (12 tenants: tenant-001" in " ".join(second)
    # A storm over every tenant is a handful of lines, none wider than a terminal or cut
    # without saying so.
    assert len(second) < 15, "\n".join(second)
    for line in second:
        assert len(line) <= 160
    assert not [line for line in second if "for tenant-0" in line]  # no per-tenant lines


async def test_skipped_probes_come_with_their_reason(sandbox: Sandbox, tmp_path: Path) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(sandbox_config(sandbox.url, timeout=2))
    sandbox.faults.set("tenant-003", "search", Fault(status=502))
    code, lines = await once(config)
    assert code == 0
    assert "1 probe(s) skipped:" in lines
    assert (
        "  recommendations (tenant-003): no {product}: search did not succeed, so captured nothing"
    ) in lines
    assert "  search http_error (tenant-003): unexpected status 502" in lines


async def test_an_incident_paged_earlier_is_said_to_wait_for_good_probes_after_recovery(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """After the fault clears, the first round's probes are ok but the incident is still open
    (it resolves after good probes in a row): the output says it waits, not that it pages."""
    webhook = RecordingEndpoint(status=200)
    async with serve_asgi(webhook, "127.0.0.1", 0) as hook:
        config = tmp_path / "probes.yaml"
        config.write_text(
            sandbox_config(sandbox.url, timeout=2)
            + "alerts:\n  storm: {group_wait: 0.1s}\n  failures: {window: 1s}\n"
            + f'notify:\n  webhook: {{url: "{hook.url}/hook"}}\n'
        )
        sandbox.faults.set("tenant-002", "search", Fault(status=502))
        for _ in range(6):  # 3 failures in a row fire, then the group wait
            code, lines = await once(config)
            if "1 incident(s) paged:" in lines:
                break
        assert code == 1
        assert "1 incident(s) paged:" in lines, "\n".join(lines)
        incident = lines[lines.index("1 incident(s) paged:") + 1]
        assert incident.startswith("  critical  failures         single     search failing for")
        assert webhook.received  # paged for real: a sink is configured

        sandbox.faults.clear()
        code, lines = await once(config)
        text = "\n".join(lines)
        assert "all probes ok" in lines, text
        assert not [line for line in lines if "incident(s) paged:" in line], text
        assert (
            "1 incident(s) paged earlier, waiting to resolve: their probes are ok again; they "
            "resolve after enough good ones (in a row, and in the rule's window):"
        ) in lines, text
        # The next run comes after the failures left the rule's 1 s window, as CronJob runs
        # an interval apart do (back to back on an idle machine they did not).
        await asyncio.sleep(1.1)
        code, lines = await once(config)
        assert code == 0, "\n".join(lines)
        assert not [line for line in lines if "incident(s)" in line], "\n".join(lines)
