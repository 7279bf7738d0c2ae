"""Text a person reads: round summaries and per-tenant tables (pure formatting, no I/O)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from monitor.alerting.hub import AlertHub
from monitor.alerting.tracker import SeriesKey
from monitor.core.notifications import Notification, Severity
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.series import AlertState

MAX_PROBLEM_LINES = 50


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}ms"


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def round_summary(
    results: Iterable[ProbeResult],
    checks: Sequence[str],
    skips: Mapping[tuple[str, str], str] | None = None,
) -> str:
    by_check: dict[str, list[ProbeResult]] = {check: [] for check in checks}
    for result in results:
        by_check.setdefault(result.check, []).append(result)
    outcomes = [o.value for o in Outcome]
    # Each outcome's column as wide as its name: nine outcomes stay within a terminal line.
    widths = {o: max(len(o) + 1, 7) for o in outcomes}
    header = (
        f"{'check':<18}{'probes':>7}"
        + "".join(f"{o:>{widths[o]}}" for o in outcomes)
        + f"{'p50':>9}{'p95':>9}"
    )
    lines = [header]
    problems: list[ProbeResult] = []
    for check, items in by_check.items():
        counts = Counter(r.outcome.value for r in items)
        latencies = [r.duration_s for r in items if r.ok]
        lines.append(
            f"{check:<18}{len(items):>7}"
            + "".join(f"{counts.get(o, 0):>{widths[o]}}" for o in outcomes)
            + f"{_ms(_percentile(latencies, 0.5)):>9}{_ms(_percentile(latencies, 0.95)):>9}"
        )
        problems.extend(r for r in items if not r.ok)
    lines.append("")
    if problems:
        # One line per check, outcome and reason, naming its tenants: a storm over 500
        # tenants is one line, not 500.
        same: dict[tuple[str, str, str], list[str]] = {}
        for result in sorted(problems, key=lambda r: (r.check, r.outcome.value, r.tenant)):
            key = (result.check, result.outcome.value, result.reason)
            same.setdefault(key, []).append(result.tenant)
        lines.append(f"{len(problems)} probe(s) not ok:")
        for (check, outcome, reason), tenants in list(same.items())[:MAX_PROBLEM_LINES]:
            lines.append(_clip(f"  {check} {outcome} ({_tenants(tenants)}): {reason}"))
        if len(same) > MAX_PROBLEM_LINES:
            lines.append(f"  ... and {len(same) - MAX_PROBLEM_LINES} more")
    else:
        lines.append("all probes ok")
    if skips:
        why: dict[tuple[str, str], list[str]] = {}
        for (tenant, check), reason in sorted(skips.items()):
            why.setdefault((check, reason), []).append(tenant)
        lines.append(f"{len(skips)} probe(s) skipped:")
        for (check, reason), tenants in list(why.items())[:MAX_PROBLEM_LINES]:
            lines.append(_clip(f"  {check} ({_tenants(tenants)}): {reason}"))
        if len(why) > MAX_PROBLEM_LINES:
            lines.append(f"  ... and {len(why) - MAX_PROBLEM_LINES} more")
    return "\n".join(lines)


# A summary line fits a terminal; what is cut says so.
MAX_LINE = 160
SHOWN_TENANTS = 5


def _clip(line: str, width: int = MAX_LINE) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def _tenants(tenants: Sequence[str]) -> str:
    if len(tenants) == 1:
        return tenants[0]
    shown = ", ".join(tenants[:SHOWN_TENANTS])
    more = f", +{len(tenants) - SHOWN_TENANTS} more" if len(tenants) > SHOWN_TENANTS else ""
    return f"{len(tenants)} tenants: {shown}{more}"


NOT_PROBED = "not probed yet"


def _cell(result: ProbeResult | None) -> str:
    if result is None:
        return NOT_PROBED
    text = f"{result.outcome.value} {_ms(result.duration_s)}"
    if result.items is not None:
        text += f" ({result.items})"
    return text


def tenant_table(
    latest: Mapping[tuple[str, str], ProbeResult],
    tenants: Sequence[str],
    checks: Sequence[str],
    skips: Mapping[tuple[str, str], str] | None = None,
) -> str:
    """One row per tenant, one column per check: outcome, latency, items. `!` marks a row
    with a failing or skipped check; a tenant not probed yet is said so, not marked."""
    skips = skips or {}
    width = max([len(t) for t in tenants] + [6]) + 2
    lines = [f"{'tenant':<{width}}" + "".join(f"{c:<28}" for c in checks)]
    for tenant in tenants:
        cells = [
            f"skipped ({skips[(tenant, check)].split(':')[0]})"
            if (tenant, check) in skips
            else _cell(latest.get((tenant, check)))
            for check in checks
        ]
        healthy = all(cell.startswith("ok") or cell == NOT_PROBED for cell in cells)
        mark = " " if healthy else "!"
        lines.append(f"{tenant:<{width}}" + "".join(f"{c:<28}" for c in cells) + mark)
    return "\n".join(lines)


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}  # critical first


def _by_rule(alerts: Sequence[tuple[SeriesKey, str, AlertState]]) -> list[str]:
    """One line per rule and check, naming the tenants (hosts, for certificates)."""
    same: dict[tuple[str, str], list[str]] = {}
    for (subject, check), rule_id, _ in sorted(alerts, key=lambda a: (a[0][1], a[1], a[0][0])):
        # A fleet alert (a fallback list for every tenant) has no tenant of its own.
        same.setdefault((rule_id, check), []).append(subject or "the fleet")
    return [
        _clip(f"  {rule_id} on {check} ({_tenants(subjects)})")
        for (rule_id, check), subjects in same.items()
    ]


def _incident_kind(notification: Notification) -> str:
    """A storm's first page and its fleet-wide companion say nearly the same; the kind tells
    them apart."""
    if notification.labels.get("scope") == "fleet-wide":
        return "fleet-wide"
    if notification.labels.get("grouped") == "true":
        return "grouped"
    return "single"


def _probes_ok_again(
    notification: Notification, latest: Mapping[tuple[str, str], ProbeResult]
) -> bool:
    """Every probe the incident is about came back ok this round: it was paged earlier and
    waits for enough good probes in a row (and a healthy window) to resolve."""
    tenants = notification.details.get("tenants") or (
        [notification.tenant] if notification.tenant else []
    )
    if not tenants or notification.check is None:
        return False  # certificates and the monitor's own alerts: not judged by probes
    results = [latest.get((tenant, notification.check)) for tenant in tenants]
    return all(r is not None and r.outcome is Outcome.OK for r in results)


def _incident_lines(notifications: Sequence[Notification]) -> list[str]:
    lines = [
        _clip(f"  {n.severity.value:<9} {n.rule:<16} {_incident_kind(n):<11}{n.summary}")
        for n in notifications[:MAX_PROBLEM_LINES]
    ]
    if len(notifications) > MAX_PROBLEM_LINES:
        lines.append(f"  ... and {len(notifications) - MAX_PROBLEM_LINES} more")
    return lines


def firing_summary(
    hub: AlertHub,
    *,
    sinks_configured: bool = True,
    latest: Mapping[tuple[str, str], ProbeResult] | None = None,
) -> str:
    """What is paged, what fires, what is pending: grouped incidents as the one incident they
    are, alerts by rule and check rather than one line per tenant. Without a sink nothing was
    paged: the incidents would have been. An incident whose probes are ok again was paged
    earlier and waits to resolve; it is said so, not counted as paged now."""
    firing = hub.firing_alerts()
    pending = hub.pending_alerts()
    paged = sorted(hub.active_triggers(), key=lambda n: (_SEVERITY_RANK[n.severity], n.key))
    resolving = [n for n in paged if latest is not None and _probes_ok_again(n, latest)]
    open_ = [n for n in paged if n not in resolving]
    lines: list[str] = []
    if open_:
        verb = "paged" if sinks_configured else "would page (no sink configured)"
        lines.append(f"{len(open_)} incident(s) {verb}:")
        lines.extend(_incident_lines(open_))
    if resolving:
        verb = "paged earlier" if sinks_configured else "opened earlier (no sink configured)"
        lines.append(
            f"{len(resolving)} incident(s) {verb}, waiting to resolve: their probes are ok "
            "again; they resolve after enough good ones (in a row, and in the rule's window):"
        )
        lines.extend(_incident_lines(resolving))
    if firing:
        lines.append(f"{len(firing)} alert(s) firing:")
        lines.extend(_by_rule(firing)[:MAX_PROBLEM_LINES])
    else:
        lines.append("no alerts firing")
    if pending:
        lines.append(f"{len(pending)} alert(s) pending (they fire if the next probes agree):")
        lines.extend(_by_rule(pending)[:MAX_PROBLEM_LINES])
    building = hub.building_alerts()
    if building:
        lines.append(
            f"{len(building)} alert(s) on their way (they fire after enough probes in a row):"
        )
        same: dict[tuple[str, str, int, int], list[str]] = {}
        for (tenant, check), rule, have, need in sorted(
            building, key=lambda b: (b[0][1], b[1], b[0][0])
        ):
            same.setdefault((rule, check, have, need), []).append(tenant)
        for (rule, check, have, need), tenants in list(same.items())[:MAX_PROBLEM_LINES]:
            lines.append(_clip(f"  {rule} on {check}, {have} of {need} ({_tenants(tenants)})"))
    return "\n".join(lines)
