"""The planner's state to JSON and back (the state file stores it opaque). Unknown or broken
entries raise ValueError."""

from __future__ import annotations

from typing import Any

from monitor.alerting.planner import Group, PlannerState, Resolving
from monitor.core.notifications import Notification
from monitor.detect.codec import event_from_json, event_to_json


def planner_to_json(state: PlannerState) -> dict[str, Any]:
    return {
        "firing": {k: event_to_json(e) for k, e in state.firing.items()},
        "held": dict(state.held),
        "notified": {k: n.to_json() for k, n in state.notified.items()},
        "groups": {k: _group_to_json(g) for k, g in state.groups.items()},
        "folded": dict(state.folded),
        "incidents": {k: list(v) for k, v in state.incidents.items()},
        "resolving": {
            k: {"trigger": r.trigger.to_json(), "summary": r.summary, "due": r.due}
            for k, r in state.resolving.items()
        },
    }


def planner_from_json(data: dict[str, Any]) -> PlannerState:
    try:
        return PlannerState(
            firing={str(k): event_from_json(v) for k, v in data["firing"].items()},
            held={str(k): float(v) for k, v in data["held"].items()},
            notified={str(k): Notification.from_json(v) for k, v in data["notified"].items()},
            groups={str(k): _group_from_json(str(k), v) for k, v in data["groups"].items()},
            # Absent in state files written before fleet incidents: nothing folded.
            folded={str(k): str(v) for k, v in data.get("folded", {}).items()},
            incidents={
                str(k): tuple(float(t) for t in v) for k, v in data.get("incidents", {}).items()
            },
            resolving={
                str(k): Resolving(
                    Notification.from_json(v["trigger"]), str(v["summary"]), float(v["due"])
                )
                for k, v in data.get("resolving", {}).items()
            },
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"unreadable planner state: {exc}") from None


def _group_to_json(group: Group) -> dict[str, Any]:
    return {
        "started_at": group.started_at,
        "trigger": group.trigger.to_json(),
        "fleet_since": group.fleet_since,
        "escalation": None if group.escalation is None else group.escalation.to_json(),
        "opened_with": group.opened_with,
    }


def _group_from_json(key: str, data: dict[str, Any]) -> Group:
    escalation = data.get("escalation")
    fleet_since = data.get("fleet_since")
    trigger = Notification.from_json(data["trigger"])
    return Group(
        key,
        float(data["started_at"]),
        trigger,
        fleet_since=None if fleet_since is None else float(fleet_since),
        escalation=None if escalation is None else Notification.from_json(escalation),
        # Saved before escalations existed: what it lists now is at least what it paged.
        opened_with=int(data.get("opened_with", trigger.details.get("tenant_count", 0))),
    )
