"""A generic JSON webhook: the notification as JSON, version 1."""

from __future__ import annotations

import httpx

from monitor.alerting.sinks.base import post_json
from monitor.config.model import WebhookSpec
from monitor.core.clock import Clock
from monitor.core.notifications import DeliveryResult, Notification

WEBHOOK_VERSION = 1


class WebhookSink:
    name = "webhook"
    min_interval_s = 0.0

    def __init__(self, spec: WebhookSpec, client: httpx.AsyncClient, clock: Clock) -> None:
        self.spec = spec
        self.client = client
        self.clock = clock

    async def send(self, notification: Notification) -> DeliveryResult:
        body = {"version": WEBHOOK_VERSION, **notification.to_json()}
        return await post_json(
            self.client,
            self.spec.url,
            body,
            request_timeout=self.spec.timeout,
            now=self.clock.time(),
            headers=self.spec.headers or None,
        )
