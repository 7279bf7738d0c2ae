"""Certificate rules for one host, pure: (state, every address's result, now) → (state, events).

- tls_inconsistent (warning): addresses serve different certificates for longer than the
  grace period — a rotation left some backends behind.
- tls_expiring (warning) / tls_expiring_soon (critical): the earliest expiry among the
  addresses' still-valid certificates is within warn_before / critical_before. Each stays open
  until the certificate it named is no longer served — a warning already open beside the
  critical, the critical beside tls_invalid once it expires: no incident closes as things get
  worse.
- tls_invalid (critical): some address serves an expired, not yet valid, untrusted or wrongly
  named certificate; the alert names the addresses.
- tls_unreachable (warning): an address has served no certificate for longer than
  `unreachable_after`.
- tls_client_expiring (warning) / tls_client_expiring_soon (critical): recmon's own client
  certificate for a target (mTLS) expires within warn_before / critical_before, or has.

Judged on what is known: an address that cannot be reached in a round keeps the certificate it
served last in the judgement for up to `unreachable_after`, so a backend that blips neither
resolves an incident nor opens a new one. Every certificate alert resolves only after
`success_threshold` consecutive rounds clear, like the tenant rules' success thresholds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from monitor.config.model import TlsSpec
from monitor.core.certinfo import CertificateInfo
from monitor.core.notifications import Severity
from monitor.detect.lifecycle import Description, Subject, Verdict, advance
from monitor.detect.series import AlertEvent, AlertState
from monitor.tls.prober import TlsResult

TLS_CHECK = "tls"
Describe = Callable[[], Description]
# Reasons a round had no certificate from an address: it could not be reached for the check.
UNREACHABLE_REASONS = frozenset(("connect_error", "timeout", "handshake"))


@dataclass(frozen=True, slots=True)
class Seen:
    """An address as the rules remember it: the last round it served a certificate, and since
    when (and why) it has served none."""

    last: TlsResult | None = None
    missing_since: float | None = None
    missing_reason: str = ""


@dataclass(frozen=True, slots=True)
class HostState:
    inconsistent_since: float | None = None
    alerts: Mapping[str, AlertState] = field(default_factory=dict)
    addresses: Mapping[str, Seen] = field(default_factory=dict)
    # rule → consecutive rounds its condition has been clear (the success threshold).
    clear_rounds: Mapping[str, int] = field(default_factory=dict)


def _day(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _short(fingerprint: str) -> str:
    return fingerprint[:16]


def _span(seconds: float) -> str:
    """A stretch of time as a page says it: 40s, 15m, 3.5h, 2.0d."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3 * 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _serve(addresses: Sequence[str]) -> str:
    return "serves" if len(addresses) == 1 else "serve"


def observe_host(
    state: HostState, host: str, results: Sequence[TlsResult], now: float, spec: TlsSpec
) -> tuple[HostState, list[AlertEvent]]:
    """Remember what each address served, read each certificate rule's verdict from what is
    known, then move each rule's alert along the lifecycle every rule shares
    (monitor/detect/lifecycle.py)."""
    addresses, judged, unreachable = _remember(state, results, now, spec)
    served = [(r, r.certificate) for r in judged if r.certificate is not None]
    since, inconsistent = _inconsistency(state, host, served, now, spec)
    readings = {
        "tls_inconsistent": inconsistent,
        **_expiry(state, host, served, now, spec),
        "tls_invalid": _invalid(host, judged, len(addresses)),
        "tls_unreachable": _unreachable(host, unreachable, addresses, now, spec),
    }
    clear_rounds = {
        rule: 0 if active else state.clear_rounds.get(rule, 0) + 1
        for rule, (active, _) in readings.items()
    }
    alerts = dict(state.alerts)
    subject = Subject(None, TLS_CHECK)
    events: list[AlertEvent] = []
    for rule, (active, describe) in readings.items():
        # Resolves only after consecutive clear rounds; one good round proves little.
        verdict = Verdict(active, clear_rounds[rule] >= spec.success_threshold, describe)
        event = advance(
            alerts, rule, verdict, severity=SEVERITY[rule], now=now, subject=subject, variant=host
        )
        if event is not None:
            events.append(event)
    return HostState(since, alerts, addresses, clear_rounds), events


def _remember(
    state: HostState, results: Sequence[TlsResult], now: float, spec: TlsSpec
) -> tuple[dict[str, Seen], list[TlsResult], list[str]]:
    """What each address is judged on this round: what it served now, or, while it cannot be
    reached, what it served last (for up to `unreachable_after`). Also the addresses that have
    served nothing for longer than that. An address that left the host's address list (no
    DNS failure this round) is forgotten."""
    dns_failed = any(r.reason == "dns_error" for r in results)
    listed = {r.address for r in results if r.address}
    addresses: dict[str, Seen] = {
        a: seen for a, seen in state.addresses.items() if dns_failed or a in listed
    }
    judged: list[TlsResult] = []
    for r in results:
        if not r.address:
            continue
        if r.certificate is not None or r.reason not in UNREACHABLE_REASONS:
            addresses[r.address] = Seen(last=r)
            judged.append(r)
            continue
        seen = addresses.get(r.address) or Seen()
        addresses[r.address] = seen = replace(
            seen,
            missing_since=seen.missing_since if seen.missing_since is not None else now,
            missing_reason=f"{r.reason}: {r.message}"[:200],
        )
    unreachable = []
    for address, seen in sorted(addresses.items()):
        if address not in listed:  # DNS failed this round: unreachable too
            seen = addresses[address] = replace(
                seen,
                missing_since=seen.missing_since if seen.missing_since is not None else now,
                missing_reason=seen.missing_reason or "dns_error",
            )
        elif seen.missing_since is None:
            continue
        assert seen.missing_since is not None
        if now - seen.missing_since < spec.unreachable_after and seen.last is not None:
            judged.append(seen.last)  # remembered: judged on what it served last
        elif now - seen.missing_since >= spec.unreachable_after:
            unreachable.append(address)
    return addresses, judged, unreachable


SEVERITY = {
    "tls_inconsistent": Severity.WARNING,
    "tls_expiring": Severity.WARNING,
    "tls_expiring_soon": Severity.CRITICAL,
    "tls_invalid": Severity.CRITICAL,
    "tls_unreachable": Severity.WARNING,
    "tls_client_expiring": Severity.WARNING,
    "tls_client_expiring_soon": Severity.CRITICAL,
}
CLIENT_PREFIX = "client:"  # a client certificate's alerts are kept as the host "client:<target>"


def observe_client_certificate(
    state: HostState, target: str, cert: CertificateInfo | None, now: float, spec: TlsSpec
) -> tuple[HostState, list[AlertEvent]]:
    """recmon's own certificate for a target: paged before it lapses, since the server will
    refuse every probe from then on. An unreadable file changes nothing (it is logged)."""
    if cert is None:
        return state, []
    left = cert.not_after - now
    soon = left < spec.critical_before
    expiring = not soon and left < spec.warn_before
    when = (
        f"expired {-left / 86400:.1f} days ago ({_day(cert.not_after)}): the server refuses "
        "recmon's probes"
        if left < 0
        else f"expires in {left / 86400:.1f} days ({_day(cert.not_after)}): renew it before "
        "the server refuses recmon's probes"
    )
    text = f"client certificate of target {target} ({cert.subject}, serial {cert.serial}) {when}"
    details: dict[str, Any] = {
        "target": target,
        "subject": cert.subject,
        "serial": cert.serial,
        "not_after": cert.not_after,
        "days_left": round(left / 86400, 2),
        "fingerprint_sha256": cert.fingerprint_sha256,
    }
    # (active, clear): the warning stays open beside the critical — an incident never closes
    # as things get worse — and both clear once a renewed certificate is in the file.
    readings = {
        "tls_client_expiring": (expiring, not (expiring or soon)),
        "tls_client_expiring_soon": (soon, not soon),
    }
    alerts = dict(state.alerts)
    events: list[AlertEvent] = []
    for rule, (active, clear) in readings.items():
        verdict = Verdict(active, clear, lambda: (text, details))
        event = advance(
            alerts,
            rule,
            verdict,
            severity=SEVERITY[rule],
            now=now,
            subject=Subject(None, TLS_CHECK),
            variant=CLIENT_PREFIX + target,
        )
        if event is not None:
            events.append(event)
    return HostState(None, alerts), events


Served = Sequence[tuple[TlsResult, CertificateInfo]]
Reading = tuple[bool, Describe]


def _reading(active: bool, summary: str, details: dict[str, Any]) -> Reading:
    return active, lambda: (summary, details)


def _inconsistency(
    state: HostState, host: str, served: Served, now: float, spec: TlsSpec
) -> tuple[float | None, Reading]:
    """More than one certificate across the addresses, for longer than the grace period."""
    by_fingerprint: dict[str, list[str]] = {}
    not_after: dict[str, float] = {}
    for r, cert in served:
        by_fingerprint.setdefault(cert.fingerprint_sha256, []).append(r.address)
        not_after[cert.fingerprint_sha256] = cert.not_after
    inconsistent = len(by_fingerprint) > 1
    since = (state.inconsistent_since or now) if inconsistent else None
    described = "; ".join(
        f"{', '.join(sorted(addresses))} {_serve(addresses)} {_short(fp)}… "
        f"(expires {_day(not_after[fp])})"
        for fp, addresses in sorted(by_fingerprint.items(), key=lambda item: -len(item[1]))
    )
    return since, _reading(
        since is not None and now - since >= spec.inconsistency_grace,
        f"{host}: backends serve {len(by_fingerprint)} different certificates — a rotation did "
        f"not reach every backend: {described}",
        {
            "host": host,
            "certificates": {fp: sorted(addresses) for fp, addresses in by_fingerprint.items()},
            "inconsistent_since": since,
        },
    )


def _expiry(
    state: HostState, host: str, served: Served, now: float, spec: TlsSpec
) -> dict[str, Reading]:
    """The earliest expiry among certificates that are still valid (an invalid one is
    tls_invalid's business), leaves and the intermediates served with them alike — and, while
    an expiry alert fires, the certificate it named even once expired. An expiry alert stays
    open until the certificate it named is gone: the warning while the critical fires, the
    critical beside tls_invalid. No incident closes as things get worse."""
    named = {
        alert.details.get("fingerprint_sha256")
        for rule in ("tls_expiring", "tls_expiring_soon")
        if (alert := state.alerts.get(rule)) is not None
    }
    valid = [
        (r, c)
        for r, cert in served
        if not r.invalid or (r.reason == "expired" and cert.fingerprint_sha256 in named)
        for c in (cert, *r.chain)
    ]
    earliest = min((cert for _, cert in valid), key=lambda cert: cert.not_after, default=None)
    text: str = ""
    details: dict[str, Any] = {"host": host}
    soon = expiring = False
    if earliest is not None:
        left = earliest.not_after - now
        soon = left < spec.critical_before
        # A warning already open stays open beside the critical (it would close just as
        # things got worse); a certificate first seen within critical_before pages once.
        expiring = left < spec.warn_before and (not soon or "tls_expiring" in state.alerts)
        holders = sorted(
            {r.address for r, c in valid if c.fingerprint_sha256 == earliest.fingerprint_sha256}
        )
        what = (
            "certificate"
            if any(r.certificate is earliest for r, _ in valid)
            else f"intermediate CA certificate {earliest.subject}"
        )
        when = (
            f"expires in {left / 86400:.1f} days"
            if left >= 0
            else f"expired {_span(-left)} ago and is still served"
        )
        text = (
            f"{host}: {what} {_short(earliest.fingerprint_sha256)}… served by "
            f"{', '.join(holders)} {when} ({_day(earliest.not_after)})"
        )
        details = {
            "host": host,
            "addresses": holders,
            "not_after": earliest.not_after,
            "days_left": round(left / 86400, 2),
            "fingerprint_sha256": earliest.fingerprint_sha256,
        }
    return {
        "tls_expiring": _reading(expiring, text, details),
        "tls_expiring_soon": _reading(soon, text, details),
    }


def _invalid(host: str, results: Sequence[TlsResult], backends: int) -> Reading:
    """Any address serving a certificate clients reject."""
    invalid = sorted((r for r in results if r.invalid), key=lambda r: r.address)
    return _reading(
        bool(invalid),
        f"{host}: {len(invalid)} of {backends} backends "
        f"{'serves' if len(invalid) == 1 else 'serve'} an invalid certificate: "
        + "; ".join(f"{r.address} {r.reason} ({r.message})" for r in invalid),
        {
            "host": host,
            "addresses": {r.address: r.reason for r in invalid},
            "fingerprints": {
                r.address: r.certificate.fingerprint_sha256 for r in invalid if r.certificate
            },
        },
    )


def _unreachable(
    host: str, unreachable: list[str], addresses: Mapping[str, Seen], now: float, spec: TlsSpec
) -> Reading:
    """Addresses that have served no certificate for longer than `unreachable_after`: their
    last certificate no longer counts, so what the other rules say leaves them out."""
    parts = []
    for address in unreachable:
        seen = addresses[address]
        assert seen.missing_since is not None
        parts.append(f"{address} for {_span(now - seen.missing_since)} ({seen.missing_reason})")
    return _reading(
        bool(unreachable),
        f"{host}: {len(unreachable)} backend{'' if len(unreachable) == 1 else 's'} served no "
        f"certificate for longer than {_span(spec.unreachable_after)}, so "
        f"{'its' if len(unreachable) == 1 else 'their'} certificates are no longer judged: "
        + "; ".join(parts),
        {
            "host": host,
            "addresses": {a: addresses[a].missing_reason for a in unreachable},
            "unreachable_since": {a: addresses[a].missing_since for a in unreachable},
        },
    )
