"""Three recmon instances at three locations, one real Prometheus with the shipped rules, one
real Alertmanager with the shipped routing, and a webhook as the pager: every failure pattern
across tenants and locations ends in the one page (or warning) its class calls for, and the
queries of that class's runbook return data while it fires.

Time is scaled down by the documented mechanism: the location rules are generated with short
windows (deploy/prometheus/locations.py --window/--for/--narrow-for/--stale-for), scrapes
and evaluations run every second, and Alertmanager's group_wait/group_interval are 1 s;
routes, matchers and inhibition are the shipped ones. Time from fault to page per class is
printed (pytest -s).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from monitor.sandbox.faults import Fault
from monitor.sandbox.locations_demo import (
    Pager,
    alertmanager_config,
    load_module,
    prometheus_config,
    recmon_config,
    scaled_rules,
)
from monitor.sandbox.server import Sandbox, SandboxSettings, serve_sandbox
from monitor.telemetry.asgiserve import serve_asgi
from tests.binaries import free_port, require_binary, running
from tests.integration.recmonproc import RecmonProcess
from tests.integration.test_prometheus_dashboard import grafana_to_promql
from tests.localhttp import TLS
from tests.runbooks import without_data

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
LOCATIONS = ("ap", "eu", "us")
TENANTS = 6
WINDOW, FOR, NARROW_FOR, STALE_FOR = "8s", "2s", "5s", "4s"
WITHIN = 60.0  # no class may take longer than this to page
SETTLE = 6.0  # after a page, how long stragglers (a second page) are waited for
RECMON_DOWN_FOR = "2s"


def location_panels() -> dict[str, list[str]]:
    module = load_module("recmon_dashboard", ROOT / "deploy" / "grafana" / "generate.py")
    module.build()
    return {t: q for t, q in module.PANEL_QUERIES.items() if t in module.LOCATION_PANELS}


@dataclass
class Stack:
    sandbox: Sandbox
    pager: Pager
    prometheus: str
    recmons: dict[str, RecmonProcess]
    timings: dict[str, float] = field(default_factory=dict)

    async def query(self, expr: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=5, verify=TLS) as client:
            response = await client.get(f"{self.prometheus}/api/v1/query", params={"query": expr})
        body = response.json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    async def until(self, condition: Callable[[], Any], what: str, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.25)
        raise AssertionError(f"timed out after {within}s waiting for {what}")

    async def ready(self) -> None:
        """Every location reporting, and nothing paged on the way (the case starts clean)."""

        async def all_reporting() -> bool:
            return len(await self.query("location:recmon_reporting")) == len(LOCATIONS)

        await self.until(all_reporting, "three locations reporting", WITHIN)

    def done(self) -> None:
        """recmon's own pages (tenant_pages: rules) never reached Alertmanager's receivers;
        the time from fault to page, printed (pytest -s)."""
        assert all(labels.get("source") != "recmon" for _, _, labels in self.notifications(0.0))
        for name, seconds in self.timings.items():
            print(f"\ntime from fault to page: {name:28} {seconds:5.1f} s")

    async def page(self, alertname: str, since: float, **labels: str) -> dict[str, Any]:
        """Wait for the first notification of `alertname` (with `labels`), then SETTLE more
        seconds for anything else; returns that alert, records time from fault to page."""

        def found() -> list[tuple[float, str, dict[str, Any]]]:
            return [
                hit
                for hit in self.pager.firing(since)
                if hit[2]["labels"]["alertname"] == alertname
                and all(hit[2]["labels"].get(k) == v for k, v in labels.items())
            ]

        await self.until(found, f"{alertname} {labels}", WITHIN)
        at, _, alert = found()[0]
        self.timings[alertname] = at - since
        await asyncio.sleep(SETTLE)
        return alert

    def notifications(self, since: float) -> list[tuple[str, str, dict[str, str]]]:
        """(receiver, alertname, labels) of every firing alert notified since `since`. But
        RecmonOverloaded: a loaded machine (CI runs this beside other suites) may overload the
        three recmons, which is no location's cause (test_overload.py pages it)."""
        return [
            (path.lstrip("/"), alert["labels"]["alertname"], alert["labels"])
            for _, path, alert in self.pager.firing(since)
            if alert["labels"]["alertname"] != "RecmonOverloaded"
        ]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    prometheus_binary = require_binary("prometheus")
    alertmanager_binary = require_binary("prometheus-alertmanager")
    pager = Pager()
    rules = tmp_path / "recmon-locations.yml"
    rules.write_text(
        scaled_rules(window=WINDOW, for_=FOR, narrow_for=NARROW_FOR, stale_for=STALE_FOR)
    )
    am_port, prom_port = free_port(), free_port()
    alertmanager = f"http://127.0.0.1:{am_port}"
    prometheus = f"http://127.0.0.1:{prom_port}"
    settings = SandboxSettings(tenants=TENANTS, latency_ms={"search": 5.0, "recommendations": 5.0})
    async with serve_sandbox(settings) as sandbox, serve_asgi(pager, "127.0.0.1", 0) as hook:
        (tmp_path / "am.yml").write_text(alertmanager_config(hook.url))
        am_args = [
            alertmanager_binary,
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ]
        recmons = {}
        for location in LOCATIONS:
            config = tmp_path / f"{location}.yaml"
            config.write_text(recmon_config(sandbox.url, location, alertmanager))
            recmons[location] = RecmonProcess(config)
        # The shipped instance rules, RecmonDown's 5 m scaled like the location rules.
        instance_rules = yaml.safe_load(
            (ROOT / "deploy" / "prometheus" / "recmon-rules.yml").read_text()
        )
        for group in instance_rules["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == "RecmonDown":
                    rule["for"] = RECMON_DOWN_FOR
        (tmp_path / "recmon-rules.yml").write_text(yaml.safe_dump(instance_rules))
        (tmp_path / "prometheus.yml").write_text(
            prometheus_config(
                [rules, tmp_path / "recmon-rules.yml"],
                am_port,
                [r.port for r in recmons.values()],
            )
        )
        prom_args = [
            prometheus_binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ]
        with running(am_args, ready_url=f"{alertmanager}/-/ready", log=tmp_path / "am.log"):
            try:
                # recmons first: Prometheus scraping them while they start would see them down.
                await asyncio.gather(*(r.start() for r in recmons.values()))
                with running(
                    prom_args, ready_url=f"{prometheus}/-/ready", log=tmp_path / "prom.log"
                ):
                    yield Stack(sandbox, pager, prometheus, recmons)
            finally:
                for process in recmons.values():
                    if process.process is not None and process.process.returncode is None:
                        await process.stop()


# Each cause on its own stack (a test each, so they run in parallel: one after another on
# one stack they took 100 s and were the parallel phase's longest test).


async def test_three_healthy_locations_page_nothing_and_fill_the_locations_row(
    stack: Stack,
) -> None:
    await stack.ready()
    await asyncio.sleep(2)
    assert stack.notifications(0.0) == []  # healthy: nothing at all

    # The dashboard's Locations row has data: one OK-share cell per tenant × location.
    for title, exprs in location_panels().items():
        for expr in exprs:
            assert await stack.query(grafana_to_promql(expr)), title
    cells = await stack.query(
        grafana_to_promql(location_panels()["OK share, tenant × location"][0])
    )
    assert len(cells) == TENANTS * len(LOCATIONS)


async def test_one_locations_requests_all_failing_is_its_warning_alone(stack: Stack) -> None:
    """Only the location warning, to the tickets."""
    await stack.ready()
    since = time.monotonic()
    stack.sandbox.faults.set("*", "*", Fault(status=503), location="eu")
    alert = await stack.page("RecmonLocationProblem", since, location="eu")
    assert "from location eu only" in alert["annotations"]["summary"]
    sent = stack.notifications(since)
    assert {(receiver, name) for receiver, name, _ in sent} == {
        ("recmon-tickets", "RecmonLocationProblem")
    }
    assert {labels["location"] for _, _, labels in sent} == {"eu"}
    assert await without_data(stack.query, "location-problem.md", {"location": "eu"}) == []
    stack.done()


async def test_one_tenant_empty_from_every_location_is_its_page_alone(stack: Stack) -> None:
    await stack.ready()
    since = time.monotonic()
    stack.sandbox.faults.set("tenant-002", "recommendations", Fault(empty=True))
    alert = await stack.page("RecmonTenantProblem", since, tenant="tenant-002")
    assert alert["annotations"]["summary"] == (
        "recommendations empty for tenant-002 from 3 of 3 locations"
    )
    assert {(r, n, labels.get("tenant")) for r, n, labels in stack.notifications(since)} == {
        ("recmon-pager", "RecmonTenantProblem", "tenant-002")
    }
    assert await without_data(stack.query, "tenant-problem.md", {"tenant": "tenant-002"}) == []
    stack.done()


async def test_every_tenant_empty_from_every_location_is_one_platform_page(
    stack: Stack,
) -> None:
    """Exactly one platform page naming all the tenants and all three locations; no tenant
    page, no location warning."""
    await stack.ready()
    since = time.monotonic()
    stack.sandbox.faults.set("*", "recommendations", Fault(empty=True))
    alert = await stack.page("RecmonPlatformOutage", since)
    sent = stack.notifications(since)
    assert [(r, n) for r, n, _ in sent] == [("recmon-pager", "RecmonPlatformOutage")]
    annotations = alert["annotations"]
    assert annotations["summary"] == (
        f"recommendations empty for all {TENANTS} tenants from 3 of 3 locations"
    )
    tenants = ", ".join(f"tenant-{i:03d}" for i in range(1, TENANTS + 1))
    assert "as seen from each of ap, eu, us." in annotations["description"]
    assert f"failing from at least 2 locations: {tenants}." in annotations["description"]
    assert await without_data(stack.query, "platform-outage.md", {}) == []
    stack.done()


async def test_a_dead_recmon_is_recmon_down_alone(stack: Stack) -> None:
    """recmon at ap dies, and Prometheus, which scrapes it, says so (`up` 0): one page,
    RecmonDown naming the location; "location ap not reporting" is the same cause and stays
    quiet (when a location's series stop with no `up` to explain them, it pages: promtool
    tests). The two left, healthy, page nothing else."""
    await stack.ready()
    since = time.monotonic()
    await stack.recmons["ap"].stop(signal.SIGKILL)
    await stack.page("RecmonDown", since, location="ap")

    async def ap_silent() -> bool:  # what RecmonLocationNotReporting would fire on
        return bool(
            await stack.query(
                'location:recmon_known{location="ap"} unless location:recmon_reporting'
            )
        )

    await stack.until(ap_silent, "location ap to stop reporting", WITHIN)
    assert await without_data(stack.query, "location-not-reporting.md", {}) == []
    await asyncio.sleep(float(STALE_FOR.removesuffix("s")) + SETTLE)
    assert [(r, n) for r, n, _ in stack.notifications(since)] == [("recmon-pager", "RecmonDown")]
    stack.done()


async def test_the_shipped_inhibition_keeps_what_a_platform_outage_explains_off_the_pager(
    tmp_path: Path,
) -> None:
    """The second barrier on its own: alerts posted straight to Alertmanager, as if the rules'
    own `unless` had let a tenant page and a location warning through beside an outage."""
    binary = require_binary("prometheus-alertmanager")
    pager = Pager()
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def alert(name: str, kind: str, **labels: str) -> dict[str, Any]:
        labels = {"alertname": name, "class": kind, **labels}
        return {"labels": labels, "annotations": {"summary": name}}

    outage, tenant, location = (
        "RecmonPlatformOutage",
        "RecmonTenantProblem",
        "RecmonLocationProblem",
    )
    platform = alert(outage, "platform", check="recommendations", symptom="empty")
    explained = [
        alert(tenant, "tenant", tenant="acme", check="recommendations", symptom="empty"),
        alert(location, "location", location="eu", check="recommendations"),
    ]
    unexplained = [
        alert(tenant, "tenant", tenant="acme", check="search", symptom="failing"),
        alert(location, "location", location="eu", check="search"),
    ]
    async with serve_asgi(pager, "127.0.0.1", 0) as hook:
        (tmp_path / "am.yml").write_text(alertmanager_config(hook.url))
        args = [
            binary,
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ]
        with running(args, ready_url=f"{url}/-/ready", log=tmp_path / "am.log"):
            async with httpx.AsyncClient(timeout=5) as client:
                posted = await client.post(f"{url}/api/v2/alerts", json=[platform])
                assert posted.status_code == 200
                await asyncio.sleep(0.5)  # the outage is known before what it explains
                posted = await client.post(f"{url}/api/v2/alerts", json=explained + unexplained)
                assert posted.status_code == 200

            def sent() -> set[tuple[str, str, str]]:
                return {
                    (path.lstrip("/"), a["labels"]["alertname"], a["labels"]["check"])
                    for _, path, a in pager.firing(0.0)
                }

            expected = {
                ("recmon-pager", "RecmonPlatformOutage", "recommendations"),
                ("recmon-pager", "RecmonTenantProblem", "search"),
                ("recmon-tickets", "RecmonLocationProblem", "search"),
            }
            for _ in range(120):
                if sent() == expected:
                    break
                await asyncio.sleep(0.25)
            await asyncio.sleep(3)  # group_interval 1 s: anything inhibited would be out by now
    assert sent() == expected
