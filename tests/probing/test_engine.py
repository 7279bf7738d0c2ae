"""The engine with a mock transport: chains, captures, skips, bounds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client import CollectorRegistry

from monitor.config.units import Rate
from monitor.core.clock import Clock, ManualClock, SystemClock
from monitor.core.results import Outcome, ProbeResult
from monitor.probing.engine import Engine, Job
from monitor.probing.throttle import HostThrottle
from monitor.telemetry.metrics import Metrics
from tests.helpers import BASE_CONFIG, checks


def make_engine(
    handler: httpx.AsyncBaseTransport | None = None,
    *,
    text: str = BASE_CONFIG,
    tenant_vars: Mapping[str, Mapping[str, str]] | None = None,
    max_in_flight: int = 10,
    target_connections: Mapping[str, int] | None = None,
    clock: Clock | None = None,
    throttles: Mapping[str, HostThrottle] | None = None,
    flight_sink: Callable[[int], None] | None = None,
) -> tuple[Engine, list[ProbeResult], Metrics]:
    collected: list[ProbeResult] = []
    metrics = Metrics(CollectorRegistry())
    client = httpx.AsyncClient(
        base_url="http://api.test", transport=handler or httpx.MockTransport(catalog)
    )
    engine = Engine(
        checks(text),
        {"api": client},
        clock=clock or SystemClock(),
        metrics=metrics,
        sink=collected.append,
        tenant_vars=lambda tenant: (tenant_vars or {}).get(tenant, {"query": "shoes"}),
        max_in_flight=max_in_flight,
        target_connections=target_connections,
        throttles=throttles,
        flight_sink=flight_sink,
    )
    return engine, collected, metrics


def catalog(request: httpx.Request) -> httpx.Response:
    """Search returns products p1, p2; recommendations exist only for p1."""
    if request.url.path.endswith("/search"):
        return httpx.Response(200, json={"results": [{"id": "p1"}, {"id": "p2"}]})
    product = request.url.params.get("product")
    return httpx.Response(200, json={"recommendations": [{"id": "x"}] if product == "p1" else []})


async def test_dependent_check_uses_the_product_search_returned() -> None:
    engine, results, _ = make_engine()
    await engine.run_job(Job("acme", "search"))
    assert [(r.check, r.outcome) for r in results] == [
        ("search", Outcome.OK),
        ("recommendations", Outcome.OK),
    ]


async def test_captured_value_overrides_a_stale_configured_one() -> None:
    engine, results, _ = make_engine(
        tenant_vars={"acme": {"query": "shoes", "product": "delisted"}}
    )
    await engine.run_job(Job("acme", "search"))
    assert results[1].outcome is Outcome.OK


async def test_configured_value_is_the_fallback_when_search_fails() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/search"):
            return httpx.Response(503)
        seen.append(request.url.params["product"])
        return httpx.Response(200, json={"recommendations": [1]})

    engine, results, _ = make_engine(
        httpx.MockTransport(handler), tenant_vars={"acme": {"query": "q", "product": "p9"}}
    )
    await engine.run_job(Job("acme", "search"))
    assert [r.outcome for r in results] == [Outcome.HTTP_ERROR, Outcome.OK]
    assert seen == ["p9"]


async def test_without_a_product_the_dependent_probe_is_skipped_not_failed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"results": []})

    engine, results, metrics = make_engine(httpx.MockTransport(handler))
    await engine.run_job(Job("acme", "search"))
    assert [(r.check, r.outcome) for r in results] == [("search", Outcome.EMPTY)]
    assert (
        metrics.registry.get_sample_value(
            "recmon_probes_skipped_total",
            {"check": "recommendations", "reason": "missing_variable"},
        )
        == 1
    )


async def test_a_tenant_without_its_configured_variable_is_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """{query} comes from configuration, not from a capture: a (discovered) tenant without it
    is never probed by search, and the log says so once, not every interval."""
    engine, results, _ = make_engine(tenant_vars={"acme": {"query": "q"}, "new": {}})
    with caplog.at_level(logging.DEBUG, logger="recmon.engine"):
        for _ in range(3):
            await engine.run_job(Job("new", "search"))
    assert results == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].fields == {  # type: ignore[attr-defined]
        "tenant": "new",
        "check": "search",
        "variable": "query",
    }


async def test_round_probes_every_tenant_and_check_once() -> None:
    engine, results, _ = make_engine()
    tenants = [f"t{i}" for i in range(30)]
    await engine.run_round(tenants)
    assert sorted((r.tenant, r.check) for r in results) == sorted(
        (t, c) for t in tenants for c in ("search", "recommendations")
    )


async def test_in_flight_probes_stay_within_the_target_bound() -> None:
    in_flight = peak = 0

    class Slow(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            return catalog(request)

    engine, results, _ = make_engine(Slow(), max_in_flight=50, target_connections={"api": 4})
    await engine.run_round([f"t{i}" for i in range(20)])
    assert len(results) == 40
    assert peak == 4


async def test_the_loop_lag_monitor_is_told_of_each_probe_in_flight_and_its_end() -> None:
    """+1 before a probe's request goes out (not while it waits for a slot), -1 once its
    result is had, whatever it is: what the loop-lag monitor ticks fast for."""
    in_flight = peak = 0
    at_requests: list[int] = []

    def flight(delta: int) -> None:
        nonlocal in_flight, peak
        in_flight += delta
        peak = max(peak, in_flight)

    class Slow(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            at_requests.append(in_flight)
            await asyncio.sleep(0.01)
            if request.url.path.startswith("/v1/t1/"):
                raise httpx.ReadTimeout("timed out", request=request)
            return catalog(request)

    engine, results, _ = make_engine(
        Slow(), max_in_flight=50, target_connections={"api": 3}, flight_sink=flight
    )
    await engine.run_round([f"t{i}" for i in range(6)])
    assert len(at_requests) == 11  # t1's search timed out: its recommendations never ran
    assert min(at_requests) >= 1 and peak == 3  # each request counted, slot waits not
    assert in_flight == 0  # every probe's end told, the timeout's too
    assert Outcome.TIMEOUT in {r.outcome for r in results}


async def test_a_bug_inside_a_probe_is_counted_and_the_round_goes_on() -> None:
    engine, results, metrics = make_engine()

    def broken_sink(result: ProbeResult) -> None:
        if result.tenant == "t1":
            raise RuntimeError("boom")
        results.append(result)

    engine.sink = broken_sink
    await engine.run_round(["t0", "t1", "t2"])
    assert {r.tenant for r in results} == {"t0", "t2"}
    assert (
        metrics.registry.get_sample_value("recmon_internal_errors_total", {"component": "engine"})
        == 1
    )


SEARCH_ONLY = BASE_CONFIG.split("  recommendations:")[0].replace(
    '    capture: {product: "$.results[0].id"}\n', ""
)


async def test_time_waiting_for_an_in_flight_slot_is_not_the_targets_latency() -> None:
    """Two probes, one slot, a target answering in 1 s (virtual): the second probe waits a
    second for the slot and still reports 1 s, not 2."""
    clock = ManualClock()

    async def slow(request: httpx.Request) -> httpx.Response:
        await clock.sleep(1.0)
        return httpx.Response(200, json={"results": [{"id": "p1"}]})

    engine, results, _ = make_engine(
        httpx.MockTransport(slow), text=SEARCH_ONLY, max_in_flight=1, clock=clock
    )
    jobs = asyncio.gather(engine.run_job(Job("acme", "search")), engine.run_job(Job("b", "search")))
    while not jobs.done():
        await asyncio.sleep(0)
        clock.advance(0.25)
    await jobs
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.OK]
    assert [r.duration_s for r in results] == [1.0, 1.0]


async def test_probes_to_one_host_keep_to_its_rate_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """20 probes at once against 50/s (5 per 100 ms window), in virtual time: never more than
    5 leave within 100 ms, so the 16th leaves three windows after the first."""
    import asyncio_throttle.throttler as throttler

    now = [0.0]

    async def virtual_sleep(seconds: float) -> None:
        now[0] += seconds  # one waiter polls at a time (HostThrottle's lock)
        await asyncio.sleep(0)

    monkeypatch.setattr(throttler, "time", SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(throttler, "asyncio", SimpleNamespace(sleep=virtual_sleep))
    sent: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(now[0])
        return httpx.Response(200, json={"results": [{"id": "p1"}]})

    throttle = HostThrottle(Rate(50, 1.0))
    engine, results, _ = make_engine(
        httpx.MockTransport(handler), text=SEARCH_ONLY, throttles={"api": throttle}
    )
    await asyncio.gather(*(engine.run_job(Job(f"t{i}", "search")) for i in range(20)))
    assert len(results) == 20
    sent.sort()
    assert all(sent[i + 5] - sent[i] > 0.1 for i in range(15))  # never 6 in a window
    assert 0.3 < sent[15] - sent[0] < 0.35  # and not slower than the limit asks


async def test_a_timeout_judged_while_the_monitor_lagged_is_withheld_not_the_tenants() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    collected: list[ProbeResult] = []
    withheld: list[ProbeResult] = []
    deadlines: list[tuple[float, float, float]] = []

    def lagging(start: float, deadline: float, end: float) -> bool:
        deadlines.append((start, deadline, end))
        return False

    client = httpx.AsyncClient(base_url="http://api.test", transport=httpx.MockTransport(hang))
    engine = Engine(
        checks(BASE_CONFIG),
        {"api": client},
        clock=SystemClock(),
        metrics=Metrics(CollectorRegistry()),
        sink=collected.append,
        tenant_vars=lambda tenant: {"query": "shoes"},
        deadline_guard=lagging,
        withheld_sink=withheld.append,
    )
    await engine.run_job(Job("acme", "search"))
    assert collected == []  # never a tenant failure
    assert [(r.tenant, r.check, r.outcome) for r in withheld] == [
        ("acme", "search", Outcome.TIMEOUT)
    ]
    ((start, deadline, end),) = deadlines
    assert deadline - start == 2.0  # the check's own deadline (BASE_CONFIG: timeout 2s)
    assert start <= end < deadline

    # the same timeout with the monitor on time is the tenant's
    on_time = Engine(
        checks(BASE_CONFIG),
        {"api": client},
        clock=SystemClock(),
        metrics=Metrics(CollectorRegistry()),
        sink=collected.append,
        tenant_vars=lambda tenant: {"query": "shoes"},
        deadline_guard=lambda start, deadline, end: True,
        withheld_sink=withheld.append,
    )
    await on_time.run_job(Job("acme", "search"))
    assert [(r.check, r.outcome) for r in collected] == [("search", Outcome.TIMEOUT)]
    assert len(withheld) == 1


async def test_a_tenants_request_is_rendered_once_and_again_when_its_values_change() -> None:
    variables = {"acme": {"query": "shoes"}}
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return catalog(request)

    engine, _, _ = make_engine(httpx.MockTransport(handler), tenant_vars=variables)
    search = engine.checks["search"]
    first = engine._request(search, {"query": "shoes", "tenant": "acme"})
    assert engine._request(search, {"query": "shoes", "tenant": "acme"}) is first
    assert first.rendered is None  # only what a probe sends is kept
    await engine.run_job(Job("acme", "search"))
    variables["acme"] = {"query": "boots"}  # a tenant list refresh changed its variable
    await engine.run_job(Job("acme", "search"))
    searches = [url for url in sent if "/search" in url]
    assert searches == [
        "http://api.test/v1/acme/search?q=shoes",
        "http://api.test/v1/acme/search?q=boots",
    ]
    # recommendations use search's capture: rendered with each run's, never from the cache
    recommendations = [url for url in sent if "/recommendations" in url]
    assert len(recommendations) == 2 and "recommendations" not in engine._request_keys


async def test_a_missing_variable_still_skips_with_the_cache_in_front() -> None:
    engine, results, metrics = make_engine(tenant_vars={"acme": {}})
    await engine.run_job(Job("acme", "search"))
    assert results == []  # no {query}: skipped, not probed, and no error inside recmon
    skipped = {"check": "search", "reason": "missing_variable"}
    assert metrics.registry.get_sample_value("recmon_probes_skipped_total", skipped) == 1
    errors = {"component": "engine"}
    assert metrics.registry.get_sample_value("recmon_internal_errors_total", errors) in (None, 0)
