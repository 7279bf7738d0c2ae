"""Sink payloads field by field, and how answers are read (delivered, retry, rejected)."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest

from monitor.alerting.sinks.alertmanager import AlertmanagerSink
from monitor.alerting.sinks.pagerduty import PagerDutySink, dedup_key, event_body
from monitor.alerting.sinks.webhook import WebhookSink
from monitor.config.model import AlertmanagerSpec, PagerDutySpec, WebhookSpec
from monitor.core.clock import ManualClock
from monitor.core.notifications import Action, Delivery, Notification, Severity

T0 = 1_763_990_400.0  # 2025-11-24T13:20:00Z
ROUTING_KEY = "R0UTING-KEY-abcdef0123456789"
PD = PagerDutySpec(routing_key=ROUTING_KEY, url="http://pagerduty.test/v2/enqueue")


def trigger(**changes: object) -> Notification:
    base = dict(
        id="recmon/empty_results/recommendations/acme@1763990400000:trigger",
        key="recmon/empty_results/recommendations/acme",
        action=Action.TRIGGER,
        rule="empty_results",
        severity=Severity.CRITICAL,
        summary="recommendations returned no items for tenant acme: 2 of 2 probes",
        started_at=T0,
        at=T0 + 30,
        tenant="acme",
        check="recommendations",
        labels={},
        details={"empty_probes": 2, "probes": 2, "parent_healthy": True},
    )
    base.update(changes)
    return Notification(**base)  # type: ignore[arg-type]


def test_pagerduty_trigger_payload() -> None:
    body = event_body(trigger(), PD)
    assert body["routing_key"] == ROUTING_KEY
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "recmon/empty_results/recommendations/acme"
    payload = body["payload"]
    assert payload["summary"] == "recommendations returned no items for tenant acme: 2 of 2 probes"
    assert payload["source"] == "recmon"
    assert payload["severity"] == "critical"
    assert payload["timestamp"] == "2025-11-24T13:20:30.000Z"
    assert payload["component"] == "recommendations"
    assert payload["group"] == "acme"
    assert payload["class"] == "empty_results"
    details = payload["custom_details"]
    assert details["empty_probes"] == 2 and details["parent_healthy"] is True
    assert details["tenant"] == "acme" and details["check"] == "recommendations"
    assert details["started_at"] == "2025-11-24T13:20:00.000Z"
    assert "links" not in body  # a relative path is no link: only with runbook_base_url
    linked = event_body(trigger(), PD, "https://git.example.com/recmon/blob/main/")
    assert linked["links"] == [
        {
            "href": "https://git.example.com/recmon/blob/main/docs/runbooks/empty-results.md",
            "text": "runbook",
        }
    ]


def test_pagerduty_certificate_pages_are_grouped_and_named_by_host() -> None:
    body = event_body(
        trigger(
            key="recmon/tls_unreachable/tls/-/api.example.com:443",
            rule="tls_unreachable",
            severity=Severity.WARNING,
            tenant=None,
            check="tls",
            labels={"host": "api.example.com:443"},
            details={"host": "api.example.com:443", "addresses": {"10.0.0.3": "timeout"}},
        ),
        PD,
    )
    payload = body["payload"]
    assert payload["group"] == "api.example.com:443"  # not "multiple-tenants"
    # as recmon_alerts_firing labels it: tenant "", check = the host
    assert payload["custom_details"]["tenant"] == ""
    assert payload["custom_details"]["check"] == "api.example.com:443"
    assert payload["component"] == "tls"


def test_pagerduty_resolve_payload_is_minimal() -> None:
    resolve = trigger(action=Action.RESOLVE, id="x:resolve")
    assert event_body(resolve, PD) == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": "recmon/empty_results/recommendations/acme",
    }


def test_pagerduty_limits() -> None:
    body = event_body(trigger(summary="x" * 5000, tenant=None), PD)
    assert len(body["payload"]["summary"]) == 1024 and body["payload"]["summary"].endswith("…")
    assert body["payload"]["group"] == "multiple-tenants"
    long_key = "recmon/empty_results/recommendations/" + "t" * 400
    assert len(dedup_key(long_key)) <= 255
    assert dedup_key(long_key) == dedup_key(long_key) != dedup_key(long_key + "x")


async def test_alertmanager_trigger_resolve_and_resend_bodies() -> None:
    seen: list[list[dict[str, object]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        assert request.url.path == "/api/v2/alerts"
        return httpx.Response(200)

    clock = ManualClock(start=T0 + 30)
    spec = AlertmanagerSpec(url="http://am.test:9093", resend_interval=60)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sink = AlertmanagerSink(spec, client, clock)
        note = trigger(labels={"grouped": "true"})
        assert (await sink.send(note)).outcome is Delivery.DELIVERED
        clock.advance(600)
        await sink.resend([note])
        resolve = trigger(action=Action.RESOLVE, at=T0 + 900, labels={"grouped": "true"})
        await sink.send(resolve)
    (first,), (resent,), (resolved,) = seen
    assert first["labels"] == {
        "alertname": "RecmonEmptyResults",
        "severity": "critical",
        "rule": "empty_results",
        "source": "recmon",
        "tenant": "acme",
        "check": "recommendations",
        "grouped": "true",
    }
    assert first["annotations"]["summary"].startswith("recommendations returned no items")  # type: ignore[index]
    assert "empty_probes: 2" in first["annotations"]["description"]  # type: ignore[index]
    assert first["annotations"]["runbook"] == "docs/runbooks/empty-results.md"  # type: ignore[index]
    assert "runbook_url" not in first["annotations"]  # type: ignore[operator]
    assert first["startsAt"] == "2025-11-24T13:20:00.000Z"
    assert first["endsAt"] == "2025-11-24T13:24:30.000Z"  # 4 resend intervals ahead
    assert resent["endsAt"] == "2025-11-24T13:34:30.000Z"  # pushed ahead from the resend time
    assert resolved["endsAt"] == "2025-11-24T13:35:00.000Z"  # = when it resolved
    assert resolved["labels"] == first["labels"]  # same identity: Alertmanager resolves it


async def test_webhook_posts_the_notification_as_json() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sink = WebhookSink(
            WebhookSpec(url="http://hook.test/in", headers={"X-Token": "t0ken"}),
            client,
            ManualClock(start=T0),
        )
        assert (await sink.send(trigger())).outcome is Delivery.DELIVERED
    body = json.loads(seen[0].content)
    assert body["version"] == 1 and body["action"] == "trigger" and body["tenant"] == "acme"
    assert seen[0].headers["x-token"] == "t0ken"


@pytest.mark.parametrize(
    "response, outcome, retry_after",
    [
        (httpx.Response(202, json={"status": "success"}), Delivery.DELIVERED, None),
        (
            httpx.Response(
                400, json={"status": "invalid event", "errors": ["Event object is invalid"]}
            ),
            Delivery.REJECTED,
            None,
        ),
        (httpx.Response(429, headers={"retry-after": "42"}), Delivery.RETRY, 42.0),
        (
            httpx.Response(429, headers={"retry-after": "Mon, 24 Nov 2025 13:21:30 GMT"}),
            Delivery.RETRY,
            60.0,
        ),
        (httpx.Response(500), Delivery.RETRY, None),
        (httpx.Response(503), Delivery.RETRY, None),
    ],
)
async def test_pagerduty_answers_are_classified(
    response: httpx.Response, outcome: Delivery, retry_after: float | None
) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: response)) as client:
        result = await PagerDutySink(PD, client, ManualClock(start=T0 + 30)).send(trigger())
    assert result.outcome is outcome
    assert result.retry_after == retry_after
    if outcome is Delivery.REJECTED:
        assert "Event object is invalid" in result.detail


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout("timed out"), httpx.ConnectError("[Errno 111] Connection refused")]
)
async def test_network_failures_are_retried(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with caplog.at_level(logging.DEBUG):
            result = await PagerDutySink(PD, client, ManualClock(start=T0 + 30)).send(trigger())
    assert result.outcome is Delivery.RETRY
    assert ROUTING_KEY not in result.detail and ROUTING_KEY not in caplog.text


async def test_a_sink_that_trickles_its_answer_is_cut_at_the_deadline() -> None:
    class Trickle(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            for _ in range(100):
                await asyncio.sleep(0.05)
                yield b"."

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(202, stream=Trickle())

    spec = PagerDutySpec(
        routing_key=ROUTING_KEY, url="http://pagerduty.test/v2/enqueue", timeout=0.3
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        result = await PagerDutySink(spec, client, ManualClock(start=T0 + 30)).send(trigger())
    assert result.outcome is Delivery.RETRY and "within 0.3s" in result.detail


async def test_pagerduty_quoting_the_event_back_keeps_the_routing_key_out_of_the_reason() -> None:
    # The routing key travels in the body, not a header: an echo of the body (a debugging
    # proxy, an error page) must not carry it into the outbox's last_error or the log.
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, text=f"invalid event: {request.content.decode()}")

    async with httpx.AsyncClient(transport=httpx.MockTransport(echo)) as client:
        result = await PagerDutySink(PD, client, ManualClock(start=T0 + 30)).send(trigger())
    assert result.outcome is Delivery.REJECTED and "invalid event" in result.detail
    assert ROUTING_KEY not in result.detail
