"""What `recmon once` prints against the real sandbox: alerts on their way in the first round,
a storm as the one grouped incident it is (not a line per tenant), skipped probes with why."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from monitor.app.once import OnceOptions, one_round
from monitor.config.loader import load_config_file
from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import Sandbox

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
    # The storm's grouped incident and, since every tenant fires, its fleet-wide one.
    paged = second.index("2 incident(s) paged:")
    incidents = second[paged + 1 : paged + 3]
    for incident in incidents:
        assert incident.startswith("  critical  empty_results    recommendations returned no")
    assert any("all 12 tenants" in incident for incident in incidents), incidents
    assert "12 alert(s) firing:" in second
    assert "  empty_results on recommendations (12 tenants: tenant-001" in " ".join(second)
    # A storm over every tenant is a handful of lines, none wider than a terminal or cut
    # without saying so.
    assert len(second) < 15, "\n".join(second)
    for line in second:
        assert len(line) <= 160
    assert not [line for line in second if "tenant tenant-0" in line]  # no per-tenant lines


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
