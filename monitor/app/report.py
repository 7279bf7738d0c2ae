"""Text a person reads: round summaries and per-tenant tables (pure formatting, no I/O)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from monitor.alerting.hub import AlertHub
from monitor.core.results import Outcome, ProbeResult

MAX_PROBLEM_LINES = 50


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}ms"


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def round_summary(results: Iterable[ProbeResult], checks: Sequence[str]) -> str:
    by_check: dict[str, list[ProbeResult]] = {check: [] for check in checks}
    for result in results:
        by_check.setdefault(result.check, []).append(result)
    outcomes = [o.value for o in Outcome]
    header = (
        f"{'check':<18}{'probes':>7}"
        + "".join(f"{o:>14}" for o in outcomes)
        + f"{'p50':>9}{'p95':>9}"
    )
    lines = [header]
    problems: list[ProbeResult] = []
    for check, items in by_check.items():
        counts = Counter(r.outcome.value for r in items)
        latencies = [r.duration_s for r in items if r.ok]
        lines.append(
            f"{check:<18}{len(items):>7}"
            + "".join(f"{counts.get(o, 0):>14}" for o in outcomes)
            + f"{_ms(_percentile(latencies, 0.5)):>9}{_ms(_percentile(latencies, 0.95)):>9}"
        )
        problems.extend(r for r in items if not r.ok)
    if problems:
        lines.append("")
        lines.append(f"{len(problems)} probe(s) not ok:")
        for result in sorted(problems, key=lambda r: (r.check, r.tenant))[:MAX_PROBLEM_LINES]:
            outcome = result.outcome.value
            lines.append(f"  {result.tenant:<24} {result.check:<18} {outcome:<14} {result.reason}")
        if len(problems) > MAX_PROBLEM_LINES:
            lines.append(f"  ... and {len(problems) - MAX_PROBLEM_LINES} more")
    else:
        lines.append("")
        lines.append("all probes ok")
    return "\n".join(lines)


def _cell(result: ProbeResult | None) -> str:
    if result is None:
        return "-"
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
    """One row per tenant, one column per check: outcome, latency, items."""
    skips = skips or {}
    width = max([len(t) for t in tenants] + [6]) + 2
    lines = [f"{'tenant':<{width}}" + "".join(f"{c:<28}" for c in checks)]
    for tenant in tenants:
        cells = [
            f"skipped ({skips[(tenant, check)]})"
            if (tenant, check) in skips
            else _cell(latest.get((tenant, check)))
            for check in checks
        ]
        healthy = all(cell.startswith("ok") for cell in cells)
        mark = " " if healthy else "!"
        lines.append(f"{tenant:<{width}}" + "".join(f"{c:<28}" for c in cells) + mark)
    return "\n".join(lines)


def firing_summary(hub: AlertHub) -> str:
    firing = hub.firing_alerts()
    if not firing:
        return "no alerts firing"
    lines = [f"{len(firing)} alert(s) firing:"]
    for _, rule_id, alert in sorted(firing, key=lambda f: (f[0][1], f[1], f[0][0]))[
        :MAX_PROBLEM_LINES
    ]:
        lines.append(f"  {alert.severity.value:<9} {rule_id:<22} {alert.summary}")
    if len(firing) > MAX_PROBLEM_LINES:
        lines.append(f"  ... and {len(firing) - MAX_PROBLEM_LINES} more")
    return "\n".join(lines)
