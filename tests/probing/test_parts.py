"""The probing parts a configuration asks for: clients only for the targets something uses,
one token source (with a client of its own) per OAuth2 target, discovery sharing its target's
client and token, per-host rate limits, and every client closed by aclose."""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry

from monitor.config.model import Target
from monitor.core.clock import ManualClock
from monitor.probing.parts import ProbingParts, build_probing
from monitor.telemetry.metrics import Metrics
from tests.helpers import load

CONFIG = """
defaults: {interval: 10s, timeout: 2s}
targets:
  api:
    base_url: "http://api.test"
    rate_limit: 20/s
    oauth2: {token_url: "http://auth.test/token", client_id: recmon, client_secret: s3cr3t-value}
  api-again: {base_url: "http://api.test:80/v2", rate_limit: 50/s}
  other: {base_url: "http://other.test", rate_limit: 5/s}
  unused: {base_url: "http://unused.test"}
tenants:
  discover: {url: "http://api.test/v1/tenants"%s}
checks:
  search:
    target: api
    timeout: 3s
    request: {path: "/v1/{tenant}/search"}
    expect: {items: "$.results"}
  recommendations:
    target: api-again
    request: {path: "/v1/{tenant}/recommendations"}
    expect: {items: "$.recommendations"}
  other:
    target: other
    request: {path: "/x"}
    expect: {items: "$.items"}
"""


def parts(discovery: str = "") -> tuple[ProbingParts, list[tuple[str, float]]]:
    made: list[tuple[str, float]] = []

    def factory(name: str, target: Target, timeout: float) -> httpx.AsyncClient:
        made.append((name, timeout))
        return httpx.AsyncClient()

    secrets: list[str] = []
    built = build_probing(
        load(CONFIG % discovery).config,
        clock=ManualClock(),
        metrics=Metrics(CollectorRegistry()),
        on_secret=secrets.extend,
        client_factory=factory,
    )
    return built, made


async def test_clients_only_for_used_targets_each_waiting_as_long_as_its_longest_check() -> None:
    built, made = parts()
    assert sorted(made) == [("api", 3.0), ("api-again", 2.0), ("other", 2.0)]
    assert set(built.clients) == {"api", "api-again", "other"}
    assert set(built.checks) == {"search", "recommendations", "other"}
    assert set(built.token_sources) == set(built.token_clients) == {"api"}
    assert built.token_clients["api"] not in built.clients.values()  # never probed
    assert built.credentials is None
    await built.aclose()


async def test_targets_on_one_host_share_one_rate_limit() -> None:
    built, _ = parts()
    assert built.throttles["api"] is built.throttles["api-again"]
    assert built.throttles["other"] is not built.throttles["api"]
    assert "unused" not in built.throttles
    await built.aclose()


async def test_discovery_with_a_target_shares_its_client_and_token() -> None:
    built, _ = parts(", target: api")
    assert built.discovery_client is None
    source = built.tenant_source
    assert source._client is built.clients["api"]
    assert source._token == built.token_sources["api"].token
    await built.aclose()


async def test_discovery_without_a_target_has_a_client_of_its_own_closed_with_the_rest() -> None:
    built, _ = parts()
    assert built.discovery_client is not None
    assert built.tenant_source._client is built.discovery_client
    assert built.discovery_client not in built.clients.values()
    await built.aclose()
    every = [*built.clients.values(), *built.token_clients.values(), built.discovery_client]
    assert all(client.is_closed for client in every)
