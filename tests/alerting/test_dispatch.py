"""Delivery through the outbox in virtual time: outages, restarts, rejections, Retry-After."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from monitor.alerting.dispatch import Dispatcher
from monitor.alerting.sinks.alertmanager import AlertmanagerSink
from monitor.alerting.sinks.base import rfc3339
from monitor.alerting.sinks.pagerduty import PagerDutySink
from monitor.config.model import AlertmanagerSpec, DeliverySpec, PagerDutySpec
from monitor.core.clock import ManualClock
from monitor.core.notifications import Action, Delivery, DeliveryResult, Notification, Severity
from monitor.state.outbox import Outbox
from monitor.state.store import StateStore
from monitor.telemetry.metrics import Metrics

T0 = 1_763_990_400.0
PD = PagerDutySpec(routing_key="rk-0123456789", url="http://pagerduty.test/v2/enqueue")


def note(tenant: str, action: Action = Action.TRIGGER, at: float = T0) -> Notification:
    key = f"recmon/empty_results/recommendations/{tenant}"
    return Notification(
        id=f"{key}@{int(T0 * 1000)}:{action.value}",
        key=key,
        action=action,
        rule="empty_results",
        severity=Severity.CRITICAL,
        summary=f"no recommendations for {tenant}",
        started_at=T0,
        at=at,
        tenant=tenant,
        check="recommendations",
    )


class FakePagerDuty:
    """Answers with whatever `answer(now)` says; records what it accepted."""

    def __init__(self, clock: ManualClock, answer: Callable[[float], httpx.Response]) -> None:
        self.clock = clock
        self.answer = answer
        self.accepted: list[tuple[str, str]] = []  # (dedup_key, event_action)
        self.attempts = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        response = self.answer(self.clock.time())
        if response.status_code == 202:
            body = json.loads(request.content)
            self.accepted.append((body["dedup_key"], body["event_action"]))
        return response


class Harness:
    def __init__(self, path: Path, clock: ManualClock, pd: FakePagerDuty) -> None:
        self.path, self.clock, self.pd = path, clock, pd
        self.metrics = Metrics(CollectorRegistry())
        self.open()

    def open(self) -> None:
        self.store = StateStore.open(self.path)
        self.client = httpx.AsyncClient(transport=httpx.MockTransport(self.pd))
        sink = PagerDutySink(PD, self.client, self.clock)
        self.dispatcher = Dispatcher(
            Outbox(self.store),
            {"pagerduty": sink},
            clock=self.clock,
            metrics=self.metrics,
            spec=DeliverySpec(backoff_initial=1, backoff_max=60),
        )

    async def restart(self) -> None:
        await self.client.aclose()
        self.store.close()
        self.open()

    async def run_for(self, seconds: float, step: float = 1.0) -> None:
        for _ in range(int(seconds / step)):
            await self.dispatcher.deliver_due()
            self.clock.advance(step)

    def count(self, result: str) -> float:
        return (
            self.metrics.registry.get_sample_value(
                "recmon_notifications_total", {"sink": "pagerduty", "result": result}
            )
            or 0
        )


def outage_until(end: float) -> Callable[[float], httpx.Response]:
    return lambda now: httpx.Response(503 if now < end else 202)


@pytest.mark.parametrize("restart", [False, True], ids=["no-restart", "restart-mid-outage"])
async def test_ten_minute_outage_delivers_everything_exactly_once_in_order(
    tmp_path: Path, restart: bool
) -> None:
    clock = ManualClock(start=T0)
    pd = FakePagerDuty(clock, outage_until(T0 + 600))
    h = Harness(tmp_path / "state.db", clock, pd)
    h.dispatcher.enqueue([note("a"), note("b"), note("c")])
    await h.run_for(120)
    h.dispatcher.enqueue([note("a", Action.RESOLVE, T0 + 120), note("b", Action.RESOLVE, T0 + 120)])
    await h.run_for(180)
    if restart:
        await h.restart()
    await h.run_for(600)
    assert sorted(pd.accepted) == sorted(
        [(f"recmon/empty_results/recommendations/{t}", a) for t in "abc" for a in ("trigger",)]
        + [(f"recmon/empty_results/recommendations/{t}", "resolve") for t in "ab"]
    )
    for tenant in "ab":  # the resolve never overtakes its trigger
        key = f"recmon/empty_results/recommendations/{tenant}"
        assert pd.accepted.index((key, "trigger")) < pd.accepted.index((key, "resolve"))
    assert h.dispatcher.outbox.pending() == 0
    assert pd.attempts < 60  # backed off as a whole, not hammered per notification
    if not restart:
        assert h.count("delivered") == 5 and h.count("retry") >= 3


async def test_enqueueing_the_same_notification_twice_sends_it_once(tmp_path: Path) -> None:
    clock = ManualClock(start=T0)
    pd = FakePagerDuty(clock, lambda now: httpx.Response(202))
    h = Harness(tmp_path / "state.db", clock, pd)
    h.dispatcher.enqueue([note("a")])
    await h.run_for(2)
    h.dispatcher.enqueue([note("a")])  # decided again after a crash: same id
    await h.restart()
    h.dispatcher.enqueue([note("a")])
    await h.run_for(5)
    assert pd.accepted == [("recmon/empty_results/recommendations/a", "trigger")]


async def test_retry_after_is_honoured(tmp_path: Path) -> None:
    clock = ManualClock(start=T0)
    answers = [httpx.Response(429, headers={"retry-after": "120"})]
    pd = FakePagerDuty(clock, lambda now: answers.pop(0) if answers else httpx.Response(202))
    h = Harness(tmp_path / "state.db", clock, pd)
    h.dispatcher.enqueue([note("a")])
    await h.run_for(100)
    assert pd.accepted == [] and pd.attempts == 1
    await h.run_for(30)
    assert len(pd.accepted) == 1


@pytest.mark.parametrize(
    "retry_after", ["9" * 400, "Fri, 01 Jan 2100 00:00:00 GMT"], ids=["huge", "far-future"]
)
async def test_a_bogus_retry_after_delays_but_never_parks_a_page(
    tmp_path: Path, retry_after: str
) -> None:
    clock = ManualClock(start=T0)
    answers = [httpx.Response(429, headers={"retry-after": retry_after})]
    pd = FakePagerDuty(clock, lambda now: answers.pop(0) if answers else httpx.Response(202))
    h = Harness(tmp_path / "state.db", clock, pd)
    h.dispatcher.enqueue([note("a")])
    await h.run_for(800)
    assert pd.accepted == []
    await h.run_for(200)  # the ceiling: 15 minutes
    assert pd.accepted == [("recmon/empty_results/recommendations/a", "trigger")]


async def test_rejected_is_logged_with_the_reason_and_not_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(start=T0)
    reason = {
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": ["'routing_key' is invalid"],
    }
    pd = FakePagerDuty(clock, lambda now: httpx.Response(400, json=reason))
    h = Harness(tmp_path / "state.db", clock, pd)
    h.dispatcher.enqueue([note("a"), note("b")])
    with caplog.at_level(logging.ERROR, logger="recmon.delivery"):
        await h.run_for(600)
    assert pd.attempts == 2
    assert h.dispatcher.outbox.pending() == 0
    reasons = [r.fields["reason"] for r in caplog.records]  # type: ignore[attr-defined]
    assert len(reasons) == 2 and all("Event object is invalid" in reason for reason in reasons)
    assert "rk-0123456789" not in caplog.text + " ".join(reasons)
    assert h.count("rejected") == 2


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectTimeout("timed out"), httpx.ConnectError("[Errno 111] Connection refused")],
    ids=["timeout", "unreachable"],
)
async def test_unreachable_or_timing_out_sink_is_retried_until_it_answers(
    tmp_path: Path, error: Exception
) -> None:
    clock = ManualClock(start=T0)
    failing_until = T0 + 300

    def answer(now: float) -> httpx.Response:
        if now < failing_until:
            raise error
        return httpx.Response(202)

    pd = FakePagerDuty(clock, answer)
    h = Harness(tmp_path / "state.db", clock, pd)
    h.dispatcher.enqueue([note("a")])
    await h.run_for(600)
    assert len(pd.accepted) == 1 and h.dispatcher.outbox.pending() == 0


async def test_flush_delivers_within_its_budget_and_leaves_the_rest(tmp_path: Path) -> None:
    clock = ManualClock(start=T0)
    pd = FakePagerDuty(clock, lambda now: httpx.Response(503))
    h = Harness(tmp_path / "state.db", clock, pd)
    h.dispatcher.enqueue([note("a")])
    assert await h.dispatcher.flush(within=0) == 1  # one pass, failed: left for next time
    pd.answer = lambda now: httpx.Response(202)
    clock.advance(5)  # past the backoff
    assert await h.dispatcher.flush(within=0) == 0
    assert pd.accepted == [("recmon/empty_results/recommendations/a", "trigger")]


class FakeAlertmanager:
    def __init__(self, clock: ManualClock, answer: Callable[[float], httpx.Response]) -> None:
        self.clock = clock
        self.answer = answer
        self.accepted: list[tuple[str, str]] = []  # (tenant, "firing" | "resolved")

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = self.answer(self.clock.time())
        if response.status_code == 200:
            for alert in json.loads(request.content):
                ends = alert["endsAt"]
                state = "resolved" if ends <= rfc3339(self.clock.time()) else "firing"
                self.accepted.append((alert["labels"]["tenant"], state))
        return response


@pytest.mark.parametrize(
    "failure",
    [
        lambda now: httpx.Response(500),
        lambda now: httpx.Response(429, headers={"retry-after": "30"}),
        "timeout",
        "unreachable",
    ],
    ids=["500", "429-retry-after", "timeout", "unreachable"],
)
async def test_alertmanager_failures_delay_never_drop_or_double(
    tmp_path: Path, failure: object
) -> None:
    clock = ManualClock(start=T0)
    recovers = T0 + 300

    def answer(now: float) -> httpx.Response:
        if now >= recovers:
            return httpx.Response(200)
        if failure == "timeout":
            raise httpx.ReadTimeout("timed out")
        if failure == "unreachable":
            raise httpx.ConnectError("[Errno 111] Connection refused")
        return failure(now)  # type: ignore[operator]

    am = FakeAlertmanager(clock, answer)
    store = StateStore.open(tmp_path / "state.db")
    async with httpx.AsyncClient(transport=httpx.MockTransport(am)) as client:
        sink = AlertmanagerSink(AlertmanagerSpec(url="http://am.test"), client, clock)
        dispatcher = Dispatcher(
            Outbox(store),
            {"alertmanager": sink},
            clock=clock,
            metrics=Metrics(CollectorRegistry()),
            spec=DeliverySpec(backoff_initial=1, backoff_max=60),
        )
        dispatcher.enqueue([note("a"), note("b")])
        for _ in range(60):
            await dispatcher.deliver_due()
            clock.advance(1)
        dispatcher.enqueue([note("a", Action.RESOLVE, clock.time())])
        for _ in range(400):
            await dispatcher.deliver_due()
            clock.advance(1)
    assert sorted(am.accepted) == [("a", "firing"), ("a", "resolved"), ("b", "firing")]
    assert am.accepted.index(("a", "firing")) < am.accepted.index(("a", "resolved"))
    store.close()


async def test_a_sink_that_crashes_delays_the_page_and_is_counted(tmp_path: Path) -> None:
    clock = ManualClock(start=T0)
    store = StateStore.open(tmp_path / "state.db")
    calls = 0

    class Flaky:
        name = "webhook"
        min_interval_s = 0.0

        async def send(self, notification: Notification) -> DeliveryResult:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise KeyError("a bug")
            return DeliveryResult(Delivery.DELIVERED)

    metrics = Metrics(CollectorRegistry())
    dispatcher = Dispatcher(
        Outbox(store),
        {"webhook": Flaky()},
        clock=clock,
        metrics=metrics,
        spec=DeliverySpec(backoff_initial=1),
    )
    dispatcher.enqueue([note("a")])
    for _ in range(10):
        await dispatcher.deliver_due()
        clock.advance(1)
    assert calls == 2 and dispatcher.outbox.pending() == 0
    assert (
        metrics.registry.get_sample_value("recmon_internal_errors_total", {"component": "delivery"})
        == 1
    )
    store.close()


async def test_outbox_prunes_finished_rows_after_a_week(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path / "state.db")
    outbox = Outbox(store)
    outbox.enqueue([note("a"), note("b")], ["pagerduty"], T0)
    first, _ = outbox.due(T0)
    outbox.mark_delivered(first, T0)
    assert outbox.prune(T0 + 6 * 86400) == 0
    assert outbox.prune(T0 + 8 * 86400) == 1  # the delivered one; the pending one stays
    assert outbox.pending() == 1
    store.close()
