"""Certificate rules for one host, pure: (state, every address's result, now) → (state, events).

- tls_inconsistent (warning): addresses serve different certificates for longer than the
  grace period — a rotation left some backends behind.
- tls_expiring (warning) / tls_expiring_soon (critical): the earliest expiry among the
  addresses' still-valid certificates is within warn_before / critical_before.
- tls_invalid (critical): some address serves an expired, not yet valid, untrusted or wrongly
  named certificate; the alert names the addresses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitor.config.model import TlsSpec
from monitor.core.certinfo import CertificateInfo
from monitor.core.notifications import Severity
from monitor.detect.lifecycle import Subject, Verdict, advance
from monitor.detect.state import AlertEvent, AlertState
from monitor.tls.prober import TlsResult

TLS_CHECK = "tls"


@dataclass(frozen=True, slots=True)
class HostState:
    inconsistent_since: float | None = None
    alerts: Mapping[str, AlertState] = field(default_factory=dict)


def _day(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _short(fingerprint: str) -> str:
    return fingerprint[:16]


def observe_host(
    state: HostState, host: str, results: Sequence[TlsResult], now: float, spec: TlsSpec
) -> tuple[HostState, list[AlertEvent]]:
    """Read each certificate rule's verdict from the round's results, then move each rule's
    alert along the lifecycle every rule shares (monitor/detect/lifecycle.py)."""
    served = [(r, r.certificate) for r in results if r.certificate is not None]
    since, inconsistent = _inconsistency(state, host, served, now, spec)
    verdicts = {
        "tls_inconsistent": inconsistent,
        **_expiry(host, served, now, spec),
        "tls_invalid": _invalid(host, results),
    }
    alerts = dict(state.alerts)
    subject = Subject(None, TLS_CHECK)
    events: list[AlertEvent] = []
    for rule, verdict in verdicts.items():
        event = advance(
            alerts,
            rule,
            verdict,
            severity=SEVERITY[rule],
            now=now,
            subject=subject,
            variant=host,
        )
        if event is not None:
            events.append(event)
    return HostState(since, alerts), events


SEVERITY = {
    "tls_inconsistent": Severity.WARNING,
    "tls_expiring": Severity.WARNING,
    "tls_expiring_soon": Severity.CRITICAL,
    "tls_invalid": Severity.CRITICAL,
}
Served = Sequence[tuple[TlsResult, CertificateInfo]]


def _verdict(active: bool, summary: str, details: dict[str, Any]) -> Verdict:
    return Verdict(active, not active, lambda: (summary, details))


def _inconsistency(
    state: HostState, host: str, served: Served, now: float, spec: TlsSpec
) -> tuple[float | None, Verdict]:
    """More than one certificate across the addresses, for longer than the grace period."""
    by_fingerprint: dict[str, list[str]] = {}
    not_after: dict[str, float] = {}
    for r, cert in served:
        by_fingerprint.setdefault(cert.fingerprint_sha256, []).append(r.address)
        not_after[cert.fingerprint_sha256] = cert.not_after
    inconsistent = len(by_fingerprint) > 1
    since = (state.inconsistent_since or now) if inconsistent else None
    described = "; ".join(
        f"{', '.join(sorted(addresses))} serve {_short(fp)}… (expires {_day(not_after[fp])})"
        for fp, addresses in sorted(by_fingerprint.items(), key=lambda item: -len(item[1]))
    )
    return since, _verdict(
        since is not None and now - since >= spec.inconsistency_grace,
        f"{host}: backends serve {len(by_fingerprint)} different certificates — a rotation did "
        f"not reach every backend: {described}",
        {
            "host": host,
            "certificates": {fp: sorted(addresses) for fp, addresses in by_fingerprint.items()},
            "inconsistent_since": since,
        },
    )


def _expiry(host: str, served: Served, now: float, spec: TlsSpec) -> dict[str, Verdict]:
    """The earliest expiry among certificates that are still valid (an invalid one is
    tls_invalid's business), leaves and the intermediates served with them alike."""
    valid = [(r, c) for r, cert in served if not r.invalid for c in (cert, *r.chain)]
    earliest = min((cert for _, cert in valid), key=lambda cert: cert.not_after, default=None)
    text: str = ""
    details: dict[str, Any] = {"host": host}
    soon = expiring = False
    if earliest is not None:
        left = earliest.not_after - now
        soon = left < spec.critical_before
        expiring = not soon and left < spec.warn_before
        holders = sorted(
            {r.address for r, c in valid if c.fingerprint_sha256 == earliest.fingerprint_sha256}
        )
        what = (
            "certificate"
            if any(r.certificate is earliest for r, _ in valid)
            else f"intermediate CA certificate {earliest.subject}"
        )
        text = (
            f"{host}: {what} {_short(earliest.fingerprint_sha256)}… served by "
            f"{', '.join(holders)} expires in {left / 86400:.1f} days ({_day(earliest.not_after)})"
        )
        details = {
            "host": host,
            "addresses": holders,
            "not_after": earliest.not_after,
            "days_left": round(left / 86400, 2),
            "fingerprint_sha256": earliest.fingerprint_sha256,
        }
    return {
        "tls_expiring": _verdict(expiring, text, details),
        "tls_expiring_soon": _verdict(soon, text, details),
    }


def _invalid(host: str, results: Sequence[TlsResult]) -> Verdict:
    """Any address serving a certificate clients reject."""
    invalid = sorted((r for r in results if r.invalid), key=lambda r: r.address)
    return _verdict(
        bool(invalid),
        f"{host}: {len(invalid)} of {len(results)} backends serve an invalid certificate: "
        + "; ".join(f"{r.address} {r.reason} ({r.message})" for r in invalid),
        {
            "host": host,
            "addresses": {r.address: r.reason for r in invalid},
            "fingerprints": {
                r.address: r.certificate.fingerprint_sha256 for r in invalid if r.certificate
            },
        },
    )
