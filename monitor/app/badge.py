"""SVG badges (/badge/<tenant>/<check>.svg): a tenant × check's availability over the last 30
days from the state file's history, for embedding in a customer-facing page. The badge is
pure (hour rows in, SVG text out); `store_badge` reads the rows."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

from monitor.detect.history import DAY, HOUR, hour_from_json, hour_of
from monitor.state.store import StateStore

BADGE_DAYS = 30
# (at least this availability in percent, colour), best first; below the last: red.
_COLOURS = ((99.9, "#2e7d32"), (99.0, "#689f38"), (95.0, "#ef6c00"))
_RED = "#c62828"
_GREY = "#757575"
_CHAR_PX = 7  # Verdana 11px is about this wide per character: enough for a badge


def badge_hours(now: float, days: int = BADGE_DAYS) -> list[int]:
    """The hour rows a badge reads: the last `days` days' hours."""
    last = hour_of(now)
    return list(range(last - days * int(DAY) + HOUR, last + HOUR, HOUR))


def availability(rows: Sequence[tuple[int, str]]) -> float | None:
    """Good probes over probes (maintenance excluded) of (hour, encoded row), in percent."""
    good = probes = 0
    for _, text in rows:
        try:
            row = hour_from_json(json.loads(text))
        except ValueError:
            continue
        good += row.good
        probes += row.probes
    return 100 * good / probes if probes else None


def badge_svg(label: str, pct: float | None) -> str:
    """A flat two-part badge: `label` | "99.95%" coloured by the figure ("no data" in grey)."""
    if pct is None:
        message, colour = "no data", _GREY
    else:
        message = f"{pct:.2f}%" if pct < 100 else "100%"
        colour = next((c for floor, c in _COLOURS if pct >= floor), _RED)
    left = len(label) * _CHAR_PX + 12
    right = len(message) * _CHAR_PX + 12
    width = left + right
    text_label, text_message = html.escape(label), html.escape(message)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{text_label}: {text_message}">'
        f"<title>{text_label}: {text_message}</title>"
        f'<rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        '<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="6" y="14">{text_label}</text>'
        f'<text x="{left + 6}" y="14">{text_message}</text>'
        "</g></svg>\n"
    )


def store_badge(store: StateStore, tenant: str, check: str, now: float) -> str | None:
    """The badge of a tenant × check's last 30 days (None: no history for it)."""
    rows = store.history_rows(tenant, check, badge_hours(now))
    if not rows:
        return None
    return badge_svg(f"{check} {BADGE_DAYS}d", availability(rows))
