"""The planner's state to JSON and back (the state file stores it opaque). Unknown or broken
entries raise ValueError."""

from __future__ import annotations

from typing import Any

from monitor.alerting.planner import Group, PlannerState
from monitor.core.notifications import Notification
from monitor.detect.codec import event_from_json, event_to_json


def planner_to_json(state: PlannerState) -> dict[str, Any]:
    return {
        "firing": {k: event_to_json(e) for k, e in state.firing.items()},
        "held": dict(state.held),
        "notified": {k: n.to_json() for k, n in state.notified.items()},
        "groups": {
            k: {"started_at": g.started_at, "trigger": g.trigger.to_json()}
            for k, g in state.groups.items()
        },
    }


def planner_from_json(data: dict[str, Any]) -> PlannerState:
    try:
        return PlannerState(
            firing={str(k): event_from_json(v) for k, v in data["firing"].items()},
            held={str(k): float(v) for k, v in data["held"].items()},
            notified={str(k): Notification.from_json(v) for k, v in data["notified"].items()},
            groups={
                str(k): Group(str(k), float(v["started_at"]), Notification.from_json(v["trigger"]))
                for k, v in data["groups"].items()
            },
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"unreadable planner state: {exc}") from None
