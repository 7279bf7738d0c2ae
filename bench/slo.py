"""CPU per probe of the SLO watch (detect/slo.py), and the size and time of saving its windows.

    .venv/bin/python bench/slo.py            # about a minute

Virtual time, no I/O: 1,000 tenants probed every 60 s with 0.2% of probes failing at random,
three hours to warm up (the 1 h and 6 h rings rolling), then three hours measured; the median of
three runs, for a check with an SLO over the fleet only and with `per_tenant: true`. Then the
state file's share: 10,000 tenants with per-tenant SLOs, the snapshot taken on the event loop
and its JSON encoding (done in a worker thread), and the encoded size — in the last save
(shutdown, `recmon once`: every window) and in a periodic one (per-tenant alerts only).
"""

from __future__ import annotations

import json
import random
import statistics
import time

from monitor.config.model import SloRule, SloSpec
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.slo import SloWatch

INTERVAL = 60.0
START = 1_800_000_000.0


def watch(per_tenant: bool) -> SloWatch:
    spec = SloSpec(objective=0.995, per_tenant=per_tenant)
    return SloWatch(SloRule(), {"search": spec}, {"search": INTERVAL})


def run(per_tenant: bool, tenants: int = 1000, hours: float = 3.0) -> float:
    """Microseconds of CPU per probe over the measured hours."""
    rng = random.Random(1)
    slo = watch(per_tenant)
    names = [f"t{i:05}" for i in range(tenants)]
    rounds = int(hours * 3600 / INTERVAL)

    def probes(first_round: int) -> None:
        for r in range(first_round, first_round + rounds):
            for i, tenant in enumerate(names):
                now = START + r * INTERVAL + i * INTERVAL / tenants
                outcome = Outcome.HTTP_ERROR if rng.random() < 0.002 else Outcome.OK
                slo.observe(ProbeResult(tenant, "search", outcome, 0.05, now), now)

    probes(0)
    began = time.process_time()
    probes(rounds)
    return (time.process_time() - began) / (rounds * tenants) * 1e6


def save(tenants: int = 10_000, *, tenant_windows: bool) -> tuple[float, float, int]:
    slo = watch(True)
    for i in range(tenants):
        for r in range(120):  # two hours: the 1 h ring full, the others partly
            now = START + r * INTERVAL + i * 0.001
            outcome = Outcome.HTTP_ERROR if r == 7 else Outcome.OK
            slo.observe(ProbeResult(f"t{i:05}", "search", outcome, 0.05, now), now)
    began = time.process_time()
    snapshot = slo.snapshot(tenant_windows=tenant_windows)
    copied = time.process_time() - began
    began = time.process_time()
    text = json.dumps(snapshot.to_json(), separators=(",", ":"))
    encoded = time.process_time() - began
    return copied, encoded, len(text)


def main() -> None:
    for per_tenant in (False, True):
        runs = [run(per_tenant) for _ in range(3)]
        label = "fleet and per tenant" if per_tenant else "fleet only"
        print(
            f"{label}: {statistics.median(runs):.1f} us per probe (runs: "
            + ", ".join(f"{r:.1f}" for r in runs)
            + ")"
        )
    for tenant_windows, what in ((True, "last save"), (False, "periodic save")):
        copied, encoded, size = save(tenant_windows=tenant_windows)
        print(
            f"10,000 tenants per tenant, {what}: snapshot {copied * 1000:.0f} ms, "
            f"encoding {encoded * 1000:.0f} ms, {size / 1e6:.2f} MB"
        )


if __name__ == "__main__":
    main()
