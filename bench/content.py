"""CPU per recommendations probe with content judgement on against off: the response judged
(JSON parsed, items counted; on: a tenant-pattern condition over every item, a JSON Schema,
item ids taken) and the result observed by the alert hub (the detector; on: the cross-tenant
judgement of fallback lists, foreign items, disjoint catalogues). Network and transport are
the same either way and left out, so the ratio is of the part that differs.

    .venv/bin/python bench/content.py            # 1,000 and 10,000 tenants, 5 runs each
    .venv/bin/python bench/content.py 1000       # one fleet size

Steady state: every tenant has answered for a full 15-minute window before timing starts
(detector windows full, every tenant's list known to the cross-tenant state); then one round
of every tenant is timed, each answer a different product's list (a rotating capture).
Prints the median CPU per probe of 5 rounds: off (items only, expect.fallback: false), on (two
conditions, one of them the tenant pattern, a JSON Schema, fallback fingerprints: what the
README's example configures) and on with expect.items_disjoint_across_tenants.
"""

from __future__ import annotations

import json
import statistics
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry  # noqa: E402

from monitor.alerting.hub import AlertHub  # noqa: E402
from monitor.config.loader import load_config_text  # noqa: E402
from monitor.core.clock import ManualClock  # noqa: E402
from monitor.core.results import ProbeResult  # noqa: E402
from monitor.probing.checks import RenderedRequest, compile_checks  # noqa: E402
from monitor.probing.http import asked, judge_response  # noqa: E402
from monitor.telemetry.metrics import Metrics  # noqa: E402

INTERVAL = 60.0
WARMUP_ROUNDS = 15
RUNS = 5

BASE = """
defaults: {interval: 60s, timeout: 5s}
targets: {api: {base_url: "http://api.test"}}
tenants: {static: [t], default_vars: {product: p}}
checks:
  recommendations:
    target: api
    request: {path: "/v1/{tenant}/recommendations", params: {product: "{product}"}}
    expect:
      items: "$.recommendations"
"""
OFF = BASE + "      fallback: false\n"
ON = BASE + textwrap.indent(
    """\
conditions:
  - name: item-ids-belong-to-tenant
    path: "$.recommendations[*].id"
    op: matches
    value: "^{tenant}-p"
  - {name: tenant-echoed, path: "$.tenant", op: "==", value: "{tenant}"}
schema:
  type: object
  required: [recommendations]
  properties:
    recommendations:
      type: array
      items:
        type: object
        required: [id, score]
        properties: {id: {type: string}, score: {type: number}}
""",
    "      ",
)


# The catalogue-disjointness judgement (opt-in) on top: who got each item, per item.
DISJOINT = ON + "      items_disjoint_across_tenants: true\n"


def body(tenant: str, product: int) -> bytes:
    items = [
        {"id": f"{tenant}-p{(product + k + 1) % 20 + 1:02d}", "score": round(0.9 - k / 20, 3)}
        for k in range(5)
    ]
    return json.dumps(
        {"tenant": tenant, "product": f"{tenant}-p{product:02d}", "recommendations": items}
    ).encode()


def measure(config_text: str, tenants: int) -> float:
    """Median CPU seconds per probe of RUNS timed rounds."""
    config = load_config_text(config_text, source="<bench>").config
    checks = compile_checks(config)
    check = checks["recommendations"]
    clock = ManualClock(start=1_760_000_000.0)
    hub = AlertHub(
        config.alerts,
        checks,
        metrics=Metrics(CollectorRegistry()),
        clock=clock,
        route=lambda decision: None,
    )
    names = [f"tenant-{i:05d}" for i in range(tenants)]
    hub.set_tenants(names, ())
    step = INTERVAL / tenants

    def answers(n: int) -> list[tuple[str, dict[str, str], bytes, RenderedRequest]]:
        """One round's answers, built before timing: what recmon receives, not its work."""
        product = n % 10
        out = []
        for tenant in names:
            values = {"tenant": tenant, "product": f"{tenant}-p{product:02d}"}
            request = check.render(values)
            out.append((tenant, values, body(tenant, product), request))
        return out

    def round_(received: list[tuple[str, dict[str, str], bytes, RenderedRequest]]) -> None:
        for tenant, values, raw, request in received:
            shown = judge_response(check, 200, "application/json", raw, 0.05, values=values)
            result = ProbeResult(
                tenant,
                check.name,
                shown.outcome,
                0.05,
                clock.time(),
                status=200,
                items=shown.items,
                reason=shown.reason,
                condition=shown.condition,
                item_ids=shown.item_ids,
                asked=asked(request) if shown.item_ids else "",
            )
            hub.observe(result)
            clock.advance(step)

    for n in range(WARMUP_ROUNDS):
        round_(answers(n))
    samples = []
    for n in range(WARMUP_ROUNDS, WARMUP_ROUNDS + RUNS):
        received = answers(n)
        started = time.process_time()
        round_(received)
        samples.append((time.process_time() - started) / tenants)
    assert hub.firing == 0, "a healthy fleet must not fire"
    return statistics.median(samples)


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or [1_000, 10_000]
    for tenants in sizes:
        off = measure(OFF, tenants)
        on = measure(ON, tenants)
        disjoint = measure(DISJOINT, tenants)
        print(
            f"{tenants:>6} tenants: off {off * 1e6:6.1f} us/probe, on {on * 1e6:6.1f} us/probe "
            f"(on/off {on / off:.2f}, +{(on - off) * 1e6:.1f} us), with disjoint catalogues "
            f"{disjoint * 1e6:6.1f} us/probe (+{(disjoint - off) * 1e6:.1f} us)"
        )


if __name__ == "__main__":
    main()
