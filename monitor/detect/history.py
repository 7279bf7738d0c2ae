"""History per tenant × check: hourly probe counts with a latency sketch, impact spans
(from a tenant's first failed probe to its next good one) and incidents. Pure types, the
arithmetic on them and their JSON (the state file stores the text, knowing nothing of it).

The latency sketch is a fixed log-bucketed histogram: bucket 0 holds latencies below 1 ms,
bucket b ≥ 1 holds [γ^(b-1), γ^b) ms with γ = 2^(1/4), the last bucket everything from
about 65 s up. A quantile is found by exact rank among the counts and reported as its
bucket's geometric middle, so within 2^(1/8) - 1 ≈ 9.05 % of the true nearest-rank value
between 1 ms and 65 s (within 0.5 ms below 1 ms). Sketches add exactly: an hour, a day and a
month are the same arithmetic.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from json.encoder import encode_basestring_ascii as _string
from typing import Any

from monitor.config.model import MaintenanceWindow
from monitor.core.notifications import Action, Notification
from monitor.core.results import Outcome, ProbeResult

HOUR = 3600
DAY = 86400
RETENTION_S = 90 * DAY
GAMMA = 2 ** (1 / 4)
BUCKETS = 66  # 0: < 1 ms; 1..64: [γ^(b-1), γ^b) ms; 65: ≥ γ^64 ms ≈ 65.5 s
SKETCH_RELATIVE_ERROR = 2 ** (1 / 8) - 1
# Outcomes from worst to least bad, for an impact's "worst outcome": no answer at all first,
# then a wrong answer, then recmon's own credentials refused.
WORST_FIRST = (
    Outcome.CONNECT_ERROR,
    Outcome.TIMEOUT,
    Outcome.TLS_ERROR,
    Outcome.HTTP_ERROR,
    Outcome.INVALID_BODY,
    Outcome.EMPTY,
    Outcome.AUTH_ERROR,
    Outcome.OK,
)
# Outcomes whose latency is a response time (the others time a deadline or a failed dial).
_ANSWERED = {
    Outcome.OK,
    Outcome.EMPTY,
    Outcome.HTTP_ERROR,
    Outcome.INVALID_BODY,
    Outcome.AUTH_ERROR,
}


def hour_of(at: float) -> int:
    return int(at // HOUR) * HOUR


def bucket_of(seconds: float) -> int:
    ms = seconds * 1000
    if ms < 1:
        return 0
    return min(BUCKETS - 1, 1 + int(math.log(ms, GAMMA)))


def bucket_value(bucket: int) -> float:
    """The bucket's representative latency in seconds (its geometric middle)."""
    if bucket <= 0:
        return 0.0005
    if bucket >= BUCKETS - 1:
        return float(GAMMA ** (BUCKETS - 2)) / 1000
    return float(GAMMA ** (bucket - 0.5)) / 1000


def quantile(sketch: Mapping[int, int], q: float) -> float | None:
    """The nearest-rank q-quantile of a sketch (bucket → count), None when empty."""
    total = sum(sketch.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket in sorted(sketch):
        seen += sketch[bucket]
        if seen >= rank:
            return bucket_value(bucket)
    return bucket_value(max(sketch))  # unreachable: the ranks add up


@dataclass(frozen=True, slots=True)
class HourRow:
    """One tenant × check × hour: probes by outcome outside maintenance, probes inside it,
    and the latency sketch of the answered probes outside it."""

    outcomes: Mapping[str, int] = field(default_factory=dict)
    maintenance: Mapping[str, int] = field(default_factory=dict)
    latency: Mapping[int, int] = field(default_factory=dict)

    @property
    def probes(self) -> int:
        return sum(self.outcomes.values())

    @property
    def good(self) -> int:
        return self.outcomes.get(Outcome.OK.value, 0)


# --- the recorder's rows, packed ----------------------------------------------------------
# The recorder keeps every series' current and previous hour: as an HourRow of three dicts
# that was ~650 bytes a row (two rows a series). Packed, a row is one bytes object: n slot
# codes (a byte each), then n counts (uint32, little-endian), in the order first counted, so
# its text lists outcomes in the order the dicts did. Slots: 0..65 the latency buckets,
# then two per outcome (outside, inside maintenance). ~80 bytes a row, and no object for
# the garbage collector to walk.
PackedHour = bytes
_NAMES: tuple[str, ...] = tuple(o.value for o in Outcome)
_OUTSIDE = {name: BUCKETS + 2 * i for i, name in enumerate(_NAMES)}
_INSIDE = {name: BUCKETS + 2 * i + 1 for i, name in enumerate(_NAMES)}
_ONE = (1).to_bytes(4, "little")
_UINT32 = struct.Struct("<I")
EMPTY_HOUR: PackedHour = b""


def _count(data: PackedHour, slot: int) -> PackedHour:
    """`data` with one more in `slot`."""
    n = len(data) // 5
    i = data.find(slot, 0, n)
    if i < 0:
        return data[:n] + bytes((slot,)) + data[n:] + _ONE
    at = n + 4 * i
    # One copy into a bytearray, the count rewritten in place, one back to bytes: ~0.25 us
    # less than splicing three slices (twice a probe).
    counted = bytearray(data)
    _UINT32.pack_into(counted, at, _UINT32.unpack_from(data, at)[0] + 1)
    return bytes(counted)


def add_result(row: PackedHour, result: ProbeResult, *, in_maintenance: bool) -> PackedHour:
    """The packed row with `result` counted (a new bytes object: a snapshot keeps the old)."""
    outcome = result.outcome.value
    if in_maintenance:
        return _count(row, _INSIDE[outcome])
    if result.outcome in _ANSWERED and result.latency_trusted and result.attempts > 0:
        return _count_both(row, _OUTSIDE[outcome], bucket_of(result.duration_s))
    return _count(row, _OUTSIDE[outcome])


def _count_both(data: PackedHour, first: int, second: int) -> PackedHour:
    """_count(_count(data, first), second) for two different slots: when both are there (an
    answered probe of an hour under way), one copy with both counts rewritten, not two."""
    n = len(data) // 5
    i, j = data.find(first, 0, n), data.find(second, 0, n)
    if i < 0 or j < 0:
        return _count(_count(data, first), second)
    counted = bytearray(data)
    for at in (n + 4 * i, n + 4 * j):
        _UINT32.pack_into(counted, at, _UINT32.unpack_from(data, at)[0] + 1)
    return bytes(counted)


def _entries(data: PackedHour) -> Iterator[tuple[int, int]]:
    n = len(data) // 5
    return zip(data[:n], struct.unpack_from(f"<{n}I", data, n), strict=True)


def pack_hour(row: HourRow) -> PackedHour:
    """An HourRow packed; ValueError for an outcome recmon does not know (a newer version's)
    or a count that does not fit."""
    slots: list[int] = []
    counts: list[int] = []
    try:
        for names, counted in ((_OUTSIDE, row.outcomes), (_INSIDE, row.maintenance)):
            for name, count in counted.items():
                slots.append(names[name])
                counts.append(count)
        for bucket, count in row.latency.items():
            if not 0 <= bucket < BUCKETS:
                raise ValueError(f"no latency bucket {bucket}")
            slots.append(bucket)
            counts.append(count)
        return bytes(slots) + struct.pack(f"<{len(counts)}I", *counts)
    except (KeyError, struct.error) as exc:
        raise ValueError(f"history row not packable: {exc}") from exc


def _decoded(
    data: PackedHour,
) -> tuple[list[tuple[str, int]], list[tuple[str, int]], dict[int, int]]:
    """A packed row's (outcome, count) pairs outside and inside maintenance, in the order first
    counted, and its latency buckets."""
    outcomes: list[tuple[str, int]] = []
    maintenance: list[tuple[str, int]] = []
    latency: dict[int, int] = {}
    for slot, count in _entries(data):
        if slot < BUCKETS:
            latency[slot] = count
        else:
            kept = maintenance if (slot - BUCKETS) % 2 else outcomes
            kept.append((_NAMES[(slot - BUCKETS) // 2], count))
    return outcomes, maintenance, latency


def unpack_hour(data: PackedHour) -> HourRow:
    outcomes, maintenance, latency = _decoded(data)
    return HourRow(dict(outcomes), dict(maintenance), latency)


def packed_text(data: PackedHour) -> str:
    """hour_text(unpack_hour(data)), without the dicts (a save writes every probed row)."""
    outcomes, maintenance, latency = _decoded(data)
    text = '{"o":{' + ",".join([f'"{name}":{count}' for name, count in outcomes]) + "}"
    if maintenance:
        text += ',"m":{' + ",".join([f'"{name}":{count}' for name, count in maintenance]) + "}"
    return text + _sketch_text(latency) + "}"


def hour_to_json(row: HourRow) -> dict[str, Any]:
    data: dict[str, Any] = {"o": dict(row.outcomes)}
    if row.maintenance:
        data["m"] = dict(row.maintenance)
    if row.latency:
        # The first bucket, then the counts from it on: an hour's answers fill a few
        # neighbouring buckets.
        first, last = min(row.latency), max(row.latency)
        data["l"] = [first, *(row.latency.get(b, 0) for b in range(first, last + 1))]
    return data


def hour_text(row: HourRow) -> str:
    """hour_to_json(row) as compact JSON text (json.dumps with separators (",", ":")), built
    by hand: a save writes every probed series' hour row, and json's encoder on the dict was
    most of the CPU of the history's part of a save at 10,000 tenants."""
    text = '{"o":' + _counts_text(row.outcomes)
    if row.maintenance:
        text += ',"m":' + _counts_text(row.maintenance)
    return text + _sketch_text(row.latency) + "}"


def _counts_text(counts: Mapping[str, int]) -> str:
    return "{" + ",".join([f"{_string(k)}:{v}" for k, v in counts.items()]) + "}"


def _sketch_text(latency: Mapping[int, int]) -> str:
    """The latency sketch's member of a row's text ("" when it has none)."""
    if not latency:
        return ""
    first, last = min(latency), max(latency)
    return (
        f',"l":[{first},' + ",".join([str(latency.get(b, 0)) for b in range(first, last + 1)]) + "]"
    )


def hour_from_json(data: Any) -> HourRow:
    try:
        return HourRow(
            {str(k): int(v) for k, v in data["o"].items()},
            {str(k): int(v) for k, v in data.get("m", {}).items()},
            _sketch_from_json(data.get("l", [])),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"unreadable history row: {exc}") from exc


@dataclass(slots=True)
class Totals:
    """Hour rows added up as they are read (a report reads millions: no HourRow each)."""

    good: int = 0
    probes: int = 0
    in_maintenance: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add_json(self, data: Any) -> None:
        """Add one encoded hour row (hour_to_json's form); ValueError if it is not one."""
        try:
            outcomes = data["o"]
            probes = sum(outcomes.values())
            good = outcomes.get("ok", 0)
            excluded = sum(data["m"].values()) if "m" in data else 0
            sketch = data.get("l")
            if sketch:
                first = sketch[0]
                latency = self.latency
                for offset, count in enumerate(sketch[1:], first):
                    latency[offset] += count
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"unreadable history row: {exc}") from exc
        self.probes += probes
        self.good += good
        self.in_maintenance += excluded

    def add(self, other: Totals) -> None:
        self.good += other.good
        self.probes += other.probes
        self.in_maintenance += other.in_maintenance
        self.latency = [a + b for a, b in zip(self.latency, other.latency, strict=True)]

    def quantile(self, q: float) -> float | None:
        return quantile({b: c for b, c in enumerate(self.latency) if c}, q)


def _sketch_from_json(data: Any) -> dict[int, int]:
    if not data:
        return {}
    first = int(data[0])
    return {first + i: int(c) for i, c in enumerate(data[1:]) if c}


@dataclass(frozen=True, slots=True)
class Span:
    """A tenant × check's run of failed probes: from the first failed probe to the next good
    one (`end` None while it lasts), with its outcomes counted."""

    tenant: str
    check: str
    start: float
    last_bad: float
    end: float | None = None
    outcomes: Mapping[str, int] = field(default_factory=dict)

    @property
    def worst(self) -> str:
        return next((o.value for o in WORST_FIRST if o.value in self.outcomes), "")

    @property
    def id(self) -> str:
        return f"{self.tenant}\x1f{self.check}\x1f{round(self.start * 1000)}"


def advance_span(span: Span | None, result: ProbeResult) -> tuple[Span | None, Span | None]:
    """(the span open after `result`, the span to write: opened, extended or closed)."""
    if result.ok:
        if span is None:
            return None, None
        return None, replace(span, end=result.started_at)
    counts = dict(span.outcomes) if span is not None else {}
    counts[result.outcome.value] = counts.get(result.outcome.value, 0) + 1
    if span is None:
        span = Span(result.tenant, result.check, result.started_at, result.started_at)
    span = replace(span, last_bad=result.started_at, outcomes=counts)
    return span, span


def span_to_json(span: Span) -> dict[str, Any]:
    return {
        "tenant": span.tenant,
        "check": span.check,
        "start": span.start,
        "last_bad": span.last_bad,
        "end": span.end,
        "outcomes": dict(span.outcomes),
    }


def span_from_json(data: Any) -> Span:
    try:
        return Span(
            str(data["tenant"]),
            str(data["check"]),
            float(data["start"]),
            float(data["last_bad"]),
            None if data["end"] is None else float(data["end"]),
            {str(k): int(v) for k, v in data["outcomes"].items()},
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"unreadable impact span: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Incident:
    """An alert from its trigger to its resolve, as the notifications told it. `id` is its
    key and start (the trigger's notification id without the action)."""

    id: str
    key: str
    rule: str
    severity: str
    summary: str
    opened_at: float
    closed_at: float | None = None
    tenant: str | None = None
    check: str | None = None
    scope: str = ""  # "tenant", "grouped", "fleet-wide", ...
    tenants: tuple[str, ...] = ()  # a grouped alert's tenants, as far as it listed them
    pages: int = 0  # notifications decided for it (triggers and resolves)
    timeline: tuple[tuple[float, str, str], ...] = ()  # (at, action, summary)


def incident_id(notification: Notification) -> str:
    return f"{notification.key}@{round(notification.started_at * 1000)}"


def apply_notification(
    open_incidents: Mapping[str, Incident], notification: Notification
) -> Incident | None:
    """The incident a notification opens or changes, given the open ones by key (None when
    it concerns none: a resolve for an incident opened before history was kept)."""
    step = (notification.at, notification.action.value, notification.summary)
    current = open_incidents.get(notification.key)
    if notification.action is Action.RESOLVE:
        if current is None:
            return None
        return replace(
            current,
            closed_at=notification.at,
            pages=current.pages + 1,
            timeline=(*current.timeline, step),
        )
    if current is not None:  # sent again (a re-page of the same incident)
        return replace(current, pages=current.pages + 1, timeline=(*current.timeline, step))
    details = notification.details
    listed = details.get("tenants")
    tenants = tuple(str(t) for t in listed) if isinstance(listed, list | tuple) else ()
    scope = notification.labels.get("scope") or (
        "grouped" if notification.labels.get("grouped") else "tenant"
    )
    return Incident(
        id=incident_id(notification),
        key=notification.key,
        rule=notification.rule,
        severity=notification.severity.value,
        summary=notification.summary,
        opened_at=notification.started_at,
        tenant=notification.tenant,
        check=notification.check,
        scope=scope,
        tenants=tenants,
        pages=1,
        timeline=(step,),
    )


def incident_to_json(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "key": incident.key,
        "rule": incident.rule,
        "severity": incident.severity,
        "summary": incident.summary,
        "opened_at": incident.opened_at,
        "closed_at": incident.closed_at,
        "tenant": incident.tenant,
        "check": incident.check,
        "scope": incident.scope,
        "tenants": list(incident.tenants),
        "pages": incident.pages,
        "timeline": [list(step) for step in incident.timeline],
    }


def incident_from_json(data: Any) -> Incident:
    try:
        return Incident(
            id=str(data["id"]),
            key=str(data["key"]),
            rule=str(data["rule"]),
            severity=str(data["severity"]),
            summary=str(data["summary"]),
            opened_at=float(data["opened_at"]),
            closed_at=None if data["closed_at"] is None else float(data["closed_at"]),
            tenant=data.get("tenant"),
            check=data.get("check"),
            scope=str(data.get("scope", "")),
            tenants=tuple(str(t) for t in data.get("tenants", ())),
            pages=int(data.get("pages", 0)),
            timeline=tuple((float(a), str(b), str(c)) for a, b, c in data.get("timeline", ())),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"unreadable incident: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Maintenance:
    """A maintenance window from the configuration, as history keeps it."""

    start: float
    end: float
    tenants: tuple[str, ...] | None = None
    checks: tuple[str, ...] | None = None
    reason: str = ""

    @property
    def id(self) -> str:
        return f"{self.start:.0f}-{self.end:.0f}:{self.tenants}:{self.checks}"

    def covers(self, tenant: str, check: str, at: float) -> bool:
        return (
            self.start <= at < self.end
            and (self.tenants is None or any(fnmatchcase(tenant, p) for p in self.tenants))
            and (self.checks is None or any(fnmatchcase(check, p) for p in self.checks))
        )


def maintenance_from_config(windows: Sequence[MaintenanceWindow]) -> tuple[Maintenance, ...]:
    return tuple(
        Maintenance(
            w.start.timestamp(),
            w.end.timestamp(),
            None if w.tenants is None else tuple(w.tenants),
            None if w.checks is None else tuple(w.checks),
            w.reason,
        )
        for w in windows
    )


def maintenance_to_json(window: Maintenance) -> dict[str, Any]:
    return {
        "start": window.start,
        "end": window.end,
        "tenants": None if window.tenants is None else list(window.tenants),
        "checks": None if window.checks is None else list(window.checks),
        "reason": window.reason,
    }


def maintenance_from_json(data: Any) -> Maintenance:
    try:
        return Maintenance(
            float(data["start"]),
            float(data["end"]),
            None if data.get("tenants") is None else tuple(data["tenants"]),
            None if data.get("checks") is None else tuple(data["checks"]),
            str(data.get("reason", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"unreadable maintenance window: {exc}") from exc


def iso(at: float | None) -> str:
    if at is None:
        return ""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
