"""OAuth2 client credentials: the refresh decisions on virtual time, the token source against
httpx.MockTransport, and what the engine does with a refused token."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from urllib.parse import parse_qsl, quote_plus, unquote_plus

import httpx
import pytest
from prometheus_client import CollectorRegistry

from monitor.config.model import OAuth2Spec
from monitor.core.clock import ManualClock
from monitor.probing.oauth2 import (
    Action,
    TokenError,
    TokenSource,
    TokenState,
    TokenUnavailable,
    decide,
    failed,
    obtained,
    parse_token_response,
    refused_by_api,
)
from monitor.telemetry.metrics import Metrics

SECRET = "cs-4d1f9a0b7e"
SPEC = OAuth2Spec(
    token_url="http://auth.test/token",
    client_id="recmon",
    client_secret=SECRET,
    scopes=["search.read", "recs.read"],
    endpoint_params={"audience": "api"},
)


def test_a_token_is_used_then_refreshed_with_a_quarter_of_its_life_left() -> None:
    state = obtained(TokenState(), "t1", 3.0, now=100.0)
    assert decide(state, 100.0) is Action.USE
    assert decide(state, 102.2) is Action.USE
    assert decide(state, 102.25) is Action.USE_AND_REFRESH
    # never sent in its last half second; after that a new one must be had first
    assert decide(state, 102.5) is Action.FETCH
    assert decide(TokenState(), 0.0) is Action.FETCH


def test_long_tokens_refresh_a_minute_before_expiry() -> None:
    state = obtained(TokenState(), "t1", 3600.0, now=0.0)
    assert decide(state, 3539.9) is Action.USE
    assert decide(state, 3540.0) is Action.USE_AND_REFRESH


def test_failures_back_off_exponentially_and_keep_a_valid_token_in_use() -> None:
    state = failed(TokenState(), "status 503", False, now=10.0)
    assert decide(state, 10.5) is Action.FAIL
    assert decide(state, 11.0) is Action.FETCH
    state = failed(state, "status 503", False, now=11.0)
    assert state.retry_at == 13.0
    # a refresh that fails leaves the still-valid token in use, refreshed again after backoff
    live = failed(obtained(TokenState(), "t1", 100.0, now=0.0), "status 503", False, now=80.0)
    assert decide(live, 80.5) is Action.USE
    assert decide(live, 81.0) is Action.USE_AND_REFRESH


def test_a_refused_token_is_refreshed_once_not_per_probe() -> None:
    state = obtained(TokenState(), "t1", 60.0, now=0.0)
    state, refresh = refused_by_api(state, 1)
    assert refresh and state.token is None and decide(state, 1.0) is Action.FETCH
    # a second probe refused with the same token does not ask again
    assert refused_by_api(state, 1) == (state, False)


def test_the_endpoints_error_is_kept_never_anything_else() -> None:
    body = json.dumps({"error": "invalid_client", "error_description": "bad secret"}).encode()
    with pytest.raises(TokenError) as refused:
        parse_token_response(401, body)
    assert refused.value.reason == "status 401: invalid_client (bad secret)"
    assert refused.value.refused
    with pytest.raises(TokenError) as down:
        parse_token_response(503, b"<html>down</html>")
    assert down.value.reason == "status 503" and not down.value.refused
    assert parse_token_response(200, b'{"access_token": "abc", "expires_in": 30}') == ("abc", 30.0)
    assert parse_token_response(200, b'{"access_token": "abc"}') == ("abc", 3600.0)


class Endpoint:
    """A token endpoint: counts requests, answers what the test sets."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.status = 200
        self.lifetime = 3.0
        self.gate: asyncio.Event | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "invalid_client"})
        n = len(self.requests)
        return httpx.Response(
            200,
            json={"access_token": f"tok-{n}", "expires_in": self.lifetime, "token_type": "Bearer"},
        )


def source(endpoint: Endpoint, clock: ManualClock, secrets: list[str]) -> TokenSource:
    client = httpx.AsyncClient(transport=httpx.MockTransport(endpoint))
    metrics = Metrics(CollectorRegistry())
    return TokenSource("api", SPEC, client, clock=clock, metrics=metrics, on_secret=secrets.extend)


async def test_concurrent_probes_share_one_token_request() -> None:
    endpoint, clock, secrets = Endpoint(), ManualClock(), []
    endpoint.gate = asyncio.Event()
    tokens = source(endpoint, clock, secrets)
    waiting = [asyncio.create_task(tokens.token()) for _ in range(50)]
    await asyncio.sleep(0.01)
    endpoint.gate.set()
    got = await asyncio.gather(*waiting)
    assert len(endpoint.requests) == 1
    assert {t.value for t in got if not isinstance(t, TokenUnavailable)} == {"tok-1"}
    # the client secret, raw and as its Basic credential, known to the redactor from the
    # start; the token before any probe sent it
    basic = base64.b64encode(f"recmon:{quote_plus(SECRET)}".encode()).decode()
    assert secrets == [SECRET, basic, "tok-1"]
    request = endpoint.requests[0]
    assert dict(parse_qsl(request.content.decode())) == {
        "grant_type": "client_credentials",
        "scope": "search.read recs.read",
        "audience": "api",
    }
    assert (
        request.headers["authorization"]
        == "Basic " + base64.b64encode(f"recmon:{SECRET}".encode()).decode()
    )


async def test_one_token_request_per_lifetime_over_many_probes() -> None:
    endpoint, clock = Endpoint(), ManualClock()
    tokens = source(endpoint, clock, [])
    start = clock.monotonic()
    used = set()
    while clock.monotonic() - start < 10 * endpoint.lifetime:
        token = await tokens.token()
        assert not isinstance(token, TokenUnavailable)
        assert clock.monotonic() < token.expires_at  # never an expired one
        used.add(token.value)
        await asyncio.sleep(0)  # let a background refresh finish
        clock.advance(0.05)
    # refreshed at 3/4 of each 3 s lifetime: one request per 2.25 s, not one per probe (600)
    assert len(endpoint.requests) == 14
    assert len(used) == 14


async def test_a_refused_client_is_logged_with_the_endpoints_error_never_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint, clock = Endpoint(), ManualClock()
    endpoint.status = 401
    tokens = source(endpoint, clock, [])
    with caplog.at_level(logging.WARNING, logger="recmon.oauth2"):
        first = await tokens.token()
        second = await tokens.token()  # in backoff: not asked again
    assert isinstance(first, TokenUnavailable) and first.refused
    assert first.reason == "status 401: invalid_client"
    assert second == first and len(endpoint.requests) == 1
    (record,) = caplog.records
    assert record.fields["error"] == "status 401: invalid_client"  # type: ignore[attr-defined]
    assert SECRET not in repr(record.__dict__)
    metrics = tokens._metrics
    assert (
        metrics.registry.get_sample_value(
            "recmon_oauth2_token_requests_total", {"target": "api", "result": "refused"}
        )
        == 1.0
    )


async def test_an_endpoint_quoting_the_client_credentials_leaves_none_of_them_in_the_reason() -> (
    None
):
    """An endpoint whose error quotes what it was given: the secret as presented, its Basic
    credential and the form body. The reason keeps the endpoint's words, never those."""
    secret = "cs/8+Zq=w&e7-f00d"
    spec = SPEC.model_copy(update={"client_secret": secret})
    seen: list[str] = []

    def echo(request: httpx.Request) -> httpx.Response:
        scheme, _, basic = request.headers["authorization"].partition(" ")
        presented = base64.b64decode(basic).decode()
        user, _, password = presented.partition(":")
        description = (
            f"client revoked (presented {user}:{unquote_plus(password)} as {scheme} {basic}; "
            f"encoded {presented}; body {request.content.decode()})"
        )
        seen.append(description)
        return httpx.Response(
            401, json={"error": "invalid_client", "error_description": description * 3}
        )

    known: list[str] = []
    client = httpx.AsyncClient(transport=httpx.MockTransport(echo))
    tokens = TokenSource(
        "api",
        spec,
        client,
        clock=ManualClock(),
        metrics=Metrics(CollectorRegistry()),
        on_secret=known.extend,
    )
    refused = await tokens.token()
    assert isinstance(refused, TokenUnavailable) and refused.refused
    assert refused.reason.startswith("status 401: invalid_client (client revoked (presented")
    basic = base64.b64encode(f"recmon:{quote_plus(secret)}".encode()).decode()
    assert basic in seen[0] and secret in seen[0]  # the endpoint did quote them
    for form in (secret, quote_plus(secret), basic, "cs/8"):
        assert form not in refused.reason, refused.reason
    assert basic in known  # the redactor knows the Basic form too
