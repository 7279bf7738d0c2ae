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
    # 401/403, or a refused token or client certificate: recmon's credentials, not the
    # platform, are what failed (an expired probe key must not page as an outage).
    AUTH_ERROR = "auth_error"
    TIMEOUT = "timeout"
    CONNECT_ERROR = "connect_error"
    TLS_ERROR = "tls_error"
    INVALID_BODY = "invalid_body"
    # The response parsed and had its items, but a condition on its content failed (a
    # field renamed, another tenant's items, a value out of range): HTTP 200, yet wrong.
    WRONG_CONTENT = "wrong_content"


CREDENTIAL_TENANT = "tenant"
CREDENTIAL_SHARED = "shared"
# Both went with the request (a tenant's key and recmon's shared token): a refusal is one or
# the other, and one tenant's refusal alone does not say which.
CREDENTIAL_EITHER = "either"
CREDENTIAL_NONE = "none"

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
    # Requests sent; 0 when none could be (no OAuth2 token to send): nothing was timed.
    attempts: int = 1
    # Outcome of the first attempt when a retry changed the final outcome; never hidden.
    first_outcome: Outcome | None = None
    # Values taken from the response for later checks of the same tenant.
    captures: Mapping[str, str] = field(default_factory=lambda: NO_CAPTURES)
    # False when the monitor itself was too slow (event-loop lag) to trust the latency.
    latency_trusted: bool = True
    # Whose credentials an auth_error refused: CREDENTIAL_TENANT (the tenant's own key),
    # CREDENTIAL_SHARED (recmon's: a target header, an OAuth2 token, a client certificate),
    # CREDENTIAL_EITHER (both were sent) or CREDENTIAL_NONE (the request carried none). Empty
    # for other outcomes.
    credential: str = ""
    # The target the check probes, and the address (ip:port) of the peer that answered, or
    # whose connection failed ("" where the transport cannot tell): which backend behind one
    # name is failing. With `via_proxy` the peer is the proxy, not the backend.
    target: str = ""
    address: str = ""
    via_proxy: bool = False
    # wrong_content: the name of the condition that failed (a metric label, never a value).
    condition: str = ""
    # The ids of the answer's items, in order, for checks judged across requests and tenants
    # (fallback lists, foreign items, frozen answers); empty otherwise.
    item_ids: tuple[str, ...] = ()
    # What was asked, as a short digest of the rendered request (never its text: a query
    # may carry a credential): one list answering different questions is a fallback.
    asked: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK
