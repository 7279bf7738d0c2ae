"""`recmon demo --locations`: three recmon instances at three locations, one real Prometheus
with the shipped cross-location rules and one real Alertmanager with the shipped routing, all
on loopback, and the pages they send as four faults come and go:

  one location's network fails        → a warning naming the location, no page
  one tenant's recommendations empty  → that tenant's page
  every tenant's recommendations empty → one platform page, naming tenants and locations
  a location stops reporting          → its own page

Needs Debian's `prometheus` and `prometheus-alertmanager` and a checkout of the repository
(the rules and routing live in deploy/). Time is scaled down the documented way: the rules are
generated with short windows by deploy/prometheus/locations.py, Alertmanager groups in 1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
import yaml

from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import SandboxSettings, serve_sandbox
from monitor.telemetry.asgiserve import serve_asgi

ROOT = Path(__file__).resolve().parents[2]
LOCATIONS = ("ap", "eu", "us")
# The location rules' options for 1 s probes (deploy/prometheus/locations.py --help).
FAST_RULES = {
    "window": "8s",
    "for_": "2s",
    "narrow_for": "5s",
    "stale_for": "4s",
    "lookback": "1h",
}


class DemoError(RuntimeError):
    pass


@dataclass
class Pager:
    """Alertmanager's webhook receiver: every notification with the time it arrived."""

    received: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    on_notification: Callable[[float, str, dict[str, Any]], None] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        at, notification = time.monotonic(), json.loads(body)
        self.received.append((at, scope["path"], notification))
        if self.on_notification is not None:
            self.on_notification(at, scope["path"], notification)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    def firing(self, since: float) -> list[tuple[float, str, dict[str, Any]]]:
        """(arrival, receiver path, alert) for every firing alert notified since `since`."""
        return [
            (at, path, alert)
            for at, path, body in self.received
            if at >= since
            for alert in body["alerts"]
            if alert["status"] == "firing"
        ]


def deploy_file(*parts: str) -> Path:
    path = ROOT.joinpath("deploy", *parts)
    if not path.exists():
        raise DemoError(f"{path} is missing: the locations demo runs from a recmon checkout")
    return path


def load_module(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DemoError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # a dataclass in it looks itself up there
    spec.loader.exec_module(module)
    return module


def scaled_rules(**options: str) -> str:
    """The shipped location rules, generated with short windows."""
    module = load_module("recmon_locations", deploy_file("prometheus", "locations.py"))
    return str(module.render(module.Params(**{**FAST_RULES, **options})))


def alertmanager_config(pager_url: str) -> str:
    """The shipped routing and inhibition; receivers pointed at `pager_url`/<receiver>, the
    group timers in seconds."""
    config = yaml.safe_load(deploy_file("alertmanager", "recmon-locations.yml").read_text())
    config["route"].update(group_wait="1s", group_interval="1s")
    for route in config["route"]["routes"]:
        route.pop("group_wait", None)
        route.pop("group_interval", None)
    for receiver in config["receivers"]:
        receiver["webhook_configs"] = [{"url": f"{pager_url}/{receiver['name']}"}]
    return yaml.safe_dump(config)


def recmon_config(sandbox_url: str, location: str, alertmanager: str) -> str:
    """One location's probes.yaml: tenant pages go through the cross-location rules."""
    return (
        f"location: {location}\n"
        + sandbox_config(sandbox_url, interval=1, timeout=1)
        + f"""
notify:
  tenant_pages: rules
  alertmanager: {{url: "{alertmanager}", resend_interval: 2s}}
state: {{path: {location}-state.db}}
alerts:
  storm: {{group_wait: 1s}}
  empty_results: {{window: 4s}}
  failures: {{window: 4s}}
"""
    )


def prometheus_config(rules: list[Path], alertmanager_port: int, recmon_ports: list[int]) -> str:
    return yaml.safe_dump(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(r) for r in rules],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}
                ]
            },
            "scrape_configs": [
                {
                    "job_name": "recmon",
                    "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in recmon_ports]}],
                }
            ],
        }
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def _process(
    args: list[str], log: Path, ready_url: str | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(*args, stdout=output, stderr=output)
        try:
            if ready_url is not None:
                await _until_ready(process, ready_url, log)
            yield process
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def _until_ready(process: asyncio.subprocess.Process, url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(timeout=1) as client:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise DemoError(f"{url} exited ({process.returncode}); its log: {log}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise DemoError(f"{url} not ready after 30 s (log: {log})")


async def demo(tenants: int, out: TextIO, within: float = 90.0) -> int:
    binaries = {name: shutil.which(name) for name in ("prometheus", "prometheus-alertmanager")}
    missing = [name for name, path in binaries.items() if path is None]
    if missing:
        raise DemoError(f"{' and '.join(missing)} not installed (Debian packages of those names)")
    started = time.monotonic()

    def show(at: float, receiver: str, notification: dict[str, Any]) -> None:
        kind = "PAGE  " if receiver.endswith("pager") else "TICKET"
        for alert in notification["alerts"]:
            if alert["status"] == "firing":
                summary = alert["annotations"].get("summary", alert["labels"]["alertname"])
                print(f"  {at - started:6.1f}s  {kind} {summary}", file=out, flush=True)

    pager = Pager(on_notification=show)
    with tempfile.TemporaryDirectory(prefix="recmon-locations-") as tmp:
        work = Path(tmp)
        (work / "recmon-locations.yml").write_text(scaled_rules())
        am_port, prom_port = free_port(), free_port()
        alertmanager = f"http://127.0.0.1:{am_port}"
        prometheus = f"http://127.0.0.1:{prom_port}"
        settings = SandboxSettings(
            tenants=tenants, latency_ms={"search": 5.0, "recommendations": 5.0}
        )
        async with (
            serve_sandbox(settings) as sandbox,
            serve_asgi(pager, "127.0.0.1", 0) as hook,
            contextlib.AsyncExitStack() as stack,
        ):
            (work / "am.yml").write_text(alertmanager_config(hook.url))
            await stack.enter_async_context(
                _process(
                    [
                        str(binaries["prometheus-alertmanager"]),
                        f"--config.file={work / 'am.yml'}",
                        f"--storage.path={work / 'am'}",
                        f"--web.listen-address=127.0.0.1:{am_port}",
                        "--cluster.listen-address=",
                    ],
                    work / "am.log",
                    f"{alertmanager}/-/ready",
                )
            )
            ports = {location: free_port() for location in LOCATIONS}
            recmons = {}
            for location, port in ports.items():
                config = work / f"{location}.yaml"
                config.write_text(recmon_config(sandbox.url, location, alertmanager))
                recmons[location] = await stack.enter_async_context(
                    _process(
                        [
                            *(sys.executable, "-m", "monitor", "run", "--config", str(config)),
                            *("--listen", f"127.0.0.1:{port}"),
                        ],
                        work / f"recmon-{location}.log",
                        f"http://127.0.0.1:{port}/readyz",
                    )
                )
            (work / "prometheus.yml").write_text(
                prometheus_config(
                    [work / "recmon-locations.yml", deploy_file("prometheus", "recmon-rules.yml")],
                    am_port,
                    list(ports.values()),
                )
            )
            await stack.enter_async_context(
                _process(
                    [
                        str(binaries["prometheus"]),
                        f"--config.file={work / 'prometheus.yml'}",
                        f"--storage.tsdb.path={work / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}",
                    ],
                    work / "prometheus.log",
                    f"{prometheus}/-/ready",
                )
            )

            async def query(expr: str) -> list[Any]:
                async with httpx.AsyncClient(timeout=5) as client:
                    answer = await client.get(f"{prometheus}/api/v1/query", params={"query": expr})
                return list(answer.json()["data"]["result"])

            async def until(condition: Callable[[], Any], what: str) -> None:
                deadline = time.monotonic() + within
                while time.monotonic() < deadline:
                    if await condition():
                        return
                    await asyncio.sleep(0.5)
                raise DemoError(f"timed out after {within:.0f} s waiting for {what}")

            async def reporting() -> bool:
                return len(await query("location:recmon_reporting")) == len(LOCATIONS)

            async def quiet() -> bool:
                return not await query('ALERTS{class!=""}')

            print(
                f"three recmon at {', '.join(LOCATIONS)} probe {tenants} tenants every second; "
                f"Prometheus {prometheus}, Alertmanager {alertmanager}",
                file=out,
                flush=True,
            )
            await until(reporting, "every location reporting")
            timings: list[tuple[str, float]] = []
            phases: list[tuple[str, str, Callable[[], Any]]] = [
                (
                    "eu's network fails: every request from eu answers 503",
                    "RecmonLocationProblem",
                    lambda: sandbox.faults.set("*", "*", Fault(status=503), location="eu"),
                ),
                (
                    "tenant-002's recommendations come back empty, from everywhere",
                    "RecmonTenantProblem",
                    lambda: sandbox.faults.set("tenant-002", "recommendations", Fault(empty=True)),
                ),
                (
                    "every tenant's recommendations come back empty, from everywhere",
                    "RecmonPlatformOutage",
                    lambda: sandbox.faults.set("*", "recommendations", Fault(empty=True)),
                ),
                (
                    "the recmon at ap dies",
                    "RecmonLocationNotReporting",
                    recmons["ap"].kill,
                ),
            ]
            for title, alertname, fault in phases:
                print(f"\n{title}", file=out, flush=True)
                since = time.monotonic()
                fault()

                async def paged(name: str = alertname, after: float = since) -> bool:
                    return any(a["labels"]["alertname"] == name for _, _, a in pager.firing(after))

                await until(paged, alertname)
                first = min(
                    at for at, _, a in pager.firing(since) if a["labels"]["alertname"] == alertname
                )
                timings.append((alertname, first - since))
                await asyncio.sleep(5)  # anything else it would send
                if alertname != "RecmonLocationNotReporting":
                    sandbox.faults.clear()
                    await until(quiet, "recovery")
            print("\nfault to first page or ticket:", file=out)
            for alertname, seconds in timings:
                print(f"  {alertname:28} {seconds:5.1f} s", file=out)
    return 0
