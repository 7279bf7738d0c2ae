"""PagerDuty Events API v2: trigger and resolve with a deterministic dedup_key per alert."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from monitor.alerting.sinks.base import post_json, rfc3339
from monitor.config.model import PagerDutySpec
from monitor.core.clock import Clock
from monitor.core.notifications import Action, DeliveryResult, Notification, runbook_url

MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255


def dedup_key(key: str) -> str:
    """The alert key, or (if over PagerDuty's 255 characters) a stable shortened form."""
    if len(key) <= MAX_DEDUP_KEY:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"{key[: MAX_DEDUP_KEY - 33]}#{digest}"


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event_body(
    notification: Notification, spec: PagerDutySpec, runbook_base_url: str | None = None
) -> dict[str, Any]:
    """The Events v2 request body. A resolve needs only routing key, dedup key and action."""
    body: dict[str, Any] = {
        "routing_key": spec.routing_key,
        "event_action": notification.action.value,
        "dedup_key": dedup_key(notification.key),
    }
    if notification.action is Action.RESOLVE:
        return body
    # Certificate alerts are about a host, not tenants: named as recmon_alerts_firing labels
    # them (tenant "", check = the host) and grouped by it.
    host = notification.labels.get("host") if notification.rule.startswith("tls_") else None
    details = {
        **notification.details,
        "tenant": "" if host else notification.tenant,
        "check": host or notification.check,
        "started_at": rfc3339(notification.started_at),
        "labels": dict(notification.labels),
        "alert_key": notification.key,
    }
    location = notification.labels.get("location")
    body["payload"] = {
        "summary": truncate(notification.summary, MAX_SUMMARY),
        # Where it was seen from: "recmon@eu-west" (the check stays the component).
        "source": f"{spec.source}@{location}" if location else spec.source,
        "severity": notification.severity.value,
        "timestamp": rfc3339(notification.at),
        "component": notification.check or "recmon",
        "group": host or notification.tenant or "multiple-tenants",
        "class": notification.rule,
        "custom_details": details,
    }
    body["client"] = "recmon"
    runbook = runbook_url(notification.rule, runbook_base_url)
    if runbook:
        body["links"] = [{"href": runbook, "text": "runbook"}]
    return body


class PagerDutySink:
    name = "pagerduty"
    # PagerDuty accepts about 120 events per minute per routing key.
    min_interval_s = 0.5

    def __init__(
        self,
        spec: PagerDutySpec,
        client: httpx.AsyncClient,
        clock: Clock,
        runbook_base_url: str | None = None,
    ) -> None:
        self.spec = spec
        self.client = client
        self.clock = clock
        self.runbook_base_url = runbook_base_url

    async def send(self, notification: Notification) -> DeliveryResult:
        return await post_json(
            self.client,
            self.spec.url,
            event_body(notification, self.spec, self.runbook_base_url),
            request_timeout=self.spec.timeout,
            now=self.clock.time(),
            accepted=(202,),
            secrets=(self.spec.routing_key,),  # in the body: an echo of it is scrubbed too
        )
