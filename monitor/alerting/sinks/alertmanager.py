"""Alertmanager API v2: post alerts; resolve by re-sending the labels with endsAt ≤ now;
re-send firing alerts periodically so Alertmanager does not time them out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from monitor.alerting.sinks.base import post_json, rfc3339
from monitor.config.model import AlertmanagerSpec
from monitor.core.clock import Clock
from monitor.core.notifications import (
    RUNBOOKS,
    Action,
    DeliveryResult,
    Notification,
    alert_name,
    runbook_url,
)

# Like Prometheus: a firing alert's endsAt lies a few resend intervals ahead, so the alerts of
# a recmon that died expire instead of firing forever (the heartbeat reports the death).
ENDS_AT_RESENDS = 4


def labels(notification: Notification) -> dict[str, str]:
    out = {
        "alertname": alert_name(notification.rule),
        "severity": notification.severity.value,
        "rule": notification.rule,
        "source": "recmon",
    }
    if notification.tenant:
        out["tenant"] = notification.tenant
    if notification.check:
        out["check"] = notification.check
    out.update({k: str(v) for k, v in notification.labels.items()})
    return out


def describe(details: dict[str, Any]) -> str:
    lines = []
    for key, value in details.items():
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value[:20]) + (" …" if len(value) > 20 else "")
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


def alert_body(
    notification: Notification,
    *,
    now: float,
    refresh_every: float,
    runbook_base_url: str | None = None,
) -> dict[str, Any]:
    ends_at = (
        notification.at
        if notification.action is Action.RESOLVE
        else now + ENDS_AT_RESENDS * refresh_every
    )
    annotations = {
        "summary": notification.summary,
        "description": describe(dict(notification.details)),
    }
    link = runbook_url(notification.rule, runbook_base_url)
    if link:
        annotations["runbook_url"] = link
    elif notification.rule in RUNBOOKS:
        annotations["runbook"] = RUNBOOKS[notification.rule]  # a path in recmon's docs
    return {
        "labels": labels(notification),
        "annotations": annotations,
        "startsAt": rfc3339(notification.started_at),
        "endsAt": rfc3339(ends_at),
    }


class AlertmanagerSink:
    name = "alertmanager"
    min_interval_s = 0.0

    def __init__(
        self,
        spec: AlertmanagerSpec,
        client: httpx.AsyncClient,
        clock: Clock,
        runbook_base_url: str | None = None,
        *,
        refresh_every: float | None = None,
    ) -> None:
        self.spec = spec
        self.client = client
        self.clock = clock
        self.runbook_base_url = runbook_base_url
        self.url = f"{spec.url}/api/v2/alerts"
        # How often firing alerts are re-posted. `recmon run` re-posts every resend_interval;
        # `recmon once` only at its next run, so it passes the gap between runs.
        self.refresh_every = max(spec.resend_interval, refresh_every or 0.0)

    async def send(self, notification: Notification) -> DeliveryResult:
        return await self._post([notification])

    async def resend(self, firing: Sequence[Notification]) -> DeliveryResult:
        """Re-post everything firing now, with endsAt pushed ahead from the current clock."""
        return await self._post(list(firing))

    async def _post(self, notifications: list[Notification]) -> DeliveryResult:
        now = self.clock.time()
        body = [
            alert_body(
                n,
                now=now,
                refresh_every=self.refresh_every,
                runbook_base_url=self.runbook_base_url,
            )
            for n in notifications
        ]
        return await post_json(
            self.client,
            self.url,
            body,
            request_timeout=self.spec.timeout,
            now=now,
            headers=self.spec.headers or None,
        )
