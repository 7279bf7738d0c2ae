"""The status page at 10,000 tenants: page weight, server render time, and time to first
render in a real headless Chromium.

    .venv/bin/python bench/status_page.py                 # 10,000 tenants, 5 loads
    .venv/bin/python bench/status_page.py --tenants 40000

A monitor on a manual clock is fed 8 rounds of probe results for every tenant × check (1% of
tenants failing search, 5% with recommendations empty: a storm), then served by the same ASGI
app as `recmon run` on loopback. Measured: bytes of `/` (raw and gzip-compressed), of the
stylesheet and script, and of one in-place refresh (`/ui/live`); server time to build
`/`, `/ui/live` and `/status` (median of 20); and in Chromium, with a fresh profile, the
first contentful paint and DOMContentLoaded of `/` (median of the loads).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.app.assembly import build_monitor  # noqa: E402
from monitor.app.httpapi import MonitorApi  # noqa: E402
from monitor.app.service import Monitor  # noqa: E402
from monitor.app.status import model, page  # noqa: E402
from monitor.app.status.collect import StatusSource, snapshot  # noqa: E402
from monitor.app.status.model import ReloadRecord  # noqa: E402
from monitor.config.loader import load_config_text  # noqa: E402
from monitor.core.clock import ManualClock  # noqa: E402
from monitor.core.results import Outcome, ProbeResult  # noqa: E402
from monitor.telemetry.asgiserve import serve_asgi  # noqa: E402

CONFIG = """
defaults: {{interval: 60s, timeout: 2s}}
targets:
  api: {{base_url: "http://127.0.0.1:9"}}
tenants:
  static: [{tenants}]
  default_vars: {{query: shoes}}
alerts:
  storm: {{group_wait: 1s}}
checks:
  search:
    target: api
    request: {{path: "/v1/{{tenant}}/search", params: {{q: "{{query}}"}}}}
    expect: {{items: "$.results", min_items: 1}}
    capture: {{product: "$.results[0].id"}}
  recommendations:
    target: api
    after: search
    request: {{path: "/v1/{{tenant}}/recommendations", params: {{product: "{{product}}"}}}}
    expect: {{items: "$.recommendations", min_items: 1}}
"""
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


async def build(tenants: int) -> Monitor:
    names = [f"tenant-{i:05d}" for i in range(tenants)]
    clock = ManualClock()
    loaded = load_config_text(CONFIG.format(tenants=", ".join(names)), source="<bench>")
    monitor = build_monitor(loaded, clock=clock, registry=CollectorRegistry())
    await monitor.refresh_tenants()
    for round_ in range(8):
        clock.advance(60)
        for i, tenant in enumerate(names):
            failing = i % 100 == 7
            empty = i % 20 == 3
            for check in ("search", "recommendations"):
                outcome = Outcome.OK
                if check == "search" and failing:
                    outcome = Outcome.HTTP_ERROR
                elif check == "recommendations" and empty:
                    outcome = Outcome.EMPTY
                latency = 0.04 + 0.02 * (check == "recommendations") + 0.001 * (i % 7 + round_)
                monitor.observe(
                    ProbeResult(
                        tenant,
                        check,
                        outcome,
                        latency,
                        clock.time(),
                        502 if outcome is Outcome.HTTP_ERROR else 200,
                        0 if outcome is Outcome.EMPTY else 10,
                    )
                )
        monitor.hub.tick()
    return monitor


def median_ms(call: object, repeat: int = 20) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def chromium_loads(url: str, loads: int) -> list[tuple[float | None, float, float]]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    results = []
    for _ in range(loads):
        with tempfile.TemporaryDirectory(prefix="recmon-bench-") as profile:
            options = webdriver.ChromeOptions()
            options.binary_location = shutil.which("chromium") or "chromium"
            for flag in FLAGS:
                options.add_argument(flag)
            options.add_argument(f"--user-data-dir={profile}")
            options.add_argument("--window-size=1280,1000")
            driver = webdriver.Chrome(
                options=options, service=Service(shutil.which("chromedriver") or "chromedriver")
            )
            try:
                driver.get(url)
                # After two frames the first paint has happened and is in the timeline.
                fcp, dcl, frame = driver.execute_async_script(
                    "const done = arguments[0];"
                    "requestAnimationFrame(() => requestAnimationFrame(() => {"
                    " const p = performance.getEntriesByName('first-contentful-paint')[0];"
                    " const n = performance.getEntriesByType('navigation')[0];"
                    " done([p ? p.startTime : null, n.domContentLoadedEventEnd,"
                    " performance.now()]); }));"
                )
                results.append((fcp, dcl, frame))
            finally:
                driver.quit()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("recmon").setLevel(logging.ERROR)  # the storm's alert lines

    started = time.perf_counter()
    monitor = await build(args.tenants)
    took = time.perf_counter() - started
    print(f"fed {args.tenants:,} tenants × 2 checks × 8 rounds in {took:.1f}s")
    source = StatusSource(monitor, None, None, "(bench)", monitor.clock.time(), "<bench>")
    reload = ReloadRecord(monitor.clock.time(), True, "<bench>")

    def snap() -> model.Snapshot:
        return snapshot(source, reload)

    api = MonitorApi(
        render_metrics=monitor.metrics.render,
        is_alive=lambda: True,
        readiness=lambda: (True, "ready\n"),
        snapshot=snap,
    )
    index = page.render_index(snap()).encode()
    live = json.dumps(page.render_live(snap())).encode()
    css = page.static_file("status.css") or b""
    js = page.static_file("status.js") or b""
    status = json.dumps(model.status_document(snap()), indent=2).encode()
    print(f"\npage weight at {args.tenants:,} tenants ({model.PAGE_ROWS} rows per page):")
    for name, body in (
        ("/ (HTML)", index),
        ("status.css", css),
        ("status.js", js),
        ("first load, total", index + css + js),
        ("/ui/live (each refresh)", live),
        ("/status (JSON)", status),
    ):
        packed = len(gzip.compress(body, compresslevel=1)) / 1024
        print(f"  {name:<26} {len(body) / 1024:8.1f} KiB   gzip {packed:7.1f} KiB")
    print("\nserver time (median of 20, one core of this machine):")
    timed = {
        "snapshot (on the event loop)": snap,
        "/ (in a worker thread)": lambda: page.render_index(snap()),
        "/ui/live": lambda: page.render_live(snap()),
        "/status": lambda: model.status_document(snap()),
        "/?q=failing": lambda: page.render_index(snap(), "failing"),
    }
    for name, call in timed.items():
        print(f"  {name:<30} {median_ms(call):7.1f} ms")

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        print("\nchromium / chromedriver not installed: no browser timings")
        return
    async with serve_asgi(api, "127.0.0.1", 0) as served:
        async with httpx.AsyncClient() as client:
            assert (await client.get(served.url + "/")).status_code == 200
        loads = await asyncio.to_thread(chromium_loads, served.url + "/", args.loads)
    fcps = [f for f, _, _ in loads if f is not None]
    dcls = [d for _, d, _ in loads]
    frames = [f for _, _, f in loads]
    recorded = len(fcps)
    print(f"\nChromium, fresh profile, {len(loads)} loads of / over loopback:")
    if not fcps:
        fcps = [float("nan")]
    print(
        f"  first contentful paint     median {statistics.median(fcps):6.0f} ms"
        f"  (min {min(fcps):.0f}, max {max(fcps):.0f})"
    )
    print(
        f"  DOMContentLoaded           median {statistics.median(dcls):6.0f} ms"
        f"  (min {min(dcls):.0f}, max {max(dcls):.0f})"
    )
    # Headless Chromium does not always record the paint entry: the second frame after the
    # document is complete bounds the first render from above, on every load.
    print(
        f"  first frames drawn by      median {statistics.median(frames):6.0f} ms"
        f"  (min {min(frames):.0f}, max {max(frames):.0f})"
    )
    print(f"  (first contentful paint recorded on {recorded} of {len(loads)} loads)")


if __name__ == "__main__":
    asyncio.run(main())
