"""OAuth2 client credentials (RFC 6749 4.4): one token per target, cached, refreshed before it
expires, refreshed once when the API refuses it — never fetched per probe.

The decisions (use the token, refresh it in the background, fetch one first, wait out a
failure) are a pure function of (state, now), tested on virtual time; `TokenSource` does the
I/O around them. Fetching happens before a probe takes its in-flight slot, so the time spent
on the token endpoint is never part of a probe's latency.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from urllib.parse import quote_plus

import httpx

from monitor.config.model import OAuth2Spec
from monitor.core.clock import Clock
from monitor.core.secrets import Scrubber, basic_credentials, request_of, scrub
from monitor.telemetry.metrics import Metrics

log = logging.getLogger("recmon.oauth2")

# A token is refreshed when a quarter of its lifetime is left, at most a minute before it
# expires: a one-hour token lives 59 minutes, a 3-second one 2.25 s.
REFRESH_SHARE = 0.25
REFRESH_AHEAD_MAX_S = 60.0
# Never used in its last second: a request in flight must not arrive with an expired token.
EXPIRY_MARGIN_S = 0.5
# Without expires_in a token is assumed to last an hour.
DEFAULT_LIFETIME_S = 3600.0
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 60.0
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    obtained_at: float  # monotonic seconds
    expires_at: float
    generation: int
    # Fetched because the previous one was refused: a refusal of this one is final.
    after_refusal: bool = False

    @property
    def refresh_at(self) -> float:
        lifetime = self.expires_at - self.obtained_at
        return self.expires_at - min(REFRESH_AHEAD_MAX_S, lifetime * REFRESH_SHARE)


@dataclass(frozen=True, slots=True)
class TokenState:
    token: Token | None = None
    # The last fetch's failure, and until when no new fetch is tried.
    failure: str = ""
    refused: bool = False  # the endpoint refused the client (vs. could not be reached)
    retry_at: float = float("-inf")
    failures: int = 0
    generation: int = 0


class Action(enum.Enum):
    USE = "use"  # the cached token is good
    USE_AND_REFRESH = "use_and_refresh"  # good, but due: refresh in the background
    FETCH = "fetch"  # none usable: fetch one before probing
    FAIL = "fail"  # none usable and the endpoint failed lately: do not ask again yet


def decide(state: TokenState, now: float) -> Action:
    token = state.token
    if token is not None and now < token.expires_at - EXPIRY_MARGIN_S:
        if now >= token.refresh_at and now >= state.retry_at:
            return Action.USE_AND_REFRESH
        return Action.USE
    if now < state.retry_at:
        return Action.FAIL
    return Action.FETCH


def obtained(state: TokenState, value: str, lifetime: float, now: float) -> TokenState:
    token = Token(value, now, now + lifetime, state.generation + 1)
    return TokenState(token=token, generation=token.generation)


def failed(state: TokenState, reason: str, refused: bool, now: float) -> TokenState:
    backoff = min(BACKOFF_MAX_S, BACKOFF_INITIAL_S * 2**state.failures)
    return replace(
        state, failure=reason, refused=refused, retry_at=now + backoff, failures=state.failures + 1
    )


def refused_by_api(state: TokenState, generation: int) -> tuple[TokenState, bool]:
    """The API refused the token of `generation`. Refresh (True) only when that is still the
    current token and was not itself fetched after a refusal: one refresh per refusal, so a
    client the platform has revoked costs one extra token request, not one per probe."""
    token = state.token
    if token is None or token.generation != generation or token.after_refusal:
        return state, False
    return replace(state, token=None, retry_at=float("-inf")), True


@dataclass(frozen=True, slots=True)
class TokenUnavailable:
    reason: str
    refused: bool  # the endpoint refused recmon's client credentials


class TokenError(Exception):
    def __init__(self, reason: str, *, refused: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused


def parse_token_response(
    status: int, body: bytes, clean: Callable[[str], str] = lambda text: text
) -> tuple[str, float]:
    """(access token, lifetime) from a token endpoint's answer, or TokenError with the
    endpoint's own error and description (RFC 6749 5.2) — which may quote the request, so
    they pass through `clean` (before they are cut short: never half a secret)."""
    try:
        document = json.loads(body) if body else {}
    except (ValueError, RecursionError):
        document = None
    if status != 200:
        refused = status in (400, 401, 403)
        if isinstance(document, dict) and isinstance(document.get("error"), str):
            error = clean(document["error"])[:100]
            description = document.get("error_description")
            detail = f"{error} ({clean(str(description))[:200]})" if description else error
            # invalid_scope and invalid_request are recmon's configuration: refused all the same.
            raise TokenError(f"status {status}: {detail}", refused=refused)
        raise TokenError(f"status {status}", refused=refused)
    if not isinstance(document, dict) or not isinstance(document.get("access_token"), str):
        raise TokenError("status 200 without an access_token", refused=False)
    token = document["access_token"]
    if not token:
        raise TokenError("status 200 with an empty access_token", refused=False)
    expires_in = document.get("expires_in")
    lifetime = DEFAULT_LIFETIME_S
    if (isinstance(expires_in, int | float) and not isinstance(expires_in, bool)) or (
        isinstance(expires_in, str) and expires_in.isdigit()
    ):
        lifetime = float(expires_in)
    if lifetime <= 0:
        raise TokenError(f"token expires_in {expires_in!r}", refused=False)
    return token, lifetime


class TokenSource:
    """The token of one target: shared by every probe of it, fetched by one of them at a
    time (single flight)."""

    def __init__(
        self,
        target: str,
        spec: OAuth2Spec,
        client: httpx.AsyncClient,
        *,
        clock: Clock,
        metrics: Metrics,
        on_secret: Callable[[Iterable[str]], None],
    ) -> None:
        self.target = target
        self.spec = spec
        self._client = client
        self._clock = clock
        self._metrics = metrics
        self._on_secret = on_secret
        # The client secret in every form it goes out in (the Basic credential included): an
        # endpoint that quotes what it was given is redacted everywhere, not just here.
        on_secret([spec.client_secret, basic_credentials(*self._client_credentials())])
        self.state = TokenState()
        self._fetching: asyncio.Task[None] | None = None
        self.requests = 0

    async def token(self) -> Token | TokenUnavailable:
        """The token to send, fetching one first when none is usable."""
        action = decide(self.state, self._clock.monotonic())
        if action is Action.USE_AND_REFRESH:
            self._start_fetch()
        if action in (Action.USE, Action.USE_AND_REFRESH):
            assert self.state.token is not None
            return self.state.token
        if action is Action.FETCH:
            await asyncio.shield(self._start_fetch())
            token = self.state.token
            if token is not None and self._clock.monotonic() < token.expires_at:
                return token
        return TokenUnavailable(self.state.failure or "no token", self.state.refused)

    async def refused(self, token: Token) -> Token | None:
        """The API refused `token`: a fresh one to retry with, once; None when refusing it
        again would not help."""
        self.state, refresh = refused_by_api(self.state, token.generation)
        if not refresh:
            # Another probe's refusal may have fetched a new token already.
            current = self.state.token
            fresher = current is not None and current.generation > token.generation
            return current if fresher and not token.after_refusal else None
        await asyncio.shield(self._start_fetch(after_refusal=True))
        return self.state.token

    def _start_fetch(self, *, after_refusal: bool = False) -> asyncio.Task[None]:
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.create_task(
                self._fetch(after_refusal), name=f"oauth2:{self.target}"
            )
        return self._fetching

    async def _fetch(self, after_refusal: bool) -> None:
        self.requests += 1
        try:
            async with asyncio.timeout(self.spec.timeout):
                value, lifetime = await self._request()
        except TokenError as exc:
            self._failed(exc.reason, exc.refused)
            return
        except TimeoutError:
            self._failed(f"no answer within {self.spec.timeout:g}s", False)
            return
        except httpx.HTTPError as exc:
            self._failed(f"{type(exc).__name__}: {scrub(str(exc), request_of(exc))}"[:300], False)
            return
        self._on_secret([value])
        now = self._clock.monotonic()
        state = obtained(self.state, value, lifetime, now)
        if after_refusal and state.token is not None:
            state = replace(state, token=replace(state.token, after_refusal=True))
        self.state = state
        self._metrics.oauth2_token_requests.labels(self.target, "ok").inc()

    async def _request(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if self.spec.scopes:
            form["scope"] = " ".join(self.spec.scopes)
        form.update(self.spec.endpoint_params)
        response = await self._client.post(
            self.spec.token_url,
            data=form,
            auth=httpx.BasicAuth(*self._client_credentials()),
            headers={"accept": "application/json"},
        )
        body = response.content[:MAX_TOKEN_RESPONSE_BYTES]
        # The endpoint's own words, without anything of what it was sent (an endpoint that
        # quotes the client's credentials back: "presented id:secret as Basic ...").
        return parse_token_response(response.status_code, body, Scrubber(request_of(response)))

    def _client_credentials(self) -> tuple[str, str]:
        """client_secret_basic (RFC 6749 2.3.1): id and secret form-urlencoded first."""
        return _form_quote(self.spec.client_id), _form_quote(self.spec.client_secret)

    def _failed(self, reason: str, refused: bool) -> None:
        self.state = failed(self.state, reason, refused, self._clock.monotonic())
        self._metrics.oauth2_token_requests.labels(
            self.target, "refused" if refused else "error"
        ).inc()
        log.warning(
            "OAuth2 token request failed",
            extra={
                "fields": {
                    "target": self.target,
                    "token_url": self.spec.token_url,
                    "client_id": self.spec.client_id,
                    "error": reason,
                    "retry_in_s": round(self.state.retry_at - self._clock.monotonic(), 1),
                }
            },
        )


def _form_quote(value: str) -> str:
    return quote_plus(value)
