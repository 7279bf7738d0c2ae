"""What the alerting side passes around: notifications and delivery results."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.StrEnum):
    """PagerDuty's severities; Alertmanager gets the same word as a label."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Action(enum.StrEnum):
    TRIGGER = "trigger"
    RESOLVE = "resolve"


@dataclass(frozen=True, slots=True)
class Notification:
    """One thing to tell every sink: an incident opened (trigger) or closed (resolve).

    `key` is the alert's identity and doubles as the PagerDuty dedup_key and the Alertmanager
    label set's identity. `id` is unique per incident and action, so the outbox can hold each
    notification once and deliver it once.
    """

    id: str
    key: str
    action: Action
    rule: str
    severity: Severity
    summary: str
    started_at: float  # Unix seconds: when the incident began firing
    at: float  # Unix seconds: when this trigger or resolve was decided
    tenant: str | None = None  # None for grouped (storm) and certificate alerts
    check: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "action": self.action.value,
            "rule": self.rule,
            "severity": self.severity.value,
            "summary": self.summary,
            "started_at": self.started_at,
            "at": self.at,
            "tenant": self.tenant,
            "check": self.check,
            "labels": dict(self.labels),
            "details": dict(self.details),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Notification:
        return cls(
            id=data["id"],
            key=data["key"],
            action=Action(data["action"]),
            rule=data["rule"],
            severity=Severity(data["severity"]),
            summary=data["summary"],
            started_at=float(data["started_at"]),
            at=float(data["at"]),
            tenant=data.get("tenant"),
            check=data.get("check"),
            labels=dict(data.get("labels") or {}),
            details=dict(data.get("details") or {}),
        )


# Alert names shared by recmon's own pages and deploy/prometheus/recmon-rules.yml, so
# Alertmanager routes both alike; each has a runbook under docs/runbooks/.
ALERT_NAMES = {
    "empty_results": "RecmonEmptyResults",
    "failures": "RecmonProbeFailures",
    "fleet_failures": "RecmonFleetFailures",
    "fleet_empty": "RecmonFleetEmptyResults",
    "auth_errors": "RecmonCredentialsRejected",
    "error_rate": "RecmonErrorRate",
    "latency_drift": "RecmonLatencyDrift",
    "latency_slo": "RecmonLatencySLO",
    "tls_expiring": "RecmonTLSCertificateExpiring",
    "tls_expiring_soon": "RecmonTLSCertificateExpiringSoon",
    "tls_invalid": "RecmonTLSCertificateInvalid",
    "tls_inconsistent": "RecmonTLSCertificateInconsistent",
    "tls_unreachable": "RecmonTLSBackendUnreachable",
    "tls_client_expiring": "RecmonTLSClientCertificateExpiring",
    "tls_client_expiring_soon": "RecmonTLSClientCertificateExpiringSoon",
    "overload": "RecmonOverloaded",
    "state_unwritable": "RecmonStateUnwritable",
    "fallback": "RecmonFallbackList",
    "foreign_items": "RecmonForeignItems",
    "frozen": "RecmonFrozenAnswers",
    "slo_burn": "RecmonErrorBudgetBurn",
    "slo_slow_burn": "RecmonErrorBudgetSlowBurn",
}
RUNBOOKS = {
    "empty_results": "docs/runbooks/empty-results.md",
    "failures": "docs/runbooks/probe-failures.md",
    "fleet_failures": "docs/runbooks/partial-outage.md",
    "fleet_empty": "docs/runbooks/partial-outage.md",
    "auth_errors": "docs/runbooks/credentials-rejected.md",
    "error_rate": "docs/runbooks/error-rate.md",
    "latency_drift": "docs/runbooks/latency-drift.md",
    "latency_slo": "docs/runbooks/latency-drift.md",
    "tls_expiring": "docs/runbooks/tls-certificate-expiring.md",
    "tls_expiring_soon": "docs/runbooks/tls-certificate-expiring.md",
    "tls_invalid": "docs/runbooks/tls-certificate-invalid.md",
    "tls_inconsistent": "docs/runbooks/tls-certificate-inconsistent.md",
    "tls_unreachable": "docs/runbooks/tls-backend-unreachable.md",
    "tls_client_expiring": "docs/runbooks/tls-client-certificate-expiring.md",
    "tls_client_expiring_soon": "docs/runbooks/tls-client-certificate-expiring.md",
    "overload": "docs/runbooks/recmon-lagging.md",
    "state_unwritable": "docs/runbooks/state-unwritable.md",
    "fallback": "docs/runbooks/wrong-content.md",
    "foreign_items": "docs/runbooks/wrong-content.md",
    "frozen": "docs/runbooks/wrong-content.md",
    "slo_burn": "docs/runbooks/slo-burn.md",
    "slo_slow_burn": "docs/runbooks/slo-burn.md",
}


def runbook_url(rule: str, base_url: str | None) -> str | None:
    """The rule's runbook as an absolute link, or None without `notify.runbook_base_url`: a
    relative path is no link a pager can open (and PagerDuty may refuse the event for it)."""
    path = RUNBOOKS.get(rule)
    if path is None or not base_url:
        return None
    return f"{base_url.rstrip('/')}/{path}"


def alert_name(rule: str) -> str:
    return ALERT_NAMES.get(rule, "Recmon" + "".join(part.title() for part in rule.split("_")))


class Delivery(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # 429, 5xx, network: try again later
    REJECTED = "rejected"  # 4xx such as 400: retrying cannot help


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    outcome: Delivery
    detail: str = ""
    # Seconds the sink asked us to wait (Retry-After), if it said.
    retry_after: float | None = None
