"""The history recorder: every probe result into its tenant × check × hour row and its impact
span, every decided notification into its incident; what changed since the last save handed
to app.persist as one HistoryWrite (an UPSERT per changed row, never the whole history).

It runs on the event loop (a result listener of the Monitor, and the route after the
notification pipeline); the save takes a snapshot here and writes it from a worker thread.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass

from monitor.alerting.hub import Decision, Route
from monitor.config.model import MaintenanceWindow
from monitor.core.clock import Clock
from monitor.core.notifications import Notification
from monitor.core.results import ProbeResult
from monitor.detect.history import (
    EMPTY_HOUR,
    HOUR,
    RETENTION_S,
    Incident,
    Maintenance,
    PackedHour,
    Span,
    add_result,
    advance_span,
    apply_notification,
    hour_from_json,
    hour_of,
    incident_from_json,
    incident_to_json,
    maintenance_from_config,
    maintenance_to_json,
    pack_hour,
    packed_text,
    span_from_json,
    span_to_json,
)
from monitor.state.store import HistoryWrite, StateStore

log = logging.getLogger("recmon.history")

HourKey = tuple[str, str, int]
EventKey = tuple[str, str]  # (kind, id)
_dumps = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class HistorySnapshot:
    """What a save writes: the objects changed since the last one (immutable), taken on the
    loop, and their text (`write`), encoded where it is read: in the saving thread."""

    hours: Mapping[HourKey, PackedHour]
    events: Mapping[EventKey, tuple[float, object]]  # (kind, id) → (start, event)
    prune_before: float | None = None

    def without(self, series: Container[tuple[str, str]]) -> HistorySnapshot:
        """The snapshot without the hour rows of `series` (tenant, check): a save leaves them
        for a later one (app.persist.SAVE_TURNS); events and pruning as they were."""
        if not series:
            return self
        hours = {key: row for key, row in self.hours.items() if (key[0], key[1]) not in series}
        return HistorySnapshot(hours, self.events, self.prune_before)

    @property
    def write(self) -> HistoryWrite:
        return HistoryWrite(
            [(t, c, h, packed_text(row)) for (t, c, h), row in self.hours.items()],
            [
                (kind, id_, at, _dumps(_encode(value)))
                for (kind, id_), (at, value) in self.events.items()
            ],
            self.prune_before,
        )


class HistoryRecorder:
    def __init__(
        self,
        clock: Clock,
        maintenance: Sequence[MaintenanceWindow] = (),
        *,
        retention: float = RETENTION_S,
    ) -> None:
        self.clock = clock
        self.retention = retention
        self.maintenance: tuple[Maintenance, ...] = maintenance_from_config(maintenance)
        # Packed rows (detect.history.PackedHour): each series' current and previous hour.
        self._hours: dict[HourKey, PackedHour] = {}
        self._hour = 0  # the latest hour's int, shared by its keys (not one int per key)
        self._dirty_hours: set[HourKey] = set()
        self._spans: dict[tuple[str, str], Span] = {}  # open ones
        self._incidents: dict[str, Incident] = {}  # open ones, by alert key
        self._events: dict[EventKey, tuple[float, object]] = {}  # changed since the last save
        self._pruned_at = -float("inf")
        for window in self.maintenance:
            self._events[("maintenance", window.id)] = (window.start, window)

    # --- recording ------------------------------------------------------------------------------

    def observe(self, result: ProbeResult) -> None:
        """A result listener: one probe into its hour row and its span."""
        at = result.started_at
        hour = hour_of(at)
        if hour == self._hour:
            hour = self._hour
        elif hour > self._hour:
            self._hour = hour
        tenant = result.tenant
        check = result.check
        key = (tenant, check, hour)
        # No generator to build when no window is configured (the usual case).
        inside = bool(self.maintenance) and any(
            w.covers(tenant, check, at) for w in self.maintenance
        )
        hours = self._hours
        hours[key] = add_result(hours.get(key, EMPTY_HOUR), result, in_maintenance=inside)
        self._dirty_hours.add(key)
        series = (tenant, check)
        open_span = self._spans.get(series)
        if open_span is None and result.ok:
            return  # an ok probe of a series with no open span (most probes): no span to write
        span, changed = advance_span(open_span, result)
        if span is None:
            self._spans.pop(series, None)
        else:
            self._spans[series] = span
        if changed is not None:
            self._events[("span", changed.id)] = (changed.start, changed)

    def record(self, notifications: Sequence[Notification]) -> None:
        for notification in notifications:
            incident = apply_notification(self._incidents, notification)
            if incident is None:
                continue
            if incident.closed_at is None:
                self._incidents[incident.key] = incident
            else:
                self._incidents.pop(incident.key, None)
            self._events[("incident", incident.id)] = (incident.opened_at, incident)

    def routed(self, route: Route) -> Callable[[Decision], None]:
        """`route`, then the decided notifications recorded as incidents."""

        def route_and_record(decision: Decision) -> None:
            route(decision)
            self.record(decision.notifications)

        return route_and_record

    # --- saving ---------------------------------------------------------------------------------

    def restore(self, store: StateStore) -> None:
        """The current hour's rows, open spans and open incidents from the state file, so a
        restart adds to them instead of overwriting them."""
        now = self.clock.time()
        read = store.read_history(hour_of(now) - HOUR, float("inf"), events_since=now - 7 * 86400)
        for tenant, check, hour, text in read.hours:
            key = (tenant, check, int(hour))
            if key in self._hours:
                continue
            try:
                self._hours[key] = pack_hour(hour_from_json(json.loads(text)))
            except ValueError:
                log.warning("unreadable history row skipped", extra={"fields": {"hour": hour}})
        for kind, _, text in read.events:
            try:
                if kind == "span":
                    span = span_from_json(json.loads(text))
                    if span.end is None:
                        self._spans.setdefault((span.tenant, span.check), span)
                elif kind == "incident":
                    incident = incident_from_json(json.loads(text))
                    if incident.closed_at is None:
                        self._incidents.setdefault(incident.key, incident)
            except ValueError:
                log.warning("unreadable history event skipped", extra={"fields": {"kind": kind}})

    def changes(self) -> HistorySnapshot:
        """What changed since the last good save (call on the loop; its `write`, the text,
        is encoded where it is read)."""
        now = self.clock.time()
        hours = self._hours
        prune = None
        if now - self._pruned_at >= HOUR:
            prune = now - self.retention
        return HistorySnapshot(
            {key: hours[key] for key in self._dirty_hours}, dict(self._events), prune
        )

    def written(self, snapshot: HistorySnapshot) -> None:
        """The snapshot is in the file: forget what did not change since, and the rows of
        hours that are over."""
        for key, row in snapshot.hours.items():
            if self._hours.get(key) is row:
                self._dirty_hours.discard(key)
        for event_key, (_, value) in snapshot.events.items():
            held = self._events.get(event_key)
            if held is not None and held[1] is value:
                del self._events[event_key]
        if snapshot.prune_before is not None:
            self._pruned_at = self.clock.time()
        current = hour_of(self.clock.time())
        for key in [k for k in self._hours if k[2] < current - HOUR and k not in self._dirty_hours]:
            del self._hours[key]


def _encode(value: object) -> object:
    if isinstance(value, Span):
        return span_to_json(value)
    if isinstance(value, Incident):
        return incident_to_json(value)
    if isinstance(value, Maintenance):
        return maintenance_to_json(value)
    raise TypeError(type(value).__name__)
