"""Bytes the engine's request path keeps a series: a fleet's tenants x its two checks, prepared
as the engine prepares them (rendered, then kept), measured with tracemalloc in-process.

    .venv/bin/python bench/request_memory.py               # 10,000 tenants x 2 checks
    .venv/bin/python bench/request_memory.py --tenants 3000

Run it from two trees (main's and a branch's) to compare: it drives whatever the tree's engine
keeps (Engine._request, or before it Engine._render with http.prepared).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from monitor.config.loader import load_config_text  # noqa: E402
from monitor.core.clock import SystemClock  # noqa: E402
from monitor.probing import http  # noqa: E402
from monitor.probing.checks import compile_checks  # noqa: E402
from monitor.probing.engine import Engine  # noqa: E402
from monitor.telemetry.metrics import Metrics  # noqa: E402

# bench/run.py's fleet checks.
CONFIG = """
defaults: {interval: 60s, timeout: 5s}
targets:
  sandbox: {base_url: "http://127.0.0.1:8123", max_connections: 1000}
tenants:
  static: [a]
  default_vars: {query: shoes}
checks:
  search:
    target: sandbox
    request: {path: "/v1/{tenant}/search", params: {q: "{query}"}}
    expect: {items: "$.results"}
  recommendations:
    target: sandbox
    request: {path: "/v1/{tenant}/recommendations", params: {product: "{tenant}-p01"}}
    expect: {items: "$.recommendations"}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    args = parser.parse_args()
    checks = compile_checks(load_config_text(CONFIG).config)
    client = httpx.AsyncClient(base_url="http://127.0.0.1:8123")
    engine = Engine(
        checks,
        {"sandbox": client},
        clock=SystemClock(),
        metrics=Metrics(CollectorRegistry()),
        sink=lambda result: None,
        tenant_vars=lambda tenant: {"query": "shoes"},
    )

    def request(tenant: str, name: str) -> object:
        values = {"query": "shoes", "tenant": tenant}
        if hasattr(engine, "_request"):
            return engine._request(checks[name], values)
        return http.prepared(client, engine._render(checks[name], values))  # type: ignore[attr-defined]

    for name in checks:
        request("warm-up", name)  # the shared parts (headers, the target's URL) made once
    tenants = [f"tenant-{i:05d}" for i in range(args.tenants)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for tenant in tenants:
        for name in checks:
            request(tenant, name)
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    series = len(tenants) * len(checks)
    print(f"{kept / series:.0f} bytes a series, {kept / 2**20:.1f} MB at {series} series")


if __name__ == "__main__":
    main()
