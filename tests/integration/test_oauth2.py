"""OAuth2 client credentials against the sandbox, which issues second-long tokens and refuses
them on demand: one token request per lifetime over several lifetimes, never an expired token
sent, the token endpoint's time never in a probe's latency, and a revoked client paged as
"probe credentials rejected", not as a platform outage — for all the tenants probed, a tenant
skipped for want of a key named, not counted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.alerting.hub import Decision
from monitor.app.assembly import build_monitor
from monitor.config.loader import load_config_file
from monitor.core.clock import SystemClock
from monitor.core.notifications import Notification
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.series import EventKind
from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.server import Sandbox, SandboxSettings, serve_sandbox
from tests.helpers import FAST
from tests.secretdir import write_secret_dir

pytestmark = pytest.mark.integration
CLIENT = ("recmon-probe", "cs-9e2b71d4a0")
LIFETIME = 2.0
TOKEN_DELAY_MS = 300.0


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(
        tenants=3,
        latency_ms=dict(FAST),
        jitter=0,
        oauth2_client=CLIENT,
        token_lifetime=LIFETIME,
        token_delay_ms=TOKEN_DELAY_MS,
    )


@pytest.fixture(params=["asyncio", "aiohttp"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def oauth_config(sandbox: Sandbox, tmp_path: Path, transport: str, extra: str = "") -> Path:
    (tmp_path / "client-secret").write_text(CLIENT[1] + "\n")
    text = sandbox_config(sandbox.url, interval=0.2, timeout=1).replace(
        "    rate_limit: 200/s",
        f"""    rate_limit: 200/s
    oauth2:
      token_url: {sandbox.url}/oauth2/token
      client_id: {CLIENT[0]}
      client_secret_file: client-secret
      scopes: [search]""",
    )
    # Discovery needs the token too: it goes out with the target's credentials.
    text = text.replace("refresh: 10m}", "refresh: 10m, target: sandbox}")
    config = tmp_path / "probes.yaml"
    config.write_text(text + f"\nengine: {{transport: {transport}}}\n" + extra)
    return config


class Running:
    def __init__(self, config: Path) -> None:
        self.pages: list[Notification] = []
        self.results: list[ProbeResult] = []
        self.monitor = build_monitor(
            load_config_file(config),
            clock=SystemClock(),
            registry=CollectorRegistry(),
            route=self._route,
        )
        self.monitor.result_listeners.append(self.results.append)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def _route(self, decision: Decision) -> None:
        self.pages += decision.notifications

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.monitor.run(self.stop))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await self.task
        await self.monitor.aclose()

    async def until(self, what: str, predicate: Callable[[], bool], within: float = 15) -> None:
        for _ in range(int(within / 0.05)):
            if predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.timing  # probe < 0.3 s
async def test_tokens_are_refreshed_before_they_expire_once_per_lifetime(
    sandbox: Sandbox, tmp_path: Path, transport: str
) -> None:
    auth = sandbox.app.auth
    async with Running(oauth_config(sandbox, tmp_path, transport)) as run:
        await run.until("the first probe", lambda: bool(run.results))
        first = len(auth.token_requests)
        started = auth.token_requests[0]
        await asyncio.sleep(2.5 * LIFETIME)  # longer than two lifetimes
        requests = list(auth.token_requests)
        probes = len(run.results)
        ok = run.monitor.registry.get_sample_value(
            "recmon_oauth2_token_requests_total", {"target": "sandbox", "result": "ok"}
        )
    # Every probe was let in: no token was ever sent expired, none refused.
    assert {r.outcome for r in run.results} == {Outcome.OK}
    assert not auth.refused and first == 1
    # One request per lifetime, counted over the run: every probe of 2.5 lifetimes let in
    # (the sandbox refuses an expired token) takes at least three tokens; each replaced once,
    # with a quarter of its life left, makes no more requests than the run's lifetimes
    # allow — and never one per probe.
    lifetimes = (requests[-1] - started) / LIFETIME
    assert 3 <= len(requests) <= 1 + lifetimes / 0.7, (len(requests), lifetimes)
    assert probes > 10 * len(requests)
    # The endpoint takes 0.3 s; probes of a 5 ms API never show it.
    assert max(r.duration_s for r in run.results) < TOKEN_DELAY_MS / 1000
    # Counted when answered: one may be on its way.
    assert ok is not None and len(requests) - 1 <= ok <= len(requests)


async def test_a_revoked_client_pages_probe_credentials_rejected_not_an_outage(
    sandbox: Sandbox, tmp_path: Path, transport: str
) -> None:
    extra = "alerts: {storm: {min_tenants: 3, group_wait: 0.5s}}\n"
    async with Running(oauth_config(sandbox, tmp_path, transport, extra)) as run:
        await run.until("healthy probes", lambda: len(run.results) >= 12)
        sandbox.app.auth.update({"refuse_tokens": True})
        await run.until(
            "the page", lambda: any(p.rule == "auth_errors" for p in run.pages), within=20
        )
        requests_when_paged = len(sandbox.app.auth.token_requests)
        await asyncio.sleep(1)
    refused = [r for r in run.results if r.outcome is Outcome.AUTH_ERROR]
    assert refused and {r.status for r in refused} == {401}
    assert {r.credential for r in refused} == {"shared"}
    assert refused[0].reason == "status 401: the OAuth2 token of target sandbox rejected"
    (page,) = [p for p in run.pages if p.rule == "auth_errors"]
    assert page.summary.startswith(
        "probe credentials rejected: search refuses recmon's credentials for all 3 tenants"
    ) or page.summary.startswith(
        "probe credentials rejected: recommendations refuses recmon's credentials for all 3"
    ), page.summary
    assert page.tenant is None  # one page for the fleet
    # Not a platform outage: no failures or error-rate page.
    assert {p.rule for p in run.pages} == {"auth_errors"}
    # One refresh per refusal of a fresh token, not one per probe.
    assert len(sandbox.app.auth.token_requests) - requests_when_paged <= 2


async def test_a_revoked_client_is_paged_for_all_the_tenants_probed_at_once(
    tmp_path: Path,
) -> None:
    """20 tenants, one without a key in tenants.credentials (skipped, never probed): when the
    client is revoked, the fleet page says "all 19 tenants" as soon as the 19th is refused,
    and names the skipped one — not "19 of 20 tenants (95%)" one interval later."""
    interval = 2.0
    tenants = [f"tenant-{i:03d}" for i in range(1, 21)]
    keys = {t: f"key-{t}-5a1c9e" for t in tenants}
    settings = SandboxSettings(
        tenants=20, latency_ms=dict(FAST), tenant_keys=keys, oauth2_client=CLIENT
    )
    async with serve_sandbox(settings) as sandbox:
        write_secret_dir(tmp_path / "keys", {t: k for t, k in keys.items() if t != "tenant-020"})
        config = oauth_config(
            sandbox,
            tmp_path,
            "asyncio",
            "alerts: {storm: {min_tenants: 2, group_wait: 0.5s}}\n",
        )
        text = config.read_text().replace(
            "  default_vars: {query: shoes}",
            "  default_vars: {query: shoes}\n  credentials: {dir: keys, variable: api_key}",
        )
        text = text.replace(
            'params: {q: "{query}"}}', 'params: {q: "{query}"}, headers: {X-Api-Key: "{api_key}"}}'
        )
        config.write_text(text.replace("interval: 0.2s", f"interval: {interval}s"))
        async with Running(config) as run:
            await run.until("19 tenants probed", lambda: len(run.results) >= 19 * 2)
            # Its slot may come after the others' on a loaded machine: wait for it too.
            await run.until(
                "tenant-020 skipped", lambda: ("tenant-020", "search") in run.monitor.skips
            )
            assert run.monitor.skips[("tenant-020", "search")] == "no credential {api_key}"
            sandbox.app.auth.update({"refuse_client": True, "revoke": True})
            await run.until(
                "the fleet page",
                lambda: any("all 19 tenants" in p.summary for p in run.pages),
                # Generous: "at once" is judged below from the alert events' own times, not
                # by how soon this loaded machine delivered it (it failed at 4 intervals).
                within=15 * interval,
            )
    storm = [p for p in run.pages if p.rule == "auth_errors" and p.tenant is None]
    fleet = next(p for p in storm if "all 19 tenants" in p.summary)
    assert fleet.summary.startswith(
        "probe credentials rejected: search refuses recmon's credentials for all 19 tenants"
    ), fleet.summary
    assert fleet.summary.endswith("(tenant-020 skipped, not probed)")
    assert fleet.details["not_probed"] == {"tenant-020": "no credential {api_key}"}
    assert not any("of 20 tenants" in p.summary for p in run.pages)
    # At once: in the same step as the 19th tenant's alert fired. Waiting one interval after
    # the storm crossed the fleet share (16 of 20) would send it up to an interval later. (Not
    # judged by refusal counts: the revocation lands mid-round, so tenants fire at different
    # counts and in a different order from round to round.) Search's alerts only: a tenant
    # whose search answered just before the revocation has its recommendations refused too.
    assert fleet.check == "search"
    refused = {r.tenant for r in run.results if r.outcome is Outcome.AUTH_ERROR}
    assert len(refused) == 19
    fired = [
        event.at
        for tenant in refused
        for event in run.monitor.hub.history(tenant)
        if event.kind is EventKind.FIRING
        and event.rule == "auth_errors"
        and event.check == "search"
    ]
    assert len(fired) == 19, fired
    assert fleet.at == max(fired), (fleet.at, sorted(fired))
