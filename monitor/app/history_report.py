"""`recmon report`: availability, impact, day-by-day p95 and incidents from the state file's
history. Pure: the history as read (state.store.HistoryRead) in, a Report and its text out;
reading the file is the caller's.

Availability is good probes (`ok`) over all probes made, per tenant × check, over whole UTC
hours; probes inside a configured maintenance window are counted apart and excluded. Impact
rows are the runs of failed probes (first failed probe → next good one), so their times are
evidence, to within one probe interval.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from monitor.detect.history import (
    DAY,
    SKETCH_RELATIVE_ERROR,
    Incident,
    Maintenance,
    Span,
    Totals,
    hour_of,
    incident_from_json,
    iso,
    maintenance_from_json,
    span_from_json,
)
from monitor.state.store import HistoryRead

FORMATS = ("md", "csv", "json", "html")
MAINTENANCE_NOTE = (
    "probes inside maintenance windows are excluded from availability (counted apart)"
)
SKETCH_NOTE = (
    f"p95 from a log-bucketed sketch: within {SKETCH_RELATIVE_ERROR * 100:.1f} % of the exact value"
)


@dataclass(frozen=True, slots=True)
class AvailabilityRow:
    tenant: str
    check: str
    probes: int  # outside maintenance
    good: int
    in_maintenance: int  # probes excluded
    availability_pct: float | None  # None: no probe outside maintenance


@dataclass(frozen=True, slots=True)
class ImpactRow:
    tenant: str
    check: str
    start: float
    end: float | None  # None: still failing when history was last written
    minutes: float
    worst: str
    failed_probes: int
    in_maintenance_minutes: float = 0.0  # of `minutes`, inside a window covering it


@dataclass(frozen=True, slots=True)
class DailyRow:
    day: str  # YYYY-MM-DD (UTC)
    tenant: str
    check: str
    probes: int
    p95_ms: float | None


@dataclass(frozen=True, slots=True)
class Report:
    since: float
    until: float
    tenants: str  # the glob
    availability: tuple[AvailabilityRow, ...]
    impact: tuple[ImpactRow, ...]
    daily: tuple[DailyRow, ...]
    incidents: tuple[Incident, ...]
    maintenance: tuple[Maintenance, ...]
    incident: Incident | None = None  # the one asked for (--incident)
    notes: tuple[str, ...] = field(default=(MAINTENANCE_NOTE, SKETCH_NOTE))


class ReportError(ValueError):
    pass


def _events(read: HistoryRead) -> tuple[list[Span], list[Incident], list[Maintenance]]:
    spans, incidents, windows = [], [], []
    for kind, _, text in read.events:
        try:
            data = json.loads(text)
            if kind == "span":
                spans.append(span_from_json(data))
            elif kind == "incident":
                incidents.append(incident_from_json(data))
            elif kind == "maintenance":
                windows.append(maintenance_from_json(data))
        except ValueError:
            continue  # one unreadable event never hides the rest of the report
    return spans, incidents, windows


def find_incident(read: HistoryRead, incident_id: str) -> Incident:
    _, incidents, _ = _events(read)
    for incident in incidents:
        if incident.id == incident_id:
            return incident
    known = ", ".join(i.id for i in incidents[-5:]) or "none recorded"
    raise ReportError(f"no incident {incident_id!r} in the state file's history ({known})")


def _in_scope(span: Span, incident: Incident) -> bool:
    if incident.check is not None and span.check != incident.check:
        return False
    if incident.tenant is not None:
        return span.tenant == incident.tenant
    if incident.tenants and incident.scope != "fleet-wide":
        return span.tenant in incident.tenants
    return True


def _maintained(span: Span, end: float, windows: Sequence[Maintenance]) -> float:
    """Seconds of the span inside maintenance windows that cover its tenant and check."""
    inside = [
        (max(span.start, w.start), min(end, w.end))
        for w in windows
        if w.covers(span.tenant, span.check, max(span.start, w.start))
        and w.start < end
        and w.end > span.start
    ]
    total, reached = 0.0, -math.inf
    for start, stop in sorted(inside):  # windows may overlap: count each second once
        start = max(start, reached)
        if stop > start:
            total += stop - start
            reached = stop
    return total


def build_report(
    read: HistoryRead,
    since: float,
    until: float,
    *,
    tenants: str = "*",
    incident: Incident | None = None,
    now: float | None = None,
) -> Report:
    """The report over [since, until) (whole UTC hours), for tenants matching the glob; with
    `incident`, its impact table is limited to the tenants and check it concerned."""
    if until <= since:
        raise ReportError("the period is empty: --to must be after --from")
    last = until if now is None else min(until, now)
    # (tenant, check) → day (its first second) → totals of that day's hours
    days: dict[tuple[str, str], dict[int, Totals]] = {}
    first_hour = hour_of(since)
    loads = json.loads
    for tenant, check, hour, text in read.hours:
        if not first_hour <= hour < until or not fnmatchcase(tenant, tenants):
            continue
        series = days.get((tenant, check))
        if series is None:
            series = days[(tenant, check)] = {}
        day = int(hour) // int(DAY) * int(DAY)
        totals = series.get(day)
        if totals is None:
            totals = series[day] = Totals()
        try:
            totals.add_json(loads(text))
        except ValueError:
            continue  # one unreadable row never hides the rest of the report
    availability = []
    daily = []
    for (tenant, check), by_day in sorted(days.items()):
        whole = Totals()
        for day, totals in sorted(by_day.items()):
            whole.add(totals)
            p95 = totals.quantile(0.95)
            daily.append(
                DailyRow(
                    iso(day)[:10],
                    tenant,
                    check,
                    totals.probes,
                    None if p95 is None else round(p95 * 1000, 1),
                )
            )
        pct = round(100 * whole.good / whole.probes, 4) if whole.probes else None
        availability.append(
            AvailabilityRow(tenant, check, whole.probes, whole.good, whole.in_maintenance, pct)
        )
    spans, incidents, windows = _events(read)
    start, end = (since, until) if incident is None else (incident.opened_at, incident.closed_at)
    impact = [
        ImpactRow(
            s.tenant,
            s.check,
            s.start,
            s.end,
            round(((s.end if s.end is not None else last) - s.start) / 60, 1),
            s.worst,
            sum(s.outcomes.values()),
            round(_maintained(s, s.end if s.end is not None else last, windows) / 60, 1),
        )
        for s in spans
        if fnmatchcase(s.tenant, tenants)
        and s.start < (end if end is not None else math.inf)
        and (s.end is None or s.end > start)
        and (incident is None or _in_scope(s, incident))
    ]
    impact.sort(key=lambda r: (r.start, r.tenant, r.check))
    return Report(
        since,
        until,
        tenants,
        tuple(availability),
        tuple(impact),
        tuple(daily),
        tuple(
            i
            for i in incidents
            if i.opened_at < until and (i.closed_at is None or i.closed_at >= since)
        ),
        tuple(w for w in windows if w.start < until and w.end > since),
        incident,
    )


# --- formats ------------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def to_json(report: Report) -> dict[str, Any]:
    def incident(i: Incident) -> dict[str, Any]:
        data = asdict(i)
        data["opened"] = iso(i.opened_at)
        data["closed"] = iso(i.closed_at) or None
        data["timeline"] = [
            {"at": iso(at), "action": action, "summary": text} for at, action, text in i.timeline
        ]
        return data

    return {
        "schema": "recmon.report/v1",
        "from": iso(report.since),
        "to": iso(report.until),
        "tenants": report.tenants,
        "notes": list(report.notes),
        "incident": None if report.incident is None else incident(report.incident),
        "availability": [asdict(r) for r in report.availability],
        "impact": [
            {**asdict(r), "start": iso(r.start), "end": iso(r.end) or None} for r in report.impact
        ],
        "daily_p95": [asdict(r) for r in report.daily],
        "incidents": [incident(i) for i in report.incidents],
        "maintenance": [
            {**asdict(w), "start": iso(w.start), "end": iso(w.end)} for w in report.maintenance
        ],
    }


def _tables(report: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table, in the order every text format shows them: with
    --incident, its timeline first (opened, re-paged, grew, resolved)."""
    tables = []
    if report.incident is not None:
        i = report.incident
        tables.append(
            (
                f"Incident {i.id}",
                ["at", "what", "summary"],
                [[iso(at), action, text] for at, action, text in i.timeline]
                + ([] if i.closed_at is not None else [["", "open", "not resolved yet"]]),
            )
        )
    tables += [
        (
            "Availability",
            ["tenant", "check", "availability %", "probes", "good", "excluded (maintenance)"],
            [
                [
                    r.tenant,
                    r.check,
                    _num(r.availability_pct, 3),
                    str(r.probes),
                    str(r.good),
                    str(r.in_maintenance),
                ]
                for r in report.availability
            ],
        ),
        (
            "Impact" if report.incident is None else f"Impact of incident {report.incident.id}",
            [
                "tenant",
                "check",
                "from",
                "to",
                "minutes",
                "of which in maintenance",
                "worst outcome",
                "failed probes",
            ],
            [
                [
                    r.tenant,
                    r.check,
                    iso(r.start),
                    iso(r.end) or "ongoing",
                    _num(r.minutes, 1),
                    _num(r.in_maintenance_minutes, 1),
                    r.worst,
                    str(r.failed_probes),
                ]
                for r in report.impact
            ],
        ),
        (
            "Incidents",
            ["id", "rule", "scope", "opened", "closed", "pages", "summary"],
            [
                [
                    i.id,
                    i.rule,
                    i.scope,
                    iso(i.opened_at),
                    iso(i.closed_at) or "open",
                    str(i.pages),
                    i.summary,
                ]
                for i in report.incidents
            ],
        ),
        (
            "Maintenance windows (excluded)",
            ["from", "to", "tenants", "checks", "reason"],
            [
                [
                    iso(w.start),
                    iso(w.end),
                    ", ".join(w.tenants) if w.tenants else "all",
                    ", ".join(w.checks) if w.checks else "all",
                    w.reason,
                ]
                for w in report.maintenance
            ],
        ),
        (
            "Daily p95",
            ["day", "tenant", "check", "probes", "p95 ms"],
            [[r.day, r.tenant, r.check, str(r.probes), _num(r.p95_ms, 1)] for r in report.daily],
        ),
    ]
    return tables


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report) -> str:
    lines = [
        f"# recmon report {iso(report.since)} – {iso(report.until)}",
        "",
        f"Tenants: `{report.tenants}`. " + "; ".join(report.notes) + ".",
    ]
    for title, header, rows in _tables(report):
        lines += ["", f"## {title}", ""]
        if not rows:
            lines.append("none")
            continue
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_csv(report: Report) -> str:
    """One long table: the first column names the table the row belongs to."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for title, header, rows in _tables(report):
        name = title.split(" ")[0].lower()
        writer.writerow(["table", *header])
        writer.writerows([name, *row] for row in rows)
    return out.getvalue()


def to_html(report: Report) -> str:
    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8>",
        f"<title>recmon report {iso(report.since)} – {iso(report.until)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:"
        "collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}</style>",
        f"<h1>recmon report {iso(report.since)} – {iso(report.until)}</h1>",
        f"<p>Tenants: <code>{html.escape(report.tenants)}</code>. "
        f"{html.escape('; '.join(report.notes))}.</p>",
    ]
    for title, header, rows in _tables(report):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if not rows:
            parts.append("<p>none</p>")
            continue
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header))
        parts += [
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
        ]
        parts.append("</table>")
    return "\n".join(parts) + "\n"


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(to_json(report), indent=2) + "\n"
    if fmt == "csv":
        return to_csv(report)
    if fmt == "html":
        return to_html(report)
    return to_markdown(report)
