"""Certificate rule state to JSON and back (the state file stores it opaque). Unknown or broken
entries raise ValueError."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from monitor.core.certinfo import CertificateInfo
from monitor.detect.codec import alert_from_json, alert_to_json
from monitor.tls.prober import TlsResult
from monitor.tls.rules import HostState, Seen


def tls_hosts_to_json(hosts: Mapping[str, HostState]) -> dict[str, Any]:
    return {
        host: {
            "inconsistent_since": state.inconsistent_since,
            "alerts": {k: alert_to_json(a) for k, a in state.alerts.items()},
            "addresses": {a: _seen_to_json(seen) for a, seen in state.addresses.items()},
            "clear_rounds": dict(state.clear_rounds),
        }
        for host, state in hosts.items()
    }


def tls_hosts_from_json(data: dict[str, Any]) -> dict[str, HostState]:
    try:
        return {
            str(host): HostState(
                None if v.get("inconsistent_since") is None else float(v["inconsistent_since"]),
                {str(k): alert_from_json(a) for k, a in v["alerts"].items()},
                {str(a): _seen_from_json(seen) for a, seen in v.get("addresses", {}).items()},
                {str(k): int(n) for k, n in v.get("clear_rounds", {}).items()},
            )
            for host, v in data.items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"unreadable certificate state: {exc}") from None


def _certificate_to_json(cert: CertificateInfo) -> dict[str, Any]:
    return dataclasses.asdict(cert)


def _certificate_from_json(data: dict[str, Any]) -> CertificateInfo:
    return CertificateInfo(
        subject=str(data["subject"]),
        common_name=None if data.get("common_name") is None else str(data["common_name"]),
        dns_names=tuple(str(n) for n in data["dns_names"]),
        ip_addresses=tuple(str(n) for n in data["ip_addresses"]),
        issuer=str(data["issuer"]),
        serial=str(data["serial"]),
        not_before=float(data["not_before"]),
        not_after=float(data["not_after"]),
        fingerprint_sha256=str(data["fingerprint_sha256"]),
        self_signed=bool(data["self_signed"]),
    )


def _result_to_json(r: TlsResult) -> dict[str, Any]:
    return {
        "host": r.host,
        "port": r.port,
        "address": r.address,
        "server_name": r.server_name,
        "ok": r.ok,
        "reason": r.reason,
        "message": r.message,
        "certificate": None if r.certificate is None else _certificate_to_json(r.certificate),
        "duration_s": r.duration_s,
        "checked_at": r.checked_at,
        "chain": [_certificate_to_json(c) for c in r.chain],
    }


def _result_from_json(data: dict[str, Any]) -> TlsResult:
    cert = data.get("certificate")
    return TlsResult(
        host=str(data["host"]),
        port=int(data["port"]),
        address=str(data["address"]),
        server_name=str(data["server_name"]),
        ok=bool(data["ok"]),
        reason=str(data["reason"]),
        message=str(data["message"]),
        certificate=None if cert is None else _certificate_from_json(cert),
        duration_s=float(data["duration_s"]),
        checked_at=float(data["checked_at"]),
        chain=tuple(_certificate_from_json(c) for c in data.get("chain", [])),
    )


def _seen_to_json(seen: Seen) -> dict[str, Any]:
    return {
        "last": None if seen.last is None else _result_to_json(seen.last),
        "missing_since": seen.missing_since,
        "missing_reason": seen.missing_reason,
    }


def _seen_from_json(data: dict[str, Any]) -> Seen:
    last, since = data.get("last"), data.get("missing_since")
    return Seen(
        last=None if last is None else _result_from_json(last),
        missing_since=None if since is None else float(since),
        missing_reason=str(data.get("missing_reason", "")),
    )
