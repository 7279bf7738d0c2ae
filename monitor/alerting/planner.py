"""From alert events to notifications: storm grouping, group wait, maintenance. Pure.

Many tenants firing the same alert at once (a shared backend broke) become one grouped
incident listing them, not one page per tenant. A new alert waits `group_wait` before paging
alone, so a storm can gather first; an alert that resolves within that wait never pages.

A storm is paged as soon as it has `min_tenants` members, so its first page often names only
the first few tenants; PagerDuty keeps an incident's title when later events share its
dedup_key. So a storm that grows to `fleet_share` of the tenants probed gets one more incident,
the fleet-wide escalation, with its own dedup_key and the scope in its title ("for all 40
tenants"): sent at once when every tenant fires, else one probe interval after the storm
crossed the share (every tenant has been probed since, so the count is the outage's), and
resolved with the storm. A storm whose own first page already said that scope needs none. At
most two incidents per outage; the first page is never held back. Tenants a check skips (no
credential, a variable unset) are not among the tenants it probes: named as skipped, not counted.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from fnmatch import fnmatchcase

from monitor.config.model import FlappingSpec, MaintenanceWindow, StormSpec
from monitor.core.notifications import Action, Notification, Severity
from monitor.core.results import CREDENTIAL_EITHER, CREDENTIAL_TENANT
from monitor.detect.backends import BackendFinding
from monitor.detect.fleet import FOLDS
from monitor.detect.series import AlertEvent, EventKind

# Rules whose pages name the failing backend addresses when failures concentrate there.
_FAILURE_RULES = frozenset(
    ("failures", "error_rate", "fleet_failures", "slo_burn", "slo_slow_burn")
)
# Alerts over the whole fleet (tenant None) and the tenant rules whose alerts they explain:
# the fleet rules', and a check's fleet objective (SLO) burning explains its tenants' own.
_FOLDS = {
    **FOLDS,
    "slo_burn": frozenset({"slo_burn", "slo_slow_burn"}),
    "slo_slow_burn": frozenset({"slo_slow_burn"}),
}
_SEVERITY_ORDER = [Severity.INFO, Severity.WARNING, Severity.ERROR, Severity.CRITICAL]
_SHOWN_TENANTS = 10


@dataclass(frozen=True, slots=True)
class Policy:
    storm: StormSpec
    total_tenants: int
    maintenance: Sequence[MaintenanceWindow] = ()
    # "1/3" when tenants are split across replicas: each replica's storm is its own incident
    # (and carries a shard label), so one replica's recovery never resolves another's.
    shard: str = ""
    # Where this instance probes from: on every page's labels, key and text, so each
    # location's view is its own incident (HA replicas at one location share it).
    location: str = ""
    # False (notify.tenant_pages: rules): tenant alerts page through the cross-location
    # Prometheus rules, not from here; only certificate alerts are planned.
    tenant_pages: bool = True
    # check → its probe interval: how long a fleet-wide storm may keep growing before its
    # escalation is sent.
    intervals: Mapping[str, float] = field(default_factory=dict)
    # check → {tenant: why} for the tenants that check does not probe right now (no key in
    # tenants.credentials, a variable unset, its parent check captured nothing): not part of
    # "the tenants probed", so a fleet's scope is counted without them.
    not_probed: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # check → its target's failures concentrated on some backend addresses, right now: a
    # failure page names them.
    backends: Mapping[str, BackendFinding] = field(default_factory=dict)
    flapping: FlappingSpec = field(default_factory=FlappingSpec)

    def backend_finding(self, rule: str, check: str | None) -> BackendFinding | None:
        return self.backends.get(check or "") if rule in _FAILURE_RULES else None

    def skipped(self, check: str | None, firing: Collection[str]) -> dict[str, str]:
        """Tenants `check` does not probe (and why), but for those still firing from before
        their skip: they count as probed, never "20 of 19"."""
        return {
            t: why for t, why in self.not_probed.get(check or "", {}).items() if t not in firing
        }

    def probed(self, check: str | None, firing: Collection[str]) -> int:
        """How many tenants `check` probes: every tenant but those it skips."""
        return max(0, self.total_tenants - len(self.skipped(check, firing)))

    def fleet_wide(self, firing: Collection[str], check: str | None = None) -> bool:
        probed = self.probed(check, firing)
        return (
            probed > 0
            and len(firing) >= self.storm_threshold
            and len(firing) >= self.storm.fleet_share * probed
        )

    def settle_after(self, check: str | None) -> float:
        return self.intervals.get(check or "", self.storm.group_wait)

    @property
    def storm_threshold(self) -> int:
        threshold = self.storm.min_tenants
        if self.storm.min_share is not None and self.total_tenants:
            threshold = min(threshold, math.ceil(self.storm.min_share * self.total_tenants))
        return max(2, threshold)

    def silenced(self, tenant: str | None, check: str | None, now: float) -> float | None:
        """End of the maintenance window covering this alert now, if any."""
        moment = datetime.fromtimestamp(now, UTC)
        ends = [
            w.end.timestamp()
            for w in self.maintenance
            if w.start <= moment < w.end
            and (
                w.tenants is None
                or (tenant is not None and any(fnmatchcase(tenant, p) for p in w.tenants))
            )
            and (
                w.checks is None
                or (check is not None and any(fnmatchcase(check, p) for p in w.checks))
            )
        ]
        return max(ends) if ends else None


@dataclass(frozen=True, slots=True)
class Group:
    key: str
    started_at: float
    trigger: Notification
    # Since when the storm covers the fleet share (None: it does not, or not yet).
    fleet_since: float | None = None
    # The fleet-wide escalation, once sent: resolved with the group.
    escalation: Notification | None = None
    # Tenants its first page named: an escalation to no larger a scope says nothing new.
    opened_with: int = 0


@dataclass(frozen=True, slots=True)
class Resolving:
    """A flapping alert's resolve, held until it has stayed clear until `due`: firing again
    before then continues the incident without a word."""

    trigger: Notification
    summary: str
    due: float


@dataclass(frozen=True, slots=True)
class PlannerState:
    firing: dict[str, AlertEvent] = field(default_factory=dict)  # key → its firing event
    held: dict[str, float] = field(default_factory=dict)  # key → when it may page alone
    notified: dict[str, Notification] = field(default_factory=dict)  # key → trigger sent
    groups: dict[str, Group] = field(default_factory=dict)  # group key → open storm
    # Tenant alerts a fleet incident explains (key → the fleet alert's key): never paged on
    # their own, also after the fleet incident resolves, until they resolve themselves (a
    # slow-burn window that still holds the outage must not page it a second time).
    folded: dict[str, str] = field(default_factory=dict)
    # key → when its recent incidents were paged (within the flapping window): a second one
    # marks it flapping.
    incidents: dict[str, tuple[float, ...]] = field(default_factory=dict)
    resolving: dict[str, Resolving] = field(default_factory=dict)  # held resolves

    def active_triggers(self) -> list[Notification]:
        """What is paged right now (for Alertmanager's periodic re-send)."""
        return [
            *self.notified.values(),
            *(r.trigger for r in self.resolving.values()),
            *(g.trigger for g in self.groups.values()),
            *(g.escalation for g in self.groups.values() if g.escalation is not None),
        ]


# Rules that say the same thing about a check — it fails — storm together: many tenants
# failing at once is one incident, whether each tenant tripped the fast rule or the slow one.
_STORM_FAMILY = {"error_rate": "failures"}


def group_key(event: AlertEvent, shard: str = "", location: str = "") -> str | None:
    if event.tenant is None:
        return None
    family = _STORM_FAMILY.get(event.rule, event.rule)
    parts = ["recmon", family, event.check or "-", "multiple-tenants"]
    if event.variant and family == event.rule:
        parts.append(event.variant)
    if shard:
        parts.append(f"shard-{shard.replace('/', '-of-')}")
    if location:
        parts.append(f"location-{location}")
    return "/".join(parts)


def located_key(key: str, location: str) -> str:
    """The notification's identity (PagerDuty dedup_key): the alert's, plus the location."""
    return f"{key}/location-{location}" if location else key


def located_text(summary: str, location: str) -> str:
    return f"{summary} (from location {location})" if location else summary


def plan(
    state: PlannerState,
    events: Iterable[AlertEvent],
    now: float,
    policy: Policy,
    *,
    flush: bool = False,
) -> tuple[PlannerState, list[Notification]]:
    """Apply detector events, then release what is due. `flush` releases every held alert at
    once (end of a CronJob round: the whole fleet was just probed, storms are complete)."""
    draft = _Draft.of(state, now - policy.flapping.window)
    _apply_events(draft, events, now, policy)
    members = _storm_members(draft, policy)
    _update_storms(draft, members, now, policy)
    _open_storms(draft, members, now, policy)
    _release_held(draft, now, policy, flush)
    _release_resolving(draft, now)
    return draft.state(), draft.out


@dataclass(slots=True)
class _Draft:
    """The planner's state while one call works on it (copies; the input stays untouched)."""

    firing: dict[str, AlertEvent]
    held: dict[str, float]
    notified: dict[str, Notification]
    groups: dict[str, Group]
    folded: dict[str, str]
    incidents: dict[str, tuple[float, ...]]
    resolving: dict[str, Resolving]
    out: list[Notification] = field(default_factory=list)
    _fleet: list[AlertEvent] | None = None  # cache of `fleet`, dropped when one changes

    @classmethod
    def of(cls, state: PlannerState, flapping_since: float) -> _Draft:
        """A working copy; incidents older than `flapping_since` are forgotten."""
        incidents = {
            key: recent
            for key, times in state.incidents.items()
            if (recent := tuple(t for t in times if t >= flapping_since))
        }
        return cls(
            dict(state.firing),
            dict(state.held),
            dict(state.notified),
            dict(state.groups),
            dict(state.folded),
            incidents,
            dict(state.resolving),
        )

    def state(self) -> PlannerState:
        return PlannerState(
            self.firing,
            self.held,
            self.notified,
            self.groups,
            self.folded,
            self.incidents,
            self.resolving,
        )

    def fleet_cover(self, event: AlertEvent) -> str | None:
        """The key of a firing fleet alert that explains this tenant alert, if any."""
        for fleet in self.fleet:
            if fleet.check == event.check and event.rule in _FOLDS[fleet.rule]:
                return fleet.key
        return None

    @property
    def fleet(self) -> list[AlertEvent]:
        """The firing fleet alerts (few: one per check and rule at most)."""
        if self._fleet is None:
            self._fleet = [e for e in self.firing.values() if e.tenant is None and e.rule in _FOLDS]
        return self._fleet


def _apply_events(draft: _Draft, events: Iterable[AlertEvent], now: float, policy: Policy) -> None:
    """Firing alerts start waiting (alone: not at all; in a storm-able rule: group_wait);
    resolved ones page "resolved" only if they paged at all, a held one just goes away."""
    for event in events:
        if event.tenant is not None and not policy.tenant_pages:
            continue  # paged through the cross-location rules, never from here
        key = event.key
        if event.kind is EventKind.FIRING:
            draft.firing[key] = event
            held_resolve = draft.resolving.pop(key, None)
            if held_resolve is not None:
                # Flapping: firing again before its resolve went out. Still the same incident.
                draft.notified[key] = held_resolve.trigger
                continue
            if event.tenant is None and event.rule in _FOLDS:
                draft._fleet = None
                _fold_waiting(draft, event)
            cover = draft.fleet_cover(event) if event.tenant is not None else None
            if cover is not None and key not in draft.notified:
                draft.folded[key] = cover
                draft.held.pop(key, None)
                continue
            gkey = group_key(event, policy.shard, policy.location)
            # Firing again for an alert already paged or waiting (the detector's state was
            # older than the planner's after a crash): nothing new to say.
            if (
                key not in draft.notified
                and key not in draft.held
                and (gkey is None or gkey not in draft.groups)
            ):
                draft.held[key] = now + (policy.storm.group_wait if gkey is not None else 0.0)
            continue
        if draft.firing.pop(key, None) is not None and event.tenant is None:
            draft._fleet = None
        draft.held.pop(key, None)
        draft.folded.pop(key, None)
        trigger = draft.notified.pop(key, None)
        if trigger is not None:
            location = trigger.labels.get("location", "")
            summary = located_text(event.summary, location)
            if policy.flapping.enabled and len(draft.incidents.get(key, ())) >= 2:
                due = now + policy.flapping.stable_for
                draft.resolving[key] = Resolving(trigger, summary, due)
            else:
                draft.out.append(_resolve(trigger, summary, now))


def _fold_waiting(draft: _Draft, fleet: AlertEvent) -> None:
    """A fleet incident opening: the tenant alerts it explains that wait to page (group wait)
    are folded under it instead."""
    for key in list(draft.held):
        waiting = draft.firing.get(key)
        if (
            waiting is not None
            and waiting.tenant is not None
            and waiting.check == fleet.check
            and waiting.rule in _FOLDS[fleet.rule]
        ):
            del draft.held[key]
            draft.folded[key] = fleet.key


def _storm_members(draft: _Draft, policy: Policy) -> dict[str, list[AlertEvent]]:
    """Firing alerts by the storm they would belong to (folded ones belong to none)."""
    members: dict[str, list[AlertEvent]] = {}
    for event in draft.firing.values():
        if event.key in draft.folded:
            continue
        gkey = group_key(event, policy.shard, policy.location)
        if gkey is not None:
            members.setdefault(gkey, []).append(event)
    return members


def _update_storms(
    draft: _Draft, members: dict[str, list[AlertEvent]], now: float, policy: Policy
) -> None:
    """An open storm closes (with its escalation) when none of its tenants fires any more,
    remembers its peak, and escalates once it is fleet-wide and has settled."""
    for gkey, group in list(draft.groups.items()):
        current = members.get(gkey)
        if not current:
            del draft.groups[gkey]
            draft.out.append(_resolve(group.trigger, _storm_resolved(group.trigger), now))
            if group.escalation is not None:
                summary = _storm_resolved(group.escalation)
                draft.out.append(_resolve(group.escalation, summary, now))
            continue
        if len(current) > group.trigger.details.get("tenant_count", 0):
            # The storm grew: what is paged (and re-sent to Alertmanager, and said on resolve)
            # lists its peak. PagerDuty hears nothing new under this key (the escalation
            # below tells it the scope). The identity stays as paged — severity included, a
            # label in Alertmanager, where a new label set would be a second alert and the
            # first would never be resolved.
            group = replace(group, trigger=_grown(group.trigger, gkey, current, group, policy))
            if group.escalation is not None:
                escalation = _grown(group.escalation, gkey, current, group, policy, fleet=True)
                group = replace(group, escalation=escalation)
        draft.groups[gkey] = _escalate(draft, group, current, now, policy)


def _grown(
    kept: Notification,
    gkey: str,
    current: list[AlertEvent],
    group: Group,
    policy: Policy,
    *,
    fleet: bool = False,
) -> Notification:
    grown = _group_trigger(gkey, current, group.started_at, policy, fleet=fleet)
    return replace(grown, id=kept.id, key=kept.key, at=kept.at, severity=kept.severity)


def _escalate(
    draft: _Draft, group: Group, current: list[AlertEvent], now: float, policy: Policy
) -> Group:
    """The fleet-wide escalation: sent once the storm covers the fleet share and either every
    tenant fires or one probe interval has passed since it crossed (the scope has settled);
    not sent when the storm's own first page already stated that scope."""
    if group.escalation is not None:
        return group
    firing = {e.tenant for e in current if e.tenant}
    count, check = len(firing), group.trigger.check
    if not policy.fleet_wide(firing, check):
        return replace(group, fleet_since=None)
    since = group.fleet_since if group.fleet_since is not None else now
    group = replace(group, fleet_since=since)
    complete = count >= policy.probed(check, firing)
    if not complete and now - since < policy.settle_after(group.trigger.check):
        return group
    if group.opened_with >= count:
        return group  # the storm's first page already said it
    escalation = _group_trigger(group.key, current, now, policy, fleet=True)
    draft.out.append(escalation)
    return replace(group, escalation=escalation)


def _open_storms(
    draft: _Draft, members: dict[str, list[AlertEvent]], now: float, policy: Policy
) -> None:
    """Enough tenants firing the same alert open one grouped incident, which absorbs their
    own pages (unless maintenance covers every one of them)."""
    for gkey, events_in_group in members.items():
        if gkey in draft.groups or len(events_in_group) < policy.storm_threshold:
            continue
        tenants = sorted({e.tenant for e in events_in_group if e.tenant})
        if all(policy.silenced(t, events_in_group[0].check, now) for t in tenants):
            continue
        trigger = _group_trigger(gkey, events_in_group, now, policy)
        check = events_in_group[0].check
        fleet_since = now if policy.fleet_wide(tenants, check) else None
        draft.groups[gkey] = Group(gkey, now, trigger, fleet_since, opened_with=len(tenants))
        draft.out.append(trigger)
        for event in events_in_group:
            draft.held.pop(event.key, None)  # absorbed into the group: no page of its own


def _release_held(draft: _Draft, now: float, policy: Policy, flush: bool) -> None:
    """Alerts that waited long enough page alone (unless maintenance holds them further)."""
    for key, release_at in sorted(draft.held.items(), key=lambda item: item[1]):
        if release_at > now and not flush:
            continue
        waiting = draft.firing.get(key)
        if waiting is None:
            del draft.held[key]
            continue
        silenced_until = policy.silenced(waiting.tenant, waiting.check, now)
        if silenced_until is not None:
            draft.held[key] = silenced_until
            continue
        del draft.held[key]
        finding = policy.backend_finding(waiting.rule, waiting.check)
        trigger = _trigger(waiting, now, policy.shard, policy.location, finding)
        earlier = draft.incidents.get(key, ())
        draft.incidents[key] = (*earlier, now)
        if earlier and policy.flapping.enabled:
            trigger = _flapping(trigger, now - earlier[-1], policy.flapping)
        draft.notified[key] = trigger
        draft.out.append(trigger)


def _flapping(trigger: Notification, since_last: float, spec: FlappingSpec) -> Notification:
    """A trigger paged again soon after its last incident: it says so, and that it stays open
    until it has been clear for `stable_for`."""
    note = (
        f"; flapping: paged again {_duration(since_last)} after its last incident, held open "
        f"until clear for {_duration(spec.stable_for)}"
    )
    return replace(
        trigger,
        summary=trigger.summary + note,
        details={**trigger.details, "flapping": True},
    )


def _duration(seconds: float) -> str:
    if seconds >= 90 * 60:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 90:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"


def _release_resolving(draft: _Draft, now: float) -> None:
    """Flapping alerts that stayed clear long enough resolve now."""
    for key, held in list(draft.resolving.items()):
        if held.due <= now:
            del draft.resolving[key]
            draft.out.append(_resolve(held.trigger, held.summary, now))


def _notification_id(key: str, started_at: float, action: Action) -> str:
    return f"{key}@{round(started_at * 1000)}:{action.value}"


def _trigger(
    event: AlertEvent,
    now: float,
    shard: str = "",
    location: str = "",
    backends: BackendFinding | None = None,
) -> Notification:
    labels = {"outcome": event.variant} if event.rule == "error_rate" and event.variant else {}
    if event.rule.startswith("tls_") and event.variant:
        labels = {"host": event.variant}
    if event.rule.startswith("tls_client_") and event.variant:
        # recmon's own certificate for a target: also labelled as the Prometheus rules do.
        labels["target"] = event.variant.removeprefix("client:")
    if event.rule in FOLDS:
        labels = {"scope": "fleet-wide"}  # a fleet incident: the scope of every tenant
    if shard:
        labels = {**labels, "shard": shard}
    if location:
        labels = {**labels, "location": location}
    key = located_key(event.key, location)
    return Notification(
        id=_notification_id(key, event.started_at, Action.TRIGGER),
        key=key,
        action=Action.TRIGGER,
        rule=event.rule,
        severity=event.severity,
        summary=located_text(_with_backends(event.summary, backends), location),
        started_at=event.started_at,
        at=now,
        tenant=event.tenant,
        check=event.check,
        labels=labels,
        details={
            **event.details,
            **({"backends": backends.details()} if backends is not None else {}),
        },
    )


def _with_backends(text: str, finding: BackendFinding | None) -> str:
    return f"{text}; {finding.text}" if finding is not None else text


def _storm_resolved(trigger: Notification) -> str:
    """A storm's resolve says what holds now — none of its tenants fires — and what it was at
    its peak, without the cause note (true of the fault, not of the recovery)."""
    was = trigger.summary.split("; ", 1)[0]
    return f"resolved: {was} at its peak; none of them fires now"


def _resolve(trigger: Notification, summary: str, now: float) -> Notification:
    return replace(
        trigger,
        id=_notification_id(trigger.key, trigger.started_at, Action.RESOLVE),
        action=Action.RESOLVE,
        summary=summary,
        at=now,
    )


def _credentials_summary(
    check: str | None, events: list[AlertEvent], who: str, everyone: bool
) -> str:
    """Every tenant refused, or a credential recmon shares between them refused: recmon's own
    credentials are the problem. Some tenants' own keys refused: those keys are."""
    # The tenant's key and recmon's credential both sent ("either"): some tenants refused are
    # their keys, every tenant refused is recmon's (`everyone`).
    shared = any(
        e.details.get("credential") not in (CREDENTIAL_TENANT, CREDENTIAL_EITHER) for e in events
    )
    if shared or everyone:
        return (
            f"probe credentials rejected: {check} refuses recmon's credentials for {who}; "
            "renew recmon's credentials, not a platform outage"
        )
    return f"{check} rejects the credentials of {who}; check those tenants' keys"


def _group_trigger(
    gkey: str, events: list[AlertEvent], now: float, policy: Policy, *, fleet: bool = False
) -> Notification:
    """The grouped incident (`now`: when the storm opened), or with `fleet` its fleet-wide
    escalation (`now`: when it was sent)."""
    events = sorted(events, key=lambda e: e.tenant or "")
    tenants = sorted({e.tenant for e in events if e.tenant})
    first = events[0]
    rule = _STORM_FAMILY.get(first.rule, first.rule)
    severity = max((e.severity for e in events), key=_SEVERITY_ORDER.index)
    healthy_parent = [e for e in events if e.details.get("parent_healthy")]
    note = ""
    if healthy_parent and len(healthy_parent) * 2 >= len(events):
        parent = healthy_parent[0].details.get("parent_check")
        note = (
            f"; {parent} is healthy for {len(healthy_parent)} of them, so the hop from the API "
            "to this check's backend is the likely cause"
        )
    outcomes = sorted(
        {e.variant for e in events if e.rule == "error_rate"}
        | {o for e in events if e.rule == "failures" for o in e.details.get("outcomes", {})}
    )
    what = {
        "empty_results": "returned no items",
        "failures": "is failing" + (f" ({', '.join(outcomes)})" if outcomes else ""),
        "latency_drift": "p95 latency is above its baseline",
        "latency_slo": "p95 latency is above its objective",
    }.get(rule, rule)
    skipped = policy.skipped(first.check, tenants)
    count, total = len(tenants), policy.probed(first.check, tenants)
    scope = "storm"
    if policy.fleet_wide(tenants, first.check):
        scope = "all" if count >= total else "fleet-wide"
    if scope == "all":
        who = f"all {count} tenants"
    elif scope == "fleet-wide":
        who = f"{count} of {total} tenants ({count / total:.0%})"
    else:
        shown = ", ".join(tenants[:_SHOWN_TENANTS])
        more = f" and {count - _SHOWN_TENANTS} more" if count > _SHOWN_TENANTS else ""
        who = f"{count} tenants ({shown}{more})"
    text = f"{first.check} {what} for {who}{note}"
    if rule == "auth_errors":
        text = _credentials_summary(first.check, events, who, everyone=scope == "all")
    if skipped and scope != "storm":
        names = sorted(skipped)
        more = f" and {len(names) - _SHOWN_TENANTS} more" if len(names) > _SHOWN_TENANTS else ""
        text += f" ({', '.join(names[:_SHOWN_TENANTS])}{more} skipped, not probed)"
    backends = policy.backend_finding(rule, first.check)
    summary = located_text(_with_backends(text, backends), policy.location)
    key = f"{gkey}/fleet-wide" if fleet else gkey
    labels = {"grouped": "true"}
    if fleet:
        labels["scope"] = "fleet-wide"
    if policy.shard:
        labels["shard"] = policy.shard
    if policy.location:
        labels["location"] = policy.location
    return Notification(
        id=_notification_id(key, now, Action.TRIGGER),
        key=key,
        action=Action.TRIGGER,
        rule=rule,
        severity=severity,
        summary=summary,
        started_at=now,
        at=now,
        tenant=None,
        check=first.check,
        labels=labels,
        details={
            "scope": scope,
            "tenant_count": count,
            "total_tenants": total,
            "share": round(count / total, 4) if total else None,
            "tenants": tenants,
            "samples": [e.summary for e in events[:3]],
            **({"not_probed": dict(sorted(skipped.items()))} if skipped else {}),
            **({"storm_key": gkey} if fleet else {}),
            **({"backends": backends.details()} if backends is not None else {}),
        },
    )
