"""Certificate rule state to JSON and back (the state file stores it opaque). Unknown or broken
entries raise ValueError."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.detect.codec import alert_from_json, alert_to_json
from monitor.tls.rules import HostState


def tls_hosts_to_json(hosts: Mapping[str, HostState]) -> dict[str, Any]:
    return {
        host: {
            "inconsistent_since": state.inconsistent_since,
            "alerts": {k: alert_to_json(a) for k, a in state.alerts.items()},
        }
        for host, state in hosts.items()
    }


def tls_hosts_from_json(data: dict[str, Any]) -> dict[str, HostState]:
    try:
        return {
            str(host): HostState(
                None if v.get("inconsistent_since") is None else float(v["inconsistent_since"]),
                {str(k): alert_from_json(a) for k, a in v["alerts"].items()},
            )
            for host, v in data.items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"unreadable certificate state: {exc}") from None
