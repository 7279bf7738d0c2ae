"""Notification sinks, one module each, behind one interface (sinks.base.Sink)."""

from __future__ import annotations

import httpx

from monitor.alerting.sinks.alertmanager import AlertmanagerSink
from monitor.alerting.sinks.base import Sink
from monitor.alerting.sinks.pagerduty import PagerDutySink
from monitor.alerting.sinks.webhook import WebhookSink
from monitor.config.model import NotifySpec
from monitor.core.clock import Clock

__all__ = ["AlertmanagerSink", "PagerDutySink", "Sink", "WebhookSink", "build_sinks"]


def build_sinks(spec: NotifySpec, client: httpx.AsyncClient, clock: Clock) -> dict[str, Sink]:
    sinks: dict[str, Sink] = {}
    runbooks = spec.runbook_base_url
    if spec.pagerduty is not None:
        sinks["pagerduty"] = PagerDutySink(spec.pagerduty, client, clock, runbooks)
    if spec.alertmanager is not None:
        sinks["alertmanager"] = AlertmanagerSink(spec.alertmanager, client, clock, runbooks)
    if spec.webhook is not None:
        sinks["webhook"] = WebhookSink(spec.webhook, client, clock)
    return sinks
