"""The one thing probers produce: a ProbeResult with exactly one Outcome."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


class Outcome(enum.StrEnum):
    """Every probe ends in exactly one of these (a contract: docs/ARCHITECTURE.md)."""

    OK = "ok"
    EMPTY = "empty"
    HTTP_ERROR = "http_error"
    TIMEOUT = "timeout"
    CONNECT_ERROR = "connect_error"
    TLS_ERROR = "tls_error"
    INVALID_BODY = "invalid_body"

    @property
    def is_success(self) -> bool:
        return self is Outcome.OK


NO_CAPTURES: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ProbeResult:
    tenant: str
    check: str
    outcome: Outcome
    # Seconds from the moment the in-flight slot was taken to the last body byte, for the
    # attempt that produced `outcome`. Always set; for timeouts it is the deadline.
    duration_s: float
    # Wall-clock start (Unix seconds), for alerts and logs.
    started_at: float
    status: int | None = None
    items: int | None = None
    # Human-readable reason for every outcome but ok: "expired certificate", "status 502", ...
    reason: str = ""
    # Machine-readable TLS reason for tls_error: expired, not_yet_valid, unknown_issuer,
    # hostname_mismatch, handshake.
    tls_reason: str = ""
    attempts: int = 1
    # Outcome of the first attempt when a retry changed the final outcome; never hidden.
    first_outcome: Outcome | None = None
    # Values taken from the response for later checks of the same tenant.
    captures: Mapping[str, str] = field(default_factory=lambda: NO_CAPTURES)
    # False when the monitor itself was too slow (event-loop lag) to trust the latency.
    latency_trusted: bool = True

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK
