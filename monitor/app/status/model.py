"""The status model: what the monitor knows → the `/status` document and the page's view
models. Pure: no I/O, no clock (`now` is in the snapshot), no HTTP, no HTML.

The snapshot is read from the running objects by `collect.py`; the page (`page.py`) and
`/status` render what is built here, so both always say the same thing.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitor.alerting.dispatch import SinkHealth
from monitor.alerting.hub import AlertView
from monitor.core.notifications import Notification
from monitor.core.results import ProbeResult
from monitor.detect.fleet import FOLDS
from monitor.detect.series import AlertEvent, AlertStatus, EventKind
from monitor.tls.prober import TlsResult

SCHEMA = "recmon.status/v1"
# /status lists at most this many alerts of each state (the counts are always complete).
MAX_LISTED = 500
# The page: rows per page (each row a tenant: its checks' cells and one sparkline), incidents
# shown at the top, certificate rows; these bound the page weight (see bench/status_page.py).
PAGE_ROWS = 100
MAX_INCIDENTS = 20
MAX_CERT_ROWS = 200
SPARK_POINTS = 30
RECENT_PROBES = 50

_SEVERITY_RANK = {"critical": 0, "error": 1, "warning": 2, "info": 3}
# Row states, worst first: the order failing tenants come first in.
ROW_STATES = ("failing", "alerting", "skipped", "unknown", "ok")
_ROW_RANK = {state: i for i, state in enumerate(ROW_STATES)}


# --- the snapshot: what the monitor knows at one moment ------------------------------------


@dataclass(frozen=True, slots=True)
class ReloadRecord:
    """The last configuration (re)load attempt."""

    at: float
    ok: bool
    source: str
    problems: tuple[tuple[str, int | None, str], ...] = ()  # (key path, line, message)


@dataclass(frozen=True, slots=True)
class SelfHealth:
    probes_per_s: float
    loop_lag_s: float
    skipped_runs: int
    probes_running: int
    healthy: bool
    ready: bool
    state_path: str
    state_saved_at: float | None
    state_error: str | None
    tenant_source_error: str | None
    started_at: float
    # recmon's own state_unwritable alert (pages sent from memory): its text and since when.
    state_unwritable: str | None = None
    state_unwritable_since: float | None = None


@dataclass(frozen=True, slots=True)
class SeriesView:
    """One tenant × check as the detector sees it (read lazily: only for visible rows)."""

    p95_s: float | None
    baseline_s: float | None
    empty_share: float | None  # share of empty answers over the empty_results rule's window
    empty_window_s: float  # that window (5 minutes unless configured)
    window_s: float  # how far back the stored samples reach
    samples: tuple[tuple[float, str, float | None, str], ...]  # newest last: (at, outcome,
    # latency, reason)


@dataclass(frozen=True)
class Snapshot:
    now: float  # wall time, Unix seconds
    version: str
    shard: str
    config_source: str
    tenants: Sequence[str]
    checks: Sequence[str]
    interval_s: float  # the shortest check interval: how often the page refreshes
    latest: Mapping[tuple[str, str], ProbeResult]
    skips: Mapping[tuple[str, str], str]
    paged: Sequence[Notification]
    sinks: Sequence[SinkHealth]
    outbox_depth: int
    reload: ReloadRecord | None
    health: SelfHealth
    certificates: Mapping[str, Sequence[TlsResult]]
    series: Callable[[str, str], SeriesView | None] = field(default=lambda t, c: None)
    history: Callable[[str], Sequence[AlertEvent]] = field(default=lambda t: ())
    # check → the statuses it accepts (an ok or empty probe's status when there is one).
    statuses: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    # Runs not sent since start because of the tenant itself (a missing variable or
    # credential): (tenant, check) → count. recmon's own skips are in health.skipped_runs.
    tenant_skips: Mapping[tuple[str, str], int] = field(default_factory=dict)
    # Every pending and firing alert, computed on first use: in the worker thread that
    # renders, from a copy the collector took on the event loop.
    alert_source: Callable[[], Sequence[AlertView]] = field(default=lambda: ())

    @functools.cached_property
    def alerts(self) -> Sequence[AlertView]:
        return tuple(self.alert_source())


# --- readable times and durations ----------------------------------------------------------


def iso(unix: float | None) -> str | None:
    if unix is None:
        return None
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clock_time(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%H:%M UTC")


def human_duration(seconds: float) -> str:
    """3 s, 4m 05s, 2h 10m, 3d 4h: two units at most, for a person."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def moment(unix: float | None, now: float) -> dict[str, Any] | None:
    """A time as /status gives it: ISO 8601 UTC, and how long ago (or how far ahead)."""
    if unix is None:
        return None
    delta = now - unix
    return {
        "at": iso(unix),
        "ago" if delta >= 0 else "in": human_duration(abs(delta)),
    }


# --- incidents: what is on fire -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    kind: str  # "fleet" (every tenant), "tenants" (several), "tenant" (one), "host"
    tenants: tuple[str, ...]
    count: int
    total: int
    text: str  # "all 40 tenants", "5 of 40 tenants (12%)", "tenant-002", "api.example:443"


@dataclass(frozen=True, slots=True)
class Incident:
    key: str
    rule: str
    check: str
    severity: str
    state: str  # "paged" | "held" (firing, not yet paged: group wait or maintenance)
    since: float
    scope: Scope
    headline: str  # "recommendations returned no items for all 40 tenants"
    summary: str  # the page's own text
    paged_to: tuple[str, ...]
    # A storm that became fleet-wide was paged a second time, with the scope in its title.
    escalated: bool = False
    # Held: why (AlertView.held_by: group_wait, maintenance, rules, unstored) and when it pages.
    held_by: str = ""
    pages_at: float | None = None


# Fleet incidents (detect.fleet): their page's title is already the headline a reader wants.
FLEET_RULES = frozenset(FOLDS)

_WHAT = {
    "empty_results": "returned no items",
    "failures": "is failing",
    "error_rate": "is failing",
    "latency_drift": "p95 latency is above its baseline",
    "latency_slo": "p95 latency is above its objective",
    "tls_expiring": "certificate expires soon",
    "tls_expiring_soon": "certificate expires very soon",
    "tls_invalid": "certificate is invalid",
    "tls_inconsistent": "backends serve different certificates",
    "slo_burn": "error budget is burning",
    "slo_slow_burn": "error budget is burning slowly",
}


def _scope(
    tenants: Sequence[str], total: int, host: str | None = None, *, fleet: bool = False
) -> Scope:
    """`fleet`: the planner escalated the storm as fleet-wide (alerts.storm.fleet_share)."""
    if host is not None:
        return Scope("host", (), 0, total, host)
    unique = tuple(sorted(set(tenants)))
    count = len(unique)
    if count == 1 and not fleet:
        return Scope("tenant", unique, 1, total, unique[0])
    if total and count >= total:
        return Scope("fleet", unique, count, total, f"all {count} tenants")
    # The share as the fleet-wide page words it ("37 of 40 tenants (93%)").
    share = f" ({count / total:.0%})" if total else ""
    kind = "fleet" if fleet else "tenants"
    return Scope(kind, unique, count, total, f"{count} of {total} tenants{share}")


def _headline(rule: str, check: str, scope: Scope, variant: str = "") -> str:
    what = _WHAT.get(rule, rule.replace("_", " "))
    if rule == "error_rate" and variant:
        what += f" ({variant})"
    if scope.kind == "host":
        return f"{scope.text}: {what}"
    return f"{check} {what} for {scope.text}"


def incidents(snapshot: Snapshot) -> list[Incident]:
    """Open incidents, worst first: every page that is open (a storm is one, with its whole
    scope), then firing alerts not paged yet, grouped by rule and check."""
    total = len(snapshot.tenants)
    sink_names = tuple(s.name for s in snapshot.sinks)
    members: dict[str, list[AlertView]] = {}
    held: dict[tuple[str, str, str], list[AlertView]] = {}
    for alert in snapshot.alerts:
        if alert.status is not AlertStatus.FIRING:
            continue
        if alert.paged_as is not None:
            members.setdefault(alert.paged_as, []).append(alert)
        else:
            held.setdefault((alert.rule, alert.check, alert.variant), []).append(alert)
    # A fleet-wide escalation is its storm's second page, not a second outage: one incident.
    escalations = {
        str(t.details["storm_key"]): t for t in snapshot.paged if t.details.get("storm_key")
    }
    paged_keys = {t.key for t in snapshot.paged}
    out: list[Incident] = []
    for trigger in snapshot.paged:
        if trigger.details.get("storm_key") in paged_keys:
            continue
        current = members.get(trigger.key, [])
        host = trigger.labels.get("host") if (trigger.check or "").startswith("tls") else None
        if trigger.check == "tls" and host is None:
            host = str(trigger.details.get("host") or "") or None
        if host is not None:
            scope = _scope((), total, host)
        elif trigger.tenant is not None:
            scope = _scope((trigger.tenant,), total)
        elif trigger.rule in FLEET_RULES:
            # A fleet incident (a share of every tenant's probes failing): its scope is the
            # tenants probed; the tenant alerts folded under it are its members.
            probed = int(trigger.details.get("tenants_probed") or total)
            scope = Scope(
                "fleet",
                tuple(sorted({a.tenant for a in current if a.tenant})),
                probed,
                total,
                f"all {probed} tenants" if probed >= total else f"{probed} of {total} tenants",
            )
        else:
            # A storm: the tenants firing now (the page lists its peak).
            tenants = [a.tenant for a in current if a.tenant] or list(
                trigger.details.get("tenants", ())
            )
            scope = _scope(tenants, total, fleet=trigger.key in escalations)
            if not tenants and trigger.details.get("scope") == "fleet":
                # A fleet objective (SLO): every tenant's probes pooled, none named.
                scope = Scope("fleet", (), total, total, f"all {total} tenants")
        variant = trigger.labels.get("outcome", "")
        out.append(
            Incident(
                key=trigger.key,
                rule=trigger.rule,
                check=trigger.check or "",
                severity=trigger.severity.value,
                state="paged",
                since=trigger.started_at,
                scope=scope,
                headline=(
                    trigger.summary.split(" — ", 1)[0]
                    if trigger.rule in FLEET_RULES
                    else _headline(trigger.rule, trigger.check or "", scope, variant)
                ),
                summary=(escalations.get(trigger.key, trigger)).summary,
                paged_to=sink_names,
                escalated=trigger.key in escalations,
            )
        )
    for (rule, check, variant), alerts in held.items():
        first = min(alerts, key=lambda a: a.since)
        if rule.startswith("tls_"):
            scope = _scope((), total, variant)
        else:
            scope = _scope([a.tenant for a in alerts if a.tenant], total)
        worst = min(alerts, key=lambda a: _SEVERITY_RANK.get(a.severity.value, 9))
        # The first of them to page says when the incident will.
        soonest = min(alerts, key=lambda a: (a.held_until is None, a.held_until or 0.0))
        out.append(
            Incident(
                key=f"held/{rule}/{check}/{variant}",
                rule=rule,
                check=check,
                severity=worst.severity.value,
                state="held",
                since=first.since,
                scope=scope,
                headline=_headline(rule, check, scope, "" if rule.startswith("tls_") else variant),
                summary=first.summary,
                paged_to=(),
                held_by=soonest.held_by,
                pages_at=soonest.held_until,
            )
        )
    out.sort(key=lambda i: (_SEVERITY_RANK.get(i.severity, 9), i.state != "paged", i.since))
    return out


def incident_json(incident: Incident, now: float) -> dict[str, Any]:
    return {
        "key": incident.key,
        "rule": incident.rule,
        "check": incident.check,
        "severity": incident.severity,
        "state": incident.state,
        "paged": incident.state == "paged",
        "paged_to": list(incident.paged_to),
        "escalated": incident.escalated,
        "since": moment(incident.since, now),
        "scope": {
            "kind": incident.scope.kind,
            "text": incident.scope.text,
            "tenant_count": incident.scope.count,
            "total_tenants": incident.scope.total,
            "tenants": list(incident.scope.tenants[:100]),
        },
        "headline": incident.headline,
        "summary": incident.summary,
        "held_by": incident.held_by or None,
        "pages_at": moment(incident.pages_at, now),
    }


# --- certificates ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertRow:
    host: str
    address: str
    not_after: float | None
    days_left: float | None
    fingerprint: str  # the first 16 hex digits of the SHA-256
    valid: bool
    reason: str  # "" when valid


@dataclass(frozen=True, slots=True)
class CertHost:
    host: str
    earliest_expiry: float | None  # among valid leaves and their intermediates
    days_left: float | None
    certificates: int  # distinct leaves served across the addresses
    consistent: bool
    invalid_addresses: tuple[str, ...]


def certificate_rows(snapshot: Snapshot) -> list[CertRow]:
    rows = []
    for host, results in sorted(snapshot.certificates.items()):
        for r in sorted(results, key=lambda r: r.address):
            cert = r.certificate
            rows.append(
                CertRow(
                    host=host,
                    address=r.address or "-",
                    not_after=cert.not_after if cert else None,
                    days_left=(cert.not_after - snapshot.now) / 86400 if cert else None,
                    fingerprint=cert.fingerprint_sha256[:16] if cert else "",
                    valid=r.ok,
                    reason=r.reason,
                )
            )
    return rows


def certificate_hosts(snapshot: Snapshot) -> list[CertHost]:
    hosts = []
    for host, results in sorted(snapshot.certificates.items()):
        fingerprints = {r.certificate.fingerprint_sha256 for r in results if r.certificate}
        expiries = [
            c.not_after
            for r in results
            if r.certificate is not None and not r.invalid
            for c in (r.certificate, *r.chain)
        ]
        earliest = min(expiries, default=None)
        hosts.append(
            CertHost(
                host=host,
                earliest_expiry=earliest,
                days_left=None if earliest is None else (earliest - snapshot.now) / 86400,
                certificates=len(fingerprints),
                consistent=len(fingerprints) <= 1,
                invalid_addresses=tuple(sorted(r.address for r in results if not r.ok)),
            )
        )
    return hosts


# --- the /status document ------------------------------------------------------------------


def _alert_json(alert: AlertView, now: float) -> dict[str, Any]:
    return {
        "key": alert.key,
        "rule": alert.rule,
        "variant": alert.variant or None,
        "check": alert.check,
        "tenant": alert.tenant,
        "host": alert.variant if alert.check == "tls" else None,
        "severity": alert.severity.value,
        "since": moment(alert.since, now),
        "paged": alert.paged_as is not None,
        "paged_as": alert.paged_as,
        "summary": alert.summary,
    }


def _alert_order(alert: AlertView) -> tuple[int, float, str]:
    return _SEVERITY_RANK.get(alert.severity.value, 9), alert.since, alert.key


def reload_json(record: ReloadRecord | None, now: float) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "at": moment(record.at, now),
        "ok": record.ok,
        "source": record.source,
        "errors": [
            {"key": key or None, "line": line, "message": message}
            for key, line, message in record.problems
        ],
    }


def failing_tenants(snapshot: Snapshot) -> list[str]:
    return sorted({t for (t, _), r in snapshot.latest.items() if not r.ok})


def status_document(snapshot: Snapshot) -> dict[str, Any]:
    """The `/status` JSON (schema: docs/STATUS.md)."""
    now = snapshot.now
    firing = [a for a in snapshot.alerts if a.status is AlertStatus.FIRING]
    pending = [a for a in snapshot.alerts if a.status is AlertStatus.PENDING]
    failing = failing_tenants(snapshot)
    health = snapshot.health
    hosts = certificate_hosts(snapshot)
    return {
        "schema": SCHEMA,
        "generated": iso(now),
        "version": snapshot.version,
        "shard": snapshot.shard,
        "config": snapshot.config_source,
        "tenants": len(snapshot.tenants),
        "checks": list(snapshot.checks),
        "failing_tenants": len(failing),
        "failing_sample": failing[:100],
        "tenant_skipped_runs": sum(snapshot.tenant_skips.values()),
        "incidents": [incident_json(i, now) for i in incidents(snapshot)],
        "alerts": {
            "firing_count": len(firing),
            "pending_count": len(pending),
            "firing": [_alert_json(a, now) for a in sorted(firing, key=_alert_order)[:MAX_LISTED]],
            "pending": [
                _alert_json(a, now) for a in sorted(pending, key=_alert_order)[:MAX_LISTED]
            ],
        },
        "notifications": {
            "outbox_depth": snapshot.outbox_depth,
            "sinks": [
                {
                    "name": s.name,
                    "healthy": s.failures == 0
                    and (s.last_result is None or s.last_result.value == "delivered"),
                    "last_result": s.last_result.value if s.last_result else None,
                    "last_detail": s.last_detail or None,
                    "last_attempt": moment(s.last_at, now),
                    "consecutive_failures": s.failures,
                    "next_retry": moment(s.retry_at, now),
                    "pending": s.pending,
                }
                for s in snapshot.sinks
            ],
        },
        "config_reload": reload_json(snapshot.reload, now),
        "self": {
            "healthy": health.healthy,
            "ready": health.ready,
            "up_since": moment(health.started_at, now),
            "probes_per_second": round(health.probes_per_s, 1),
            "probes_running": health.probes_running,
            "event_loop_lag_ms": ms(health.loop_lag_s),
            "skipped_runs": health.skipped_runs,
            "state_file": {
                "path": health.state_path,
                "last_saved": moment(health.state_saved_at, now),
                "error": health.state_error,
                "unwritable": None
                if health.state_unwritable is None
                else {
                    "since": moment(health.state_unwritable_since, now),
                    "summary": health.state_unwritable,
                },
            },
            "tenant_source_error": health.tenant_source_error,
        },
        "certificates": [
            {
                "host": h.host,
                "earliest_expiry": moment(h.earliest_expiry, now),
                "days_left": None if h.days_left is None else round(h.days_left, 1),
                "certificates_served": h.certificates,
                "consistent": h.consistent,
                "invalid_addresses": list(h.invalid_addresses),
            }
            for h in hosts
        ],
    }


# --- the tenants × checks grid ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cell:
    check: str
    state: str  # ok | failing | skipped | unknown
    word: str  # the outcome, in words: "ok", "empty", "http_error", "skipped", "no probe yet"
    latency_ms: float | None
    p95_ms: float | None
    baseline_ms: float | None
    empty_share: float | None  # over the empty_results rule's window
    empty_window_s: float | None
    items: int | None
    reason: str
    skipped_runs: int = 0  # runs of this tenant × check not sent since start (its own skips)


@dataclass(frozen=True, slots=True)
class Row:
    tenant: str
    state: str
    cells: tuple[Cell, ...]
    alerts: int  # firing alerts of this tenant
    spark: tuple[tuple[str, str], ...]  # (check, SVG polyline points) per check


@dataclass(frozen=True, slots=True)
class GridPage:
    rows: tuple[Row, ...]
    query: str
    page: int
    pages: int
    matching: int
    total: int
    counts: Mapping[str, int]  # row state → tenants in it (over the whole fleet)


def _cell_state(result: ProbeResult | None, skipped: str | None) -> tuple[str, str]:
    if skipped is not None:
        return "skipped", "skipped"
    if result is None:
        return "unknown", "no probe yet"
    return ("ok" if result.ok else "failing"), result.outcome.value


def _row_state(snapshot: Snapshot, tenant: str, alerting: bool) -> str:
    """One tenant's row state: its worst cell, or "alerting" over ok/unknown while it has a
    firing alert."""
    worst = "ok"
    for check in snapshot.checks:
        state, _ = _cell_state(
            snapshot.latest.get((tenant, check)), snapshot.skips.get((tenant, check))
        )
        if _ROW_RANK[state] < _ROW_RANK[worst]:
            worst = state
    if worst in ("ok", "unknown") and alerting:
        worst = "alerting"
    return worst


def row_states(snapshot: Snapshot) -> dict[str, str]:
    """Every tenant's row state, from the last results and firing alerts (cheap: no series)."""
    alerting = {a.tenant for a in snapshot.alerts if a.status is AlertStatus.FIRING and a.tenant}
    return {t: _row_state(snapshot, t, t in alerting) for t in snapshot.tenants}


def sparkline(latencies: Sequence[float | None], top: float, width: int = 120) -> str:
    """SVG polyline points for the recent latencies, oldest left, across the whole width, on
    a 0..top scale (height 24). A probe without a trusted latency leaves a gap in x."""
    values = list(latencies[-SPARK_POINTS:])
    if len(values) < 2 or top <= 0:
        return ""
    step = width / (len(values) - 1)
    points = []
    for i, v in enumerate(values):
        if v is None:
            continue
        y = 23 - 22 * min(v / top, 1.0)
        points.append(f"{i * step:.0f},{y:.0f}")
    return " ".join(points)


def _row(snapshot: Snapshot, tenant: str, state: str, alerting: Mapping[str, int]) -> Row:
    cells = []
    lines: list[tuple[str, list[float | None]]] = []
    for check in snapshot.checks:
        result = snapshot.latest.get((tenant, check))
        cell_state, word = _cell_state(result, snapshot.skips.get((tenant, check)))
        view = snapshot.series(tenant, check)
        empty_share = view.empty_share if view is not None else None
        empty_window = view.empty_window_s if view is not None else None
        # Every check has its place (and colour) in the sparkline, drawn or not.
        samples = view.samples[-SPARK_POINTS:] if view is not None else ()
        lines.append((check, [s[2] for s in samples]))
        cells.append(
            Cell(
                check=check,
                state=cell_state,
                word=word,
                latency_ms=ms(result.duration_s) if result else None,
                p95_ms=ms(view.p95_s) if view else None,
                baseline_ms=ms(view.baseline_s) if view else None,
                empty_share=empty_share,
                empty_window_s=empty_window,
                items=result.items if result else None,
                reason=result.reason if result else (snapshot.skips.get((tenant, check)) or ""),
                skipped_runs=snapshot.tenant_skips.get((tenant, check), 0),
            )
        )
    top = max((v for _, vs in lines for v in vs if v is not None), default=0.0)
    spark = tuple((check, sparkline(values, top)) for check, values in lines)
    return Row(tenant, state, tuple(cells), alerting.get(tenant, 0), spark)


def grid(snapshot: Snapshot, query: str = "", page: int = 1, size: int = PAGE_ROWS) -> GridPage:
    """One page of the grid: failing tenants first, then by name; `query` filters by a
    substring of the tenant id, or by a row state ("failing", "ok", ...)."""
    states = row_states(snapshot)
    counts: dict[str, int] = dict.fromkeys(ROW_STATES, 0)
    for state in states.values():
        counts[state] += 1
    query = query.strip()
    needle = query.lower()
    if needle in ROW_STATES:
        matching = [t for t in snapshot.tenants if states[t] == needle]
    elif needle:
        matching = [t for t in snapshot.tenants if needle in t.lower()]
    else:
        matching = list(snapshot.tenants)
    matching.sort(key=lambda t: (_ROW_RANK[states[t]], t))
    pages = max(1, math.ceil(len(matching) / size))
    page = min(max(1, page), pages)
    shown = matching[(page - 1) * size : page * size]
    alerting: dict[str, int] = {}
    for a in snapshot.alerts:
        if a.status is AlertStatus.FIRING and a.tenant:
            alerting[a.tenant] = alerting.get(a.tenant, 0) + 1
    rows = tuple(_row(snapshot, t, states[t], alerting) for t in shown)
    return GridPage(rows, query, page, pages, len(matching), len(snapshot.tenants), counts)


# --- one tenant ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    at: float
    check: str
    outcome: str
    status: str  # "200", "502", "200 or 204" (an ok probe of a check accepting both), "-"
    latency_ms: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    at: float
    event: str  # firing | resolved
    rule: str
    variant: str
    check: str
    severity: str
    summary: str
    note: str = ""  # an alert firing from before this process: where it came from


@dataclass(frozen=True, slots=True)
class TenantDetail:
    tenant: str
    row: Row
    probes: tuple[Probe, ...]  # newest first
    alerts: tuple[AlertView, ...]  # pending and firing now
    history: tuple[HistoryEntry, ...]  # newest first


_STATUS_IN_REASON = re.compile(r"(?:unexpected )?status (\d{3})\b")


def _status_of(reason: str) -> int | None:
    """The detector's window keeps the reason, not the status: "unexpected status 502",
    "status 401: the tenant's key rejected"."""
    match = _STATUS_IN_REASON.match(reason)
    return int(match.group(1)) if match else None


def _probe_status(snapshot: Snapshot, check: str, outcome: str, reason: str) -> str:
    """A stored sample keeps its reason, not its status: read it back from the reason
    ("unexpected status 502"), or, for an answer the check accepted (ok, empty), from the
    statuses the check accepts."""
    status = _status_of(reason)
    if status is not None:
        return str(status)
    accepted = snapshot.statuses.get(check, ())
    if outcome in ("ok", "empty") and accepted:
        return " or ".join(str(s) for s in accepted)
    return "-"


def _history(snapshot: Snapshot, tenant: str, alerts: Sequence[AlertView]) -> list[HistoryEntry]:
    """This process's alert events of the tenant, newest first, and every alert firing now
    that has no event here: fired before this recmon started (carried over in the state
    file, from a `recmon once` or an earlier run) or before the oldest event kept."""
    events = list(snapshot.history(tenant))
    entries = [
        HistoryEntry(
            e.at, e.kind.value, e.rule, e.variant, e.check or "", e.severity.value, e.summary
        )
        for e in events
    ]
    fired = {e.key for e in events if e.kind is EventKind.FIRING}
    for alert in alerts:
        if alert.status is not AlertStatus.FIRING or alert.key in fired:
            continue
        note = (
            "fired before this recmon started: carried over from the state file"
            if alert.since < snapshot.health.started_at
            else "fired before the oldest event kept here"
        )
        entries.append(
            HistoryEntry(
                alert.since,
                "firing",
                alert.rule,
                alert.variant,
                alert.check,
                alert.severity.value,
                alert.summary,
                note,
            )
        )
    entries.sort(key=lambda h: -h.at)
    return entries


def tenant_detail(snapshot: Snapshot, tenant: str) -> TenantDetail | None:
    if tenant not in snapshot.tenants:
        return None
    firing = sum(
        1 for a in snapshot.alerts if a.tenant == tenant and a.status is AlertStatus.FIRING
    )
    state = _row_state(snapshot, tenant, firing > 0)
    probes: list[Probe] = []
    for check in snapshot.checks:
        view = snapshot.series(tenant, check)
        latest = snapshot.latest.get((tenant, check))
        samples = view.samples if view else ()
        for i, (at, outcome, latency, reason) in enumerate(samples):
            status = _probe_status(snapshot, check, outcome, reason)
            if i == len(samples) - 1 and latest is not None and latest.status is not None:
                status = str(latest.status)  # the newest probe's status is known exactly
            probes.append(Probe(at, check, outcome, status, ms(latency), reason))
    probes.sort(key=lambda p: -p.at)
    alerts = tuple(a for a in snapshot.alerts if a.tenant == tenant)
    return TenantDetail(
        tenant=tenant,
        row=_row(snapshot, tenant, state, {tenant: firing}),
        probes=tuple(probes[:RECENT_PROBES]),
        alerts=alerts,
        history=tuple(_history(snapshot, tenant, alerts)),
    )
