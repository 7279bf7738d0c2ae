"""The demo's terminal table: `!` marks a tenant with a failing or skipped check, never one
that simply has not been probed yet."""

from __future__ import annotations

from monitor.app.report import tenant_table
from monitor.core.results import Outcome, ProbeResult


def result(tenant: str, check: str, outcome: Outcome) -> ProbeResult:
    return ProbeResult(tenant, check, outcome, 0.06, 0.0, 200, 0 if outcome is Outcome.EMPTY else 5)


def test_a_tenant_not_probed_yet_is_said_so_and_not_marked() -> None:
    checks = ["search", "recommendations"]
    latest = {
        ("acme", "search"): result("acme", "search", Outcome.OK),
        ("acme", "recommendations"): result("acme", "recommendations", Outcome.OK),
        ("globex", "search"): result("globex", "search", Outcome.OK),  # its second not yet
        ("initech", "search"): result("initech", "search", Outcome.OK),
        ("initech", "recommendations"): result("initech", "recommendations", Outcome.EMPTY),
    }
    skips = {("hooli", "recommendations"): "no {product}: search did not succeed"}
    latest[("hooli", "search")] = result("hooli", "search", Outcome.HTTP_ERROR)
    table = tenant_table(latest, ["acme", "globex", "initech", "hooli", "umbrella"], checks, skips)
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert not rows["acme"].endswith("!")
    assert "not probed yet" in rows["globex"] and not rows["globex"].endswith("!")
    assert rows["umbrella"].count("not probed yet") == 2 and not rows["umbrella"].endswith("!")
    assert rows["initech"].endswith("!") and "empty" in rows["initech"]
    assert rows["hooli"].endswith("!") and "skipped (no {product})" in rows["hooli"]
