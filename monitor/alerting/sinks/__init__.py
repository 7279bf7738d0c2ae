"""Notification sinks, one module each, behind one interface (sinks.base.Sink)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from monitor.alerting.sinks.alertmanager import AlertmanagerSink
from monitor.alerting.sinks.base import Sink
from monitor.alerting.sinks.pagerduty import PagerDutySink
from monitor.alerting.sinks.webhook import WebhookSink
from monitor.config.model import NotifySpec
from monitor.core.clock import Clock

__all__ = ["AlertmanagerSink", "PagerDutySink", "Sink", "Sinks", "WebhookSink", "build_sinks"]


@dataclass(frozen=True, slots=True)
class Sinks:
    by_name: dict[str, Sink]
    # Alertmanager also hears every firing alert again now and then (its resolve_timeout).
    alertmanager: AlertmanagerSink | None


def build_sinks(
    spec: NotifySpec,
    client: httpx.AsyncClient,
    clock: Clock,
    *,
    refresh_every: float | None = None,
) -> Sinks:
    """The configured sinks. `refresh_every`: when firing alerts are next re-posted to
    Alertmanager, if later than its resend_interval (`recmon once`: the next run)."""
    sinks: dict[str, Sink] = {}
    runbooks = spec.runbook_base_url
    if spec.pagerduty is not None:
        sinks["pagerduty"] = PagerDutySink(spec.pagerduty, client, clock, runbooks)
    alertmanager = None
    if spec.alertmanager is not None:
        alertmanager = AlertmanagerSink(
            spec.alertmanager, client, clock, runbooks, refresh_every=refresh_every
        )
        sinks["alertmanager"] = alertmanager
    if spec.webhook is not None:
        sinks["webhook"] = WebhookSink(spec.webhook, client, clock)
    return Sinks(sinks, alertmanager)
