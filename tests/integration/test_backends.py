"""Several backends behind one target: every probe names the address that answered it, probes
take the backends at random, and one failing backend shows as its own failures (in the results
and in recmon_backend_probes_total), never spread over the healthy ones."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.app.assembly import build_monitor
from monitor.config.loader import load_config_text
from monitor.core.clock import SystemClock
from monitor.core.results import Outcome, ProbeResult
from monitor.sandbox.demo import demo_alerts, sandbox_config
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import Sandbox, serve_backends
from monitor.telemetry.asgiserve import serve_asgi
from tests.fakes import RecordingEndpoint
from tests.integration.recmonproc import RecmonProcess

pytestmark = pytest.mark.integration

HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
INTERVAL = 1.0


@pytest.fixture
async def backends() -> AsyncIterator[list[Sandbox]]:
    async with serve_backends(HOSTS) as served:
        yield served


def config_text(
    url: str,
    *,
    transport: str = "asyncio",
    addresses: list[str] | None = None,
    interval: float = 60.0,
) -> str:
    text = sandbox_config(url, interval=interval, timeout=2)
    text += f"engine: {{transport: {transport}}}\n"
    if addresses:
        text = text.replace(
            "    rate_limit: 200/s\n", f"    rate_limit: 200/s\n    addresses: {addresses}\n"
        )
    return text


async def rounds(text: str, n: int) -> tuple[list[ProbeResult], CollectorRegistry]:
    registry = CollectorRegistry()
    monitor = build_monitor(
        load_config_text(text, source="<test>"), clock=SystemClock(), registry=registry
    )
    results: list[ProbeResult] = []
    try:
        for _ in range(n):
            results += await monitor.probe_round()
    finally:
        await monitor.aclose()
    return results, registry


async def test_one_failing_backend_of_three_is_named_and_only_it(backends: list[Sandbox]) -> None:
    port = backends[0].url.rsplit(":", 1)[1]
    backends[1].faults.set("*", "search", Fault(status=503))  # 127.0.0.3 only
    results, registry = await rounds(config_text(backends[0].url, addresses=HOSTS), 3)
    assert 55 <= len([r for r in results if r.check == "search"]) <= 60

    searches = [r for r in results if r.check == "search"]
    by_address = Counter(r.address for r in searches)
    assert set(by_address) == {f"{h}:{port}" for h in HOSTS}, by_address
    # At random, each about a third: none left out or answering most probes (binomial(60,
    # 1/3): below 5 or above 35 is beyond 4 sigma).
    assert min(by_address.values()) >= 5 and max(by_address.values()) <= 35, by_address
    failed = {r.address for r in searches if r.outcome is not Outcome.OK}
    assert failed == {f"127.0.0.3:{port}"}
    assert all(
        r.outcome is Outcome.HTTP_ERROR and r.status == 503
        for r in searches
        if r.address.startswith("127.0.0.3:")
    )
    assert all(r.target == "sandbox" and not r.via_proxy for r in results)

    def counted(address: str, outcome: str) -> float:
        value = registry.get_sample_value(
            "recmon_backend_probes_total",
            {"target": "sandbox", "address": f"{address}:{port}", "outcome": outcome},
        )
        return value or 0.0

    assert counted("127.0.0.3", "http_error") == by_address[f"127.0.0.3:{port}"]
    assert counted("127.0.0.2", "http_error") == counted("127.0.0.4", "http_error") == 0
    assert counted("127.0.0.2", "ok") > 0 and counted("127.0.0.4", "ok") > 0


async def test_a_refusing_backend_is_passed_over(backends: list[Sandbox]) -> None:
    """As any client does: a backend that refuses connections costs no probe (the certificate
    watch names it, tls_unreachable); the others answer."""
    port = int(backends[0].url.rsplit(":", 1)[1])
    with socket.socket() as probe:  # 127.0.0.5 listens on nothing at this port
        assert probe.connect_ex(("127.0.0.5", port)) != 0
    results, _ = await rounds(config_text(backends[0].url, addresses=[*HOSTS, "127.0.0.5"]), 2)
    assert {r.outcome for r in results} == {Outcome.OK}
    assert "127.0.0.5" not in {r.address.rsplit(":", 1)[0] for r in results}


@pytest.mark.parametrize("transport", ["httpx", "aiohttp", "asyncio"])
async def test_every_transport_names_the_peer(sandbox: Sandbox, transport: str) -> None:
    port = sandbox.url.rsplit(":", 1)[1]
    results, _ = await rounds(config_text(sandbox.url, transport=transport), 1)
    assert {r.address for r in results} == {f"127.0.0.1:{port}"}


async def test_a_refused_connection_names_the_address() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]  # bound, not listening: connections are refused
        text = config_text(f"http://127.0.0.1:{port}").replace(
            f'discover: {{url: "http://127.0.0.1:{port}/v1/tenants", items: "$.tenants[*].id", '
            "refresh: 10m}",
            "static: [acme]",
        )
        results, _ = await rounds(text, 1)
    (search,) = [r for r in results if r.check == "search"]
    assert search.outcome is Outcome.CONNECT_ERROR
    assert search.address == f"127.0.0.1:{port}"


def named(endpoint: RecordingEndpoint) -> list[dict[str, Any]]:
    """Triggers whose details name backend addresses, in arrival order."""
    return [
        r["body"]
        for r in endpoint.received
        if r["body"]
        and r["body"].get("event_action") == "trigger"
        and "backends" in r["body"]["payload"].get("custom_details", {})
    ]


async def test_the_page_names_the_failing_backend_and_only_it(
    backends: list[Sandbox], tmp_path: Path
) -> None:
    """Three backends behind one target, 127.0.0.3 failing every request: the first page
    (grouped: every tenant's searches fail a third of the time) names 127.0.0.3 and what it
    answered, and names 127.0.0.2 and .4 only as the healthy ones."""
    port = backends[0].url.rsplit(":", 1)[1]
    pagerduty = RecordingEndpoint(status=202)
    async with serve_asgi(pagerduty, "127.0.0.1", 0) as pd:
        config = tmp_path / "probes.yaml"
        config.write_text(
            config_text(backends[0].url, interval=INTERVAL, addresses=HOSTS)
            + demo_alerts(INTERVAL)
            + f"""
notify:
  pagerduty: {{routing_key: test-key, url: "{pd.url}/v2/enqueue"}}
  delivery: {{backoff_initial: 0.1s, backoff_max: 0.2s}}
state: {{path: "{tmp_path / "state.db"}"}}
"""
        )
        backends[1].faults.set("*", "search", Fault(status=503))
        recmon = RecmonProcess(config)
        await recmon.start()
        try:
            try:
                await recmon.wait_for(
                    lambda: bool(named(pagerduty)), "a page naming a backend", within=30 * INTERVAL
                )
            except AssertionError as failed:
                sent = [
                    f"{body.get('event_action')}: {body.get('payload', {}).get('summary')}"
                    for body in (r["body"] for r in pagerduty.received)
                    if body
                ]
                raise AssertionError(f"{failed}\npages sent:\n" + "\n".join(sent)) from None
        finally:
            await recmon.stop()
    # The first page that names backends (on a loaded machine an earlier page may be about
    # recmon's own lag, which names none), and every one that does names 127.0.0.3 only.
    page, *later = named(pagerduty)
    summary = page["payload"]["summary"]
    assert f"failures came from 127.0.0.3:{port} (http_error 503 " in summary, summary
    assert f"127.0.0.2:{port} and 127.0.0.4:{port} answered" in summary, summary
    for other in later:
        failing = other["payload"]["custom_details"]["backends"]["failing_addresses"]
        assert failing == [f"127.0.0.3:{port}"], other
    backends_detail = page["payload"]["custom_details"]["backends"]
    assert backends_detail["failing_addresses"] == [f"127.0.0.3:{port}"]
