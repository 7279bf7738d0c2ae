"""The status page rendered from the model with Jinja2 templates (autoescaped): the whole
page, the fragments the page refreshes in place, and a tenant's page. No I/O but reading the
packaged templates and static files once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from monitor.app.status import model
from monitor.app.status.history import PAST_DAYS
from monitor.app.status.model import Snapshot

# Sent with every page: only this origin's script, style and fetches; no framing, no plugins.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
if TYPE_CHECKING:
    import jinja2

STATIC = {
    "status.css": "text/css; charset=utf-8",
    "status.js": "text/javascript; charset=utf-8",
}


def _span(seconds: float) -> str:
    """A window's length, short: 8s, 5m, 1h, 1h 30m."""
    if seconds < 60 or seconds % 60:
        return f"{seconds:.0f}s"
    hours, minutes = divmod(int(seconds) // 60, 60)
    return " ".join(
        part for part in (f"{hours}h" * bool(hours), f"{minutes}m" * bool(minutes)) if part
    )


def _clock_seconds(unix: float | None) -> str:
    """When a held page goes out, to the second: 04:31:20 UTC."""
    return "-" if unix is None else datetime.fromtimestamp(unix, UTC).strftime("%H:%M:%S UTC")


def _num(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


@cache
def environment() -> jinja2.Environment:
    # Imported at the first page, not at start: jinja2 is ~30 ms of CPU of every recmon
    # start, and most runs (a scraped pod, a `once` in a cron job) never render a page.
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("monitor.app.status", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["dur"] = model.human_duration
    env.filters["iso"] = model.iso
    env.filters["clock"] = model.clock_time
    env.filters["clock_s"] = _clock_seconds
    env.filters["num"] = _num
    env.filters["span"] = _span
    env.filters["pct"] = lambda share: f"{share * 100:.0f}%"
    return env


@cache
def static_file(name: str) -> bytes | None:
    if name not in STATIC:
        return None
    return files("monitor.app.status").joinpath("static", name).read_bytes()


def refresh_seconds(snapshot: Snapshot) -> float:
    """Half the shortest check interval, between 1 s and 10 s: a change shows within one
    interval of the probe that saw it."""
    return round(min(10.0, max(1.0, snapshot.interval_s / 2)), 1)


def _context(snapshot: Snapshot) -> dict[str, Any]:
    incidents = model.incidents(snapshot)
    hosts = model.certificate_hosts(snapshot)
    return {
        "now": snapshot.now,
        "generated": model.iso(snapshot.now),
        "version": snapshot.version,
        "shard": snapshot.shard,
        "refresh_s": refresh_seconds(snapshot),
        "checks": snapshot.checks,
        "tenants_total": len(snapshot.tenants),
        "incidents": incidents,
        "max_incidents": model.MAX_INCIDENTS,
        "health": snapshot.health,
        "sinks": snapshot.sinks,
        "sinks_ok": all(s.failures == 0 for s in snapshot.sinks),
        "outbox_depth": snapshot.outbox_depth,
        "reload": snapshot.reload,
        "cert_hosts": hosts,
        "cert_trouble": any(
            not h.consistent or h.invalid_addresses or h.earliest_expiry is None for h in hosts
        ),
        "max_cert_rows": model.MAX_CERT_ROWS,
        "page_rows": model.PAGE_ROWS,
    }


def _title(incidents: int) -> str:
    return f"({incidents}) recmon status" if incidents else "recmon status"


def render_index(
    snapshot: Snapshot, query: str = "", page: int = 1, past: Sequence[Any] = ()
) -> str:
    """`past`: the history's incidents of the last days (app.status.history), newest first."""
    context = _context(snapshot)
    context["past"] = past
    context["past_days"] = PAST_DAYS
    context["grid"] = model.grid(snapshot, query, page)
    context["cert_rows"] = model.certificate_rows(snapshot)
    return environment().get_template("index.html.j2").render(context)


def render_live(snapshot: Snapshot, query: str = "", page: int = 1) -> dict[str, Any]:
    """What the page swaps in place on each refresh."""
    context = _context(snapshot)
    context["grid"] = model.grid(snapshot, query, page)
    context["cert_rows"] = model.certificate_rows(snapshot)
    env = environment()
    return {
        "generated": context["generated"],
        "title": _title(len(context["incidents"])),
        "html": {
            "top": env.get_template("_top.html.j2").render(context),
            "grid": env.get_template("_grid.html.j2").render(context),
            "certs": env.get_template("_certs.html.j2").render(context),
        },
    }


def render_tenant(
    snapshot: Snapshot,
    tenant: str,
    *,
    fragment: bool = False,
    bars: Mapping[str, Sequence[Any]] | None = None,
) -> str | None:
    """`bars`: the history's daily bars per check (app.status.history), on the full page."""
    detail = model.tenant_detail(snapshot, tenant)
    if detail is None:
        return None
    context = _context(snapshot)
    context["detail"] = detail
    context["bars"] = bars or {}
    name = "_tenant.html.j2" if fragment else "tenant.html.j2"
    return environment().get_template(name).render(context)
