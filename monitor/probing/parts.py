"""The probing parts a configuration asks for, built in one place: the checks, one client per
target the checks use (presenting recmon's client certificate where one is configured), the
tenants' credentials, an OAuth2 token source per target that needs one, the per-host rate
limits, the tenant source and each tenant's request variables. The monitor receives them;
nothing here runs yet."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from monitor.config.model import Config, TenantsSpec
from monitor.core.clock import Clock
from monitor.core.tenancy import Shard
from monitor.probing.checks import HttpCheck, compile_checks
from monitor.probing.clientcert import ClientCertificates
from monitor.probing.credentials import TenantCredentials
from monitor.probing.httpclient import ClientFactory, build_client, tls_verification
from monitor.probing.oauth2 import TokenSource
from monitor.probing.tenant_source import TenantSource
from monitor.probing.throttle import HostThrottle
from monitor.telemetry.metrics import Metrics
from monitor.telemetry.polltime import TimedSelector


@dataclass(frozen=True)
class TenantVariables:
    """A tenant's request variables (the engine's `tenant_vars`): the defaults, its own, and
    its credential where tenants have credentials."""

    spec: TenantsSpec
    credentials: TenantCredentials | None

    def __call__(self, tenant: str) -> Mapping[str, str]:
        spec = self.spec
        own = spec.vars.get(tenant)
        if self.credentials is not None:
            # Without its credential the variable stays unset: the engine skips the tenant
            # (missing_credential) rather than probing it anonymously.
            credential = self.credentials.get(tenant)
            if credential is not None:
                return {**spec.default_vars, **(own or {}), self.credentials.variable: credential}
        return {**spec.default_vars, **own} if own else spec.default_vars


@dataclass(frozen=True)
class ProbingParts:
    checks: dict[str, HttpCheck]
    client_certificates: ClientCertificates
    clients: dict[str, httpx.AsyncClient]  # by target: only the targets something uses
    credentials: TenantCredentials | None
    # One token per OAuth2 target, from a client of its own (the token endpoint is not probed).
    token_clients: dict[str, httpx.AsyncClient]
    token_sources: dict[str, TokenSource]
    throttles: dict[str, HostThrottle]
    # Discovery's own client, when it goes out without a target's credentials.
    discovery_client: httpx.AsyncClient | None
    tenant_source: TenantSource
    tenant_vars: TenantVariables

    async def aclose(self) -> None:
        for client in (*self.clients.values(), *self.token_clients.values()):
            await client.aclose()
        if self.discovery_client is not None:
            await self.discovery_client.aclose()


def build_probing(
    config: Config,
    *,
    clock: Clock,
    metrics: Metrics,
    on_secret: Callable[[Iterable[str]], None],
    shard: Shard = Shard(),
    base_dir: Path | None = None,
    client_factory: ClientFactory | None = None,
    polls: TimedSelector | None = None,
) -> ProbingParts:
    """`on_secret`: secrets read while running (tenant credentials, tokens), for the redactor.
    `client_factory`: builds the targets' clients instead of build_client (tests). `polls`:
    the selector of the loop the clients run on, when it times its polls."""
    checks = compile_checks(config)
    used = used_targets(config, checks)
    certificates = ClientCertificates(
        {n: t for n, t in config.targets.items() if n in used}, clock=clock
    )
    clients = {}
    for name, target in config.targets.items():
        if name not in used:
            continue
        timeout = target_timeout(config, checks, name)
        if client_factory is not None:
            clients[name] = client_factory(name, target, timeout)
            continue
        clients[name] = build_client(
            name,
            target,
            timeout,
            kind=config.engine.transport,
            location=config.location,
            ssl_context=certificates.context(name),
            polls=polls,
        )
    credentials = None
    if config.tenants.credentials is not None:
        credentials = TenantCredentials(
            config.tenants.credentials, clock=clock, on_secrets=on_secret
        )
        credentials.refresh()
    token_clients: dict[str, httpx.AsyncClient] = {}
    token_sources: dict[str, TokenSource] = {}
    for name, target in config.targets.items():
        if target.oauth2 is None or name not in used:
            continue
        token_clients[name] = httpx.AsyncClient(
            verify=certificates.context(name) or tls_verification(target),
            follow_redirects=False,
        )
        token_sources[name] = TokenSource(
            name,
            target.oauth2,
            token_clients[name],
            clock=clock,
            metrics=metrics,
            on_secret=on_secret,
        )
    # Discovery with a target's credentials shares that target's client and token.
    discover = config.tenants.discover
    via = discover.target if discover is not None else None
    discovery_client = None
    if discover is not None and via is None:
        discovery_client = httpx.AsyncClient(follow_redirects=False)
    tenant_source = TenantSource(
        config.tenants,
        shard=shard,
        client=clients[via] if via is not None else discovery_client,
        token=token_sources[via].token if via is not None and via in token_sources else None,
        clock=clock,
        base_dir=base_dir,
    )
    return ProbingParts(
        checks=checks,
        client_certificates=certificates,
        clients=clients,
        credentials=credentials,
        token_clients=token_clients,
        token_sources=token_sources,
        throttles=throttles(config),
        discovery_client=discovery_client,
        tenant_source=tenant_source,
        tenant_vars=TenantVariables(config.tenants, credentials),
    )


def used_targets(config: Config, checks: dict[str, HttpCheck]) -> set[str]:
    """The targets a check probes, and discovery's when it goes out with its credentials."""
    used = {check.target for check in checks.values()}
    discover = config.tenants.discover
    if discover is not None and discover.target is not None:
        used.add(discover.target)
    return used


def target_timeout(config: Config, checks: dict[str, HttpCheck], target: str) -> float:
    """A target's client waits as long as the longest check on it."""
    return max(
        (c.timeout for c in checks.values() if c.target == target),
        default=config.defaults.timeout,
    )


def throttles(config: Config) -> dict[str, HostThrottle]:
    # Targets on the same host share one budget: the limit protects the host, not a name.
    by_host: dict[str, HostThrottle] = {}
    found: dict[str, HostThrottle] = {}
    for name, target in config.targets.items():
        if target.rate_limit is None:
            continue
        host = httpx.URL(target.base_url).host
        found[name] = by_host.setdefault(host, HostThrottle(target.rate_limit))
    return found
