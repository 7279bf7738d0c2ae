"""The sandbox's gatekeeper: per-tenant API keys, OAuth2 client credentials with short-lived
tokens (refused on demand), all switchable at run time through /_admin/auth.

Client certificates are the TLS listener's business (`recmon sandbox --client-ca`)."""

from __future__ import annotations

import base64
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

KEY_HEADER = b"x-api-key"


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    body: dict[str, str]
    headers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass
class SandboxAuth:
    # tenant → its API key; None: no key needed. A tenant missing from the map is refused.
    keys: dict[str, str] | None = None
    # (client id, client secret) of the one OAuth2 client; None: no token needed.
    client: tuple[str, str] | None = None
    token_lifetime: float = 3600.0
    refuse_tokens: bool = False  # every token is refused by the API (a revoked client)
    refuse_client: bool = False  # the token endpoint refuses the client credentials
    now: Callable[[], float] = time.monotonic
    tokens: dict[str, float] = field(default_factory=dict)  # token → expiry
    token_requests: list[float] = field(default_factory=list)  # when each was asked for
    issued: list[str] = field(default_factory=list)  # every token handed out (for leak tests)
    accepted: Counter[str] = field(default_factory=Counter)  # tenant → requests let in
    refused: Counter[str] = field(default_factory=Counter)  # tenant → requests refused

    def check(self, tenant: str, headers: dict[bytes, bytes]) -> Refusal | None:
        """None when the request may pass; else the refusal to send."""
        if self.client is not None:
            refusal = self._check_token(headers.get(b"authorization", b""))
            if refusal is not None:
                self.refused[tenant] += 1
                return refusal
        if self.keys is not None and tenant:
            expected = self.keys.get(tenant)
            given = headers.get(KEY_HEADER, b"").decode("latin-1")
            if expected is None or not secrets.compare_digest(given, expected):
                self.refused[tenant] += 1
                return Refusal(403 if given else 401, {"error": "invalid or missing API key"})
        if tenant:
            self.accepted[tenant] += 1
        return None

    def _check_token(self, authorization: bytes) -> Refusal | None:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        expiry = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if expiry is None or expiry <= self.now() or self.refuse_tokens:
            why = "expired" if expiry is not None and expiry <= self.now() else "invalid"
            return Refusal(
                401,
                {"error": "invalid_token"},
                (
                    (
                        b"www-authenticate",
                        f'Bearer error="invalid_token", error_description="{why}"'.encode(),
                    ),
                ),
            )
        return None

    def issue(self, headers: dict[bytes, bytes], body: bytes) -> tuple[int, dict[str, Any]]:
        """The token endpoint (RFC 6749 4.4): client_secret_basic or client_secret_post."""
        self.token_requests.append(self.now())
        form = dict(parse_qsl(body.decode("latin-1")))
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = headers.get(b"authorization", b"").decode("latin-1")
        if basic.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(basic[6:]).decode()
            except ValueError:
                decoded = ":"
            client_id, _, client_secret = decoded.partition(":")
        if self.client is None or self.refuse_client or (client_id, client_secret) != self.client:
            return 401, {
                "error": "invalid_client",
                "error_description": "client authentication failed",
            }
        token = secrets.token_urlsafe(24)
        self.issued.append(token)
        self.tokens[token] = self.now() + self.token_lifetime
        # Forget long-expired tokens: the sandbox may run for hours with second-long ones.
        for old in [t for t, e in self.tokens.items() if e < self.now() - 60]:
            del self.tokens[old]
        return 200, {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "scope": form.get("scope", ""),
        }

    def update(self, data: dict[str, Any]) -> None:
        """/_admin/auth: {"keys": {tenant: key | null}, "refuse_tokens": bool,
        "refuse_client": bool, "revoke": true, "token_lifetime": seconds}."""
        if "keys" in data:
            keys = dict(self.keys or {})
            for tenant, key in dict(data["keys"]).items():
                if key is None:
                    keys.pop(str(tenant), None)
                else:
                    keys[str(tenant)] = str(key)
            self.keys = keys
        for flag in ("refuse_tokens", "refuse_client"):
            if flag in data:
                setattr(self, flag, bool(data[flag]))
        if "token_lifetime" in data:
            self.token_lifetime = float(data["token_lifetime"])
        if data.get("revoke"):
            self.tokens.clear()

    def snapshot(self) -> dict[str, Any]:
        return {
            "accepted": dict(self.accepted),
            "refused": dict(self.refused),
            "token_requests": len(self.token_requests),
            "tokens_live": sum(1 for e in self.tokens.values() if e > self.now()),
        }
