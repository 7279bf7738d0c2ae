"""/status and the status page, from a monitor driven on virtual time: the document follows
its published schema (docs/status.schema.json) and says what is wrong — alerts firing and
pending, a failing sink, a failed reload — and the page and /readyz show the same."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import jsonschema
import pytest
from prometheus_client import CollectorRegistry

from monitor.alerting.hub import AlertView
from monitor.alerting.pipeline import NotificationPipeline
from monitor.app.assembly import build_monitor
from monitor.app.httpapi import MonitorApi
from monitor.app.service import metrics_for
from monitor.app.status import model, page
from monitor.app.status.collect import StatusSource, snapshot
from monitor.app.status.model import ReloadRecord
from monitor.core.certinfo import CertificateInfo
from monitor.core.clock import ManualClock
from monitor.core.notifications import Action, Notification, Severity
from monitor.core.results import Outcome, ProbeResult
from monitor.detect.series import AlertStatus
from monitor.probing.engine import Job
from monitor.probing.httpclient import ClientFactory
from monitor.state.store import StateStore
from monitor.telemetry.rate import RateMeter
from monitor.tls.prober import TlsResult
from tests.helpers import BASE_CONFIG, ROOT, load

SCHEMA = json.loads((ROOT / "docs" / "status.schema.json").read_text())
CONFIG = (
    BASE_CONFIG.replace("static: [acme, globex]", "static: [acme, globex, initech]")
    + """
alerts:
  storm: {min_tenants: 2}
  latency_slo: {p95: 100ms, for: 2m}
notify:
  webhook: {url: "http://hooks.test/recmon"}
  delivery: {backoff_initial: 1s, backoff_max: 2s}
"""
)
FAILED_RELOAD = ReloadRecord(
    at=1_000.0,
    ok=False,
    source="probes.yaml",
    problems=(("defaults.retries", 2, "unknown key"),),
)


class Rig:
    """A Monitor and its notification pipeline on a manual clock; the webhook answers 503."""

    def __init__(self, client_factory: ClientFactory | None = None, config: str = CONFIG) -> None:
        self.clock = ManualClock(start=1_700_000_000.0)
        self.store = StateStore.open(":memory:")
        loaded = load(config)
        registry = CollectorRegistry()
        metrics = metrics_for(loaded.config, registry)
        hook = httpx.MockTransport(lambda request: httpx.Response(503, text="hook is down"))
        self.pipeline = NotificationPipeline(
            loaded.config.notify, self.store, clock=self.clock, metrics=metrics, transport=hook
        )
        self.monitor = build_monitor(
            loaded,
            clock=self.clock,
            registry=registry,
            metrics=metrics,
            route=self.pipeline.route,
            client_factory=client_factory,
        )
        self.reload: ReloadRecord = ReloadRecord(self.clock.time(), True, "probes.yaml")

    def probe(self, tenant: str, check: str, outcome: Outcome, latency: float = 0.05) -> None:
        items = 0 if outcome is Outcome.EMPTY else 5
        self.monitor.observe(
            ProbeResult(tenant, check, outcome, latency, self.clock.time(), 200, items)
        )

    def round(self, **faults: tuple[str, Outcome, float]) -> None:
        """Every tenant × check once, 10 s after the last round; `faults` per tenant."""
        self.clock.advance(10)
        for tenant in ("acme", "globex", "initech"):
            for check in ("search", "recommendations"):
                bad = faults.get(tenant)
                if bad is not None and bad[0] == check:
                    self.probe(tenant, check, bad[1], bad[2])
                else:
                    self.probe(tenant, check, Outcome.OK)
        self.monitor.hub.tick()

    def snapshot(self) -> model.Snapshot:
        source = StatusSource(
            monitor=self.monitor,
            pipeline=self.pipeline,
            persistence=None,
            state_path="/var/lib/recmon/state.db",
            started_at=self.clock.time() - 3600,
            config_source="probes.yaml",
        )
        return snapshot(source, self.reload)

    def status(self) -> dict[str, Any]:
        document = model.status_document(self.snapshot())
        # What /status serves: through JSON and back, as a client sees it.
        document = json.loads(json.dumps(document))
        jsonschema.validate(document, SCHEMA)
        return document


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    rig = Rig()
    assert await rig.monitor.refresh_tenants() == ("acme", "globex", "initech")
    yield rig
    rig.store.close()


def test_a_quiet_fleet_validates_and_has_nothing_on_fire(rig: Rig) -> None:
    rig.round()
    status = rig.status()
    assert status["tenants"] == 3
    assert status["checks"] == ["search", "recommendations"]
    assert status["incidents"] == []
    assert status["alerts"] == {"firing_count": 0, "pending_count": 0, "firing": [], "pending": []}
    assert status["config_reload"]["ok"] is True
    assert status["self"]["state_file"]["path"] == "/var/lib/recmon/state.db"
    assert status["self"]["up_since"] == {"at": "2023-11-14T21:13:30Z", "ago": "1h 00m"}


def test_alerts_firing_and_pending_name_rule_check_tenant_severity_since_and_paging(
    rig: Rig,
) -> None:
    # acme's recommendations come back empty (fires at once); globex's search is slow, which
    # the latency objective holds as pending for its `for: 2m`.
    slow = ("search", Outcome.OK, 0.5)
    for _ in range(3):
        rig.round(acme=("recommendations", Outcome.EMPTY, 0.05), globex=slow)
    status = rig.status()

    [firing] = status["alerts"]["firing"]
    assert firing["rule"] == "empty_results"
    assert firing["check"] == "recommendations"
    assert firing["tenant"] == "acme"
    assert firing["severity"] == "critical"
    assert firing["since"] == {"at": "2023-11-14T22:13:40Z", "ago": "10s"}
    assert firing["paged"] is False  # still in its group wait (60 s by default)
    [pending] = status["alerts"]["pending"]
    assert (pending["rule"], pending["check"], pending["tenant"]) == (
        "latency_slo",
        "search",
        "globex",
    )
    assert pending["severity"] == "warning"
    assert pending["paged"] is False
    [held] = status["incidents"]
    assert held["state"] == "held"
    assert held["scope"]["text"] == "acme"

    for _ in range(12):  # past the group wait: paged, to the webhook
        rig.round(acme=("recommendations", Outcome.EMPTY, 0.05), globex=slow)
    status = rig.status()
    firing_by_rule = {a["rule"]: a for a in status["alerts"]["firing"]}
    assert firing_by_rule["empty_results"]["paged"] is True
    assert firing_by_rule["empty_results"]["paged_as"] == (
        "recmon/empty_results/recommendations/acme"
    )
    assert "latency_slo" in firing_by_rule  # its 2 minutes are over
    incident = next(i for i in status["incidents"] if i["rule"] == "empty_results")
    assert incident["state"] == "paged"
    assert incident["paged_to"] == ["webhook"]
    assert incident["headline"] == "recommendations returned no items for acme"
    assert incident["scope"] == {
        "kind": "tenant",
        "text": "acme",
        "tenant_count": 1,
        "total_tenants": 3,
        "tenants": ["acme"],
    }


def test_a_storm_over_every_tenant_is_one_incident_scoped_to_the_fleet(rig: Rig) -> None:
    empty = ("recommendations", Outcome.EMPTY, 0.05)
    for _ in range(3):
        rig.round(acme=empty, globex=empty, initech=empty)
    status = rig.status()
    [incident] = status["incidents"]
    assert incident["state"] == "paged"
    assert incident["scope"]["kind"] == "fleet"
    assert incident["scope"]["text"] == "all 3 tenants"
    assert incident["headline"] == "recommendations returned no items for all 3 tenants"
    assert {a["paged_as"] for a in status["alerts"]["firing"]} == {
        "recmon/empty_results/recommendations/multiple-tenants"
    }
    # Paged twice (the storm, then its fleet-wide escalation), shown once, saying so.
    assert incident["escalated"] is True
    assert incident["summary"] == "recommendations returned no items for all 3 tenants; " + (
        "search is healthy for 3 of them, so the hop from the API to this check's backend is "
        "the likely cause"
    )


async def test_a_failing_sink_shows_its_answer_failures_retry_and_outbox_depth(rig: Rig) -> None:
    empty = ("recommendations", Outcome.EMPTY, 0.05)
    for _ in range(3):
        rig.round(acme=empty, globex=empty, initech=empty)  # a storm pages at once
    assert rig.status()["notifications"]["outbox_depth"] == 2  # and its fleet-wide escalation
    await rig.pipeline.dispatcher.deliver_due()
    status = rig.status()
    [sink] = status["notifications"]["sinks"]
    assert sink["name"] == "webhook"
    assert sink["healthy"] is False
    assert sink["last_result"] == "retry"
    assert sink["last_detail"] == "status 503: hook is down"
    assert sink["last_attempt"] == {"at": "2023-11-14T22:13:50Z", "ago": "0.0s"}
    assert sink["consecutive_failures"] == 1
    assert sink["next_retry"] is not None and "in" in sink["next_retry"]
    assert sink["pending"] == 2
    assert status["notifications"]["outbox_depth"] == 2
    await rig.pipeline.aclose()


def test_a_failed_reload_names_key_path_line_and_message(rig: Rig) -> None:
    rig.round()
    rig.reload = FAILED_RELOAD
    status = rig.status()
    assert status["config_reload"]["ok"] is False
    assert status["config_reload"]["errors"] == [
        {"key": "defaults.retries", "line": 2, "message": "unknown key"}
    ]
    assert status["config_reload"]["at"]["at"] == "1970-01-01T00:16:40Z"


def test_durations_and_times_are_readable() -> None:
    assert model.human_duration(0.0237) == "0.0s"
    assert model.human_duration(12.4) == "12s"
    assert model.human_duration(245) == "4m 05s"
    assert model.human_duration(7800) == "2h 10m"
    assert model.human_duration(3 * 86400 + 4 * 3600) == "3d 4h"
    assert model.moment(100.0, 160.0) == {"at": "1970-01-01T00:01:40Z", "ago": "1m 00s"}
    assert model.moment(200.0, 160.0) == {"at": "1970-01-01T00:03:20Z", "in": "40s"}


# --- the grid -------------------------------------------------------------------------------


def test_grid_puts_failing_tenants_first_filters_and_pages(rig: Rig) -> None:
    rig.round(initech=("search", Outcome.HTTP_ERROR, 0.05))
    snap = rig.snapshot()
    grid = model.grid(snap)
    assert [r.tenant for r in grid.rows] == ["initech", "acme", "globex"]
    assert [r.state for r in grid.rows] == ["failing", "ok", "ok"]
    assert grid.rows[0].cells[0].word == "http_error"
    assert [r.tenant for r in model.grid(snap, "glob").rows] == ["globex"]
    assert [r.tenant for r in model.grid(snap, "failing").rows] == ["initech"]
    second = model.grid(snap, page=2, size=2)
    assert (second.page, second.pages, [r.tenant for r in second.rows]) == (2, 2, ["globex"])
    assert dict(grid.counts) == {"failing": 1, "alerting": 0, "skipped": 0, "unknown": 0, "ok": 2}


def test_each_cell_shows_p95_against_baseline_empty_share_and_items(rig: Rig) -> None:
    for _ in range(4):
        rig.round(acme=("recommendations", Outcome.EMPTY, 0.05))
    rig.round()
    row = next(r for r in model.grid(rig.snapshot()).rows if r.tenant == "acme")
    cell = row.cells[1]
    assert (cell.check, cell.word, cell.state, cell.items) == ("recommendations", "ok", "ok", 5)
    assert cell.empty_share == pytest.approx(4 / 5)
    assert cell.p95_ms == pytest.approx(50.0, rel=0.005)  # the window histogram: within 0.5%
    assert [check for check, points in row.spark if points] == ["search", "recommendations"]


def test_sparkline_scales_latencies_into_the_box() -> None:
    points = model.sparkline([0.1, 0.2, None, 0.4], top=0.4).split()
    assert len(points) == 3  # the gap is left out
    assert points[-1] == "120,1"  # the highest value at the top right
    assert model.sparkline([0.1], top=0.1) == ""


# --- the HTTP surface -----------------------------------------------------------------------


def api_for(rig: Rig, *, ready: tuple[bool, str] = (True, "ready\n")) -> httpx.AsyncClient:
    api = MonitorApi(
        render_metrics=rig.monitor.metrics.render,
        is_alive=lambda: True,
        readiness=lambda: ready,
        snapshot=rig.snapshot,
        redact=lambda text: text.replace("acme", "[REDACTED]"),
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://recmon")


async def test_page_is_served_under_a_strict_policy_with_no_external_asset(rig: Rig) -> None:
    rig.round(globex=("search", Outcome.TIMEOUT, 2.0))
    async with api_for(rig) as client:
        response = await client.get("/")
        css = await client.get("/static/status.css")
        js = await client.get("/static/status.js")
        live = await client.get("/ui/live", params={"q": "glob"})
        tenant = await client.get("/tenants/globex")
        tenant_live = await client.get("/ui/tenant/globex")
        missing = await client.get("/tenants/nobody")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    html = response.text
    assert "<script>" not in html and "style=" not in html  # nothing inline for CSP to allow
    assert "http://" not in html.replace('href="http', "")  # no asset from elsewhere
    assert 'name="viewport"' in html
    assert 'data-tenant="globex"' in html and ">timeout<" in html
    assert "[REDACTED]" in html  # every page goes through the redactor
    assert css.headers["content-type"].startswith("text/css")
    assert "fetch(" in js.text
    assert set(live.json()["html"]) == {"top", "grid", "certs"}
    assert 'data-tenant="globex"' in live.json()["html"]["grid"]
    assert "initech" not in live.json()["html"]["grid"]
    assert tenant.status_code == 200 and "Recent probes" in tenant.text
    assert 'data-live="/ui/tenant/globex"' in tenant.text  # the tenant page refreshes too
    assert ">timeout<" in tenant_live.json()["html"]["tenant"]
    assert missing.status_code == 404


async def test_readyz_body_and_status_show_a_failed_reload(rig: Rig) -> None:
    rig.reload = FAILED_RELOAD
    text = "ready\nconfiguration reload failed at 1970-01-01T00:16:40Z; ...\n"
    async with api_for(rig, ready=(True, text)) as client:
        ready = await client.get("/readyz")
        status = (await client.get("/status")).json()
        html = (await client.get("/")).text
    assert ready.status_code == 200 and "reload failed" in ready.text
    assert status["config_reload"]["errors"][0]["key"] == "defaults.retries"
    assert "reload FAILED" in html and "defaults.retries" in html and "(line 2)" in html


def fleet(tenants: int, failing: set[int]) -> model.Snapshot:
    names = [f"t{i:05d}" for i in range(tenants)]
    latest = {
        (name, "search"): ProbeResult(
            name, "search", Outcome.TIMEOUT if i in failing else Outcome.OK, 0.05, 0.0, 200, 5
        )
        for i, name in enumerate(names)
    }
    return model.Snapshot(
        now=0,
        version="",
        shard="",
        config_source="",
        tenants=names,
        checks=("search",),
        interval_s=60,
        latest=latest,
        skips={},
        paged=(),
        sinks=(),
        outbox_depth=0,
        reload=None,
        health=model.SelfHealth(0, 0, 0, 0, True, True, "", None, None, None, 0),
        certificates={},
    )


def test_a_large_fleet_renders_one_bounded_page_failing_first() -> None:
    snap = fleet(2_500, failing={1_234, 2_001})
    html = page.render_index(snap)
    assert html.count('<tr id="t-') == model.PAGE_ROWS  # whatever the fleet's size
    assert html.index('id="t-t01234"') < html.index('id="t-t02001"') < html.index('id="t-t00000"')
    assert "page 1 of 25" in html
    last = page.render_index(snap, page=25)
    assert last.count('<tr id="t-') == 100 and 'id="t-t02499"' in last
    assert page.refresh_seconds(snap) == 10.0  # half the interval, at most 10 s


def cert(fingerprint: str, not_after: float) -> CertificateInfo:
    return CertificateInfo(
        subject="CN=api.test",
        common_name="api.test",
        dns_names=("api.test",),
        ip_addresses=(),
        issuer="CN=Test CA",
        serial="01",
        not_before=0.0,
        not_after=not_after,
        fingerprint_sha256=fingerprint,
        self_signed=False,
    )


def tls(address: str, certificate: CertificateInfo | None, reason: str = "") -> TlsResult:
    return TlsResult(
        "api.test", 443, address, "api.test", not reason, reason, reason, certificate, 0.01, 0.0
    )


def test_certificates_show_each_address_and_per_host_earliest_expiry_and_consistency() -> None:
    day = 86_400.0
    snap = replace(
        fleet(1, failing=set()),
        now=10 * day,
        certificates={
            "api.test:443": (
                tls("127.0.0.2", cert("aa" * 32, 40 * day)),
                tls("127.0.0.3", cert("aa" * 32, 40 * day)),
                tls("127.0.0.4", cert("bb" * 32, 12 * day)),  # left behind by a rotation
                tls("127.0.0.5", cert("cc" * 32, 5 * day), reason="expired"),
            )
        },
    )
    rows = model.certificate_rows(snap)
    assert [(r.address, r.fingerprint, r.valid, r.reason) for r in rows] == [
        ("127.0.0.2", "a" * 16, True, ""),
        ("127.0.0.3", "a" * 16, True, ""),
        ("127.0.0.4", "b" * 16, True, ""),
        ("127.0.0.5", "c" * 16, False, "expired"),
    ]
    assert rows[2].days_left == pytest.approx(2.0)
    [host] = model.certificate_hosts(snap)
    # The earliest expiry among what clients accept; the expired one is tls_invalid's.
    assert host.earliest_expiry == 12 * day and host.days_left == pytest.approx(2.0)
    assert (host.certificates, host.consistent) == (3, False)
    assert host.invalid_addresses == ("127.0.0.5",)
    [entry] = model.status_document(snap)["certificates"]
    assert entry["earliest_expiry"] == {"at": "1970-01-13T00:00:00Z", "in": "2d 0h"}
    html = page.render_index(snap)
    assert "3 different certificates" in html and "invalid at 127.0.0.5" in html
    assert "<code>bbbbbbbbbbbbbbbb</code>" in html and ">expired<" in html


def test_a_storm_escalated_fleet_wide_is_one_incident_worded_like_its_page() -> None:
    storm_key = "recmon/empty_results/recommendations/multiple-tenants"
    names = [f"t{i:05d}" for i in range(37)]
    storm = Notification(
        id="s", key=storm_key, action=Action.TRIGGER, rule="empty_results",
        severity=Severity.CRITICAL, summary="recommendations returned no items for 5 tenants",
        started_at=0.0, at=0.0, check="recommendations", details={"tenants": names[:5]},
    )  # fmt: skip
    escalation = replace(
        storm,
        id="e",
        key=f"{storm_key}/fleet-wide",
        summary="recommendations returned no items for 37 of 40 tenants (92%)",
        details={"storm_key": storm_key, "scope": "fleet-wide"},
    )
    alerts = [
        AlertView(
            f"recmon/empty_results/recommendations/{name}",
            "empty_results",
            "",
            name,
            "recommendations",
            AlertStatus.FIRING,
            Severity.CRITICAL,
            0.0,
            "",
            storm_key,
        )
        for name in names
    ]
    snap = replace(fleet(40, failing=set()), paged=(storm, escalation), alert_source=lambda: alerts)
    [incident] = model.incidents(snap)
    assert incident.escalated and incident.key == storm_key
    assert (incident.scope.kind, incident.scope.count, incident.scope.total) == ("fleet", 37, 40)
    assert incident.headline == "recommendations returned no items for 37 of 40 tenants (92%)"
    assert incident.summary == escalation.summary


def test_probe_rate_is_over_the_last_complete_seconds_since_the_first_probe() -> None:
    meter = RateMeter(span_s=60)
    assert meter.rate(100.0) == 0.0
    for tick in range(10):  # 5 probes a second for 10 s, from t=100
        for _ in range(5):
            meter.add(100.0 + tick + 0.1)
    assert meter.rate(110.5) == 5.0  # not averaged over a minute it was not up for
    assert meter.rate(160.5) == pytest.approx(45 / 59)  # 9 of its seconds in the last 59
    assert meter.rate(300.0) == 0.0


async def test_the_tenant_page_lists_recent_probes_with_status_and_reason(rig: Rig) -> None:
    clock, monitor = rig.clock, rig.monitor
    for status, outcome, reason in (
        (401, Outcome.AUTH_ERROR, "status 401: the tenant's key rejected"),
        (502, Outcome.HTTP_ERROR, "unexpected status 502"),
        (None, Outcome.TIMEOUT, "no complete response within 2s"),
        (200, Outcome.OK, ""),
    ):
        clock.advance(10)
        monitor.observe(
            ProbeResult("acme", "search", outcome, 0.05, clock.time(), status, 5, reason)
        )
    detail = model.tenant_detail(rig.snapshot(), "acme")
    assert detail is not None
    # Newest first; the window keeps reasons, from which the status is read back.
    assert [(p.outcome, p.status, p.reason) for p in detail.probes] == [
        ("ok", "200", ""),
        ("timeout", "-", "no complete response within 2s"),
        ("http_error", "502", "unexpected status 502"),
        ("auth_error", "401", "status 401: the tenant's key rejected"),
    ]
    assert model.tenant_detail(rig.snapshot(), "nobody") is None


# --- whose skip, and over which window --------------------------------------------------------


async def test_a_tenants_own_skips_are_on_its_row_not_under_recmons_health() -> None:
    """acme's search answers 502, so its recommendations have no product to ask for and are
    skipped (reason missing_variable): acme's doing, shown on acme's row; recmon itself
    skipped nothing."""

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/acme/search":
            return httpx.Response(502)
        if request.url.path.endswith("/search"):
            return httpx.Response(200, json={"results": [{"id": "p1"}]})
        return httpx.Response(200, json={"recommendations": [1, 2]})

    rig = Rig(
        client_factory=lambda name, target, timeout: httpx.AsyncClient(
            transport=httpx.MockTransport(api), base_url=target.base_url
        )
    )
    assert await rig.monitor.refresh_tenants() == ("acme", "globex", "initech")
    for _ in range(3):
        rig.clock.advance(10)
        for tenant in ("acme", "globex", "initech"):
            await rig.monitor.engine.run_job(Job(tenant, "search"))
    skipped = rig.monitor.metrics.registry.get_sample_value(
        "recmon_probes_skipped_total", {"check": "recommendations", "reason": "missing_variable"}
    )
    assert skipped == 3

    status = rig.status()
    assert status["self"]["skipped_runs"] == 0
    assert status["tenant_skipped_runs"] == 3
    snap = rig.snapshot()
    [acme] = [r for r in model.grid(snap).rows if r.tenant == "acme"]
    search, recommendations = acme.cells
    assert (search.state, recommendations.state) == ("failing", "skipped")
    assert recommendations.skipped_runs == 3
    assert "search did not succeed" in recommendations.reason
    html = page.render_index(snap)
    assert ">0 runs skipped by recmon<" in html
    row = html[html.index('id="t-acme"') : html.index("</tr>", html.index('id="t-acme"'))]
    assert "3 runs of this tenant skipped since start" in row
    assert "search did not succeed, so captured nothing" in row
    assert "skipped since start" not in html.replace(row, "")  # on acme's row only
    rig.store.close()


def test_the_empty_share_is_over_the_empty_results_window_not_every_stored_sample(
    rig: Rig,
) -> None:
    """Recommendations empty for acme for 40 s, then 7 minutes of good answers: the window
    the rule judges (5 minutes) holds no empty answer any more, though the stored samples
    (kept 15 minutes for error_rate) still do."""
    for _ in range(4):
        rig.round(acme=("recommendations", Outcome.EMPTY, 0.05))
    for _ in range(42):
        rig.round()
    snap = rig.snapshot()
    view = snap.series("acme", "recommendations")
    assert view is not None and "empty" in [s[1] for s in view.samples]
    [acme] = [r for r in model.grid(snap).rows if r.tenant == "acme"]
    cell = acme.cells[1]
    assert (cell.empty_share, cell.empty_window_s) == (0.0, 300.0)
    html = page.render_index(snap)
    row = html[html.index('id="t-acme"') : html.index("</tr>", html.index('id="t-acme"'))]
    assert row.count("empty 0% (5m)") == 2, row  # search and recommendations

    # Two minutes later it empties again: 2 of the last 5 minutes' 31 probes.
    rig.round(acme=("recommendations", Outcome.EMPTY, 0.05))
    rig.round(acme=("recommendations", Outcome.EMPTY, 0.05))
    [acme] = [r for r in model.grid(rig.snapshot()).rows if r.tenant == "acme"]
    assert acme.cells[1].empty_share == pytest.approx(2 / 30)


async def test_after_taking_over_a_state_file_the_tenant_page_shows_the_alert_carried_over(
    rig: Rig,
) -> None:
    """`recmon once` paged acme's empty recommendations and saved its state; a `recmon run`
    started later takes the state file over: its page lists the firing alert in the history
    too (saying where it came from), and the probes carried over with their status."""
    empty = ("recommendations", Outcome.EMPTY, 0.05)
    for _ in range(9):  # fires, and pages once the group wait (60 s) is over
        rig.round(acme=empty)
    saved = rig.monitor.hub.memory()

    later = Rig()
    later.clock.advance(rig.clock.time() - later.clock.time() + 30)
    assert await later.monitor.refresh_tenants()
    later.monitor.hub.restore(saved)
    source = StatusSource(
        monitor=later.monitor,
        pipeline=later.pipeline,
        persistence=None,
        state_path="recmon-state.db",
        started_at=later.clock.time(),
        config_source="probes.yaml",
    )
    snap = snapshot(source, later.reload)
    detail = model.tenant_detail(snap, "acme")
    assert detail is not None
    [alert] = detail.alerts
    assert alert.paged_as is not None
    [entry] = detail.history
    assert (entry.event, entry.rule, entry.check, entry.at) == (
        "firing",
        "empty_results",
        "recommendations",
        alert.since,
    )
    assert entry.note == "fired before this recmon started: carried over from the state file"
    # No probe since the takeover: every one listed was carried over, and each was a 200.
    assert detail.probes and {p.status for p in detail.probes} == {"200"}
    html = page.render_tenant(snap, "acme")
    assert html is not None
    assert "no alert since recmon started" not in html
    assert "carried over from the state file" in html
    probes = html[html.index('<table class="probes">') :]
    assert "<td>-</td>" not in probes and "<td>200</td>" in probes
    later.store.close()


# The rig's clock starts at 2023-11-14T22:13:20Z.
MAINTENANCE = "  maintenance: [{start: 2023-11-14T22:00:00Z, end: 2023-11-14T23:30:00Z}]\n"


@pytest.mark.parametrize(
    ("config", "rounds", "held_by", "pages_at", "text"),
    [
        (
            CONFIG,
            3,
            "group_wait",
            {"at": "2023-11-14T22:14:40Z", "in": "50s"},
            "not paged yet: group wait — pages at 22:14:40 UTC (in 50s) if it still fires",
        ),
        (
            CONFIG.replace("alerts:\n", "alerts:\n" + MAINTENANCE),
            9,
            "maintenance",
            {"at": "2023-11-14T23:30:00Z", "in": "1h 15m"},
            "not paged: maintenance window until 23:30:00 UTC (in 1h 15m); pages then if it "
            "still fires",
        ),
        (
            CONFIG.replace("notify:\n", "notify:\n  tenant_pages: rules\n"),
            9,
            "rules",
            None,
            "not paged from here: notify.tenant_pages is rules, so the cross-location "
            "Prometheus rules page tenant problems",
        ),
    ],
)
async def test_a_held_incident_says_the_one_reason_and_when_it_pages(
    config: str, rounds: int, held_by: str, pages_at: dict[str, str] | None, text: str
) -> None:
    rig = Rig(config=config)
    assert await rig.monitor.refresh_tenants()
    for _ in range(rounds):
        rig.round(acme=("recommendations", Outcome.EMPTY, 0.05))
    [incident] = rig.status()["incidents"]
    assert (incident["state"], incident["held_by"], incident["pages_at"]) == (
        "held",
        held_by,
        pages_at,
    )
    html = page.render_index(rig.snapshot())
    assert text in html
    assert "group wait, maintenance, or" not in html
    rig.store.close()


async def test_a_skip_after_recmons_own_withheld_timeout_is_recmons_not_the_tenants(
    rig: Rig,
) -> None:
    """search's timeout withheld (recmon's loop ran late) leaves recommendations nothing to
    ask for: that skip is recmon's too, on its own count, not on the tenant's row."""
    engine = rig.monitor.engine
    assert engine.withheld_sink is not None and engine.skip_sink is not None
    rig.clock.advance(10)
    late = ProbeResult("acme", "search", Outcome.TIMEOUT, 2.0, rig.clock.time(), None, None)
    engine.withheld_sink(late)  # what the engine does with it, then with its dependant:
    engine.skip_sink("acme", "recommendations", "no {product}: search did not succeed")
    engine.skip_sink("globex", "recommendations", "no {product}: search did not succeed")
    status = rig.status()
    assert status["self"]["skipped_runs"] == 2  # acme's search and its recommendations
    assert status["tenant_skipped_runs"] == 1  # globex's own
    rows = {r.tenant: r for r in model.grid(rig.snapshot()).rows}
    assert rows["acme"].cells[1].reason == (
        "search's timeout was withheld (recmon's event loop ran late): no capture"
    )
    assert rows["acme"].cells[1].skipped_runs == 0
    assert rows["globex"].cells[1].skipped_runs == 1


async def test_a_fleet_incident_is_one_incident_with_the_tenant_alerts_it_folds() -> None:
    """A third of every tenant's searches failing: the status page shows one paged incident
    scoped to the fleet, worded like its page, the tenant alerts folded under it paged as
    part of it (never 'not paged yet')."""
    rig = Rig(
        config=CONFIG.replace(
            "  storm: {min_tenants: 2}\n",
            "  storm: {min_tenants: 2}\n"
            "  fleet: {intervals: 3, min_probes: 3, min_tenants: 2, confidence: 0.6}\n",
        )
    )
    await rig.monitor.refresh_tenants()
    tenants = ("acme", "globex", "initech")
    for n in range(12):
        rig.round(**{tenants[n % 3]: ("search", Outcome.HTTP_ERROR, 0.05)})
    status = rig.status()
    [incident] = status["incidents"]
    assert incident["state"] == "paged" and incident["rule"] == "fleet_failures"
    assert incident["scope"]["kind"] == "fleet"
    assert incident["scope"]["text"] == "all 3 tenants"
    headline = incident["headline"]
    assert headline.startswith("search failing for ") and "across all 3 tenants (" in headline
    folded = [a for a in status["alerts"]["firing"] if a["rule"] == "error_rate"]
    assert folded and {a["paged_as"] for a in folded} == {"recmon/fleet_failures/search/-"}
    rig.store.close()


def test_a_fleet_slo_page_is_one_incident_over_every_tenant() -> None:
    trigger = Notification(
        id="recmon/slo_burn/search/-@1:trigger",
        key="recmon/slo_burn/search/-",
        action=Action.TRIGGER,
        rule="slo_burn",
        severity=Severity.CRITICAL,
        summary="search: error budget burning 14.6× (1 h) and 196.2× (5 m) — 99.5% over 30 days",
        started_at=0.0,
        at=0.0,
        check="search",
        details={"scope": "fleet", "objective": 0.995},
    )
    snap = replace(fleet(40, failing=set()), paged=(trigger,))
    (incident,) = model.incidents(snap)
    assert incident.headline == "search error budget is burning for all 40 tenants"
    assert incident.summary.startswith("search: error budget burning 14.6×")


def test_an_offboarded_tenant_leaves_no_row_behind(rig: Rig) -> None:
    """A tenant skipped (no credential) and then offboarded: its skip, latest results and skip
    counts all go, so the status page shows no row for a tenant recmon no longer probes."""
    rig.round()
    rig.monitor.ledger.not_probed("initech", "search", "no credential {api_key}")
    assert rig.monitor.skips[("initech", "search")] == "no credential {api_key}"
    rig.monitor.ledger.forget_tenant("initech")
    for table in (rig.monitor.skips, rig.monitor.latest, rig.monitor.tenant_skips):
        assert not [key for key in table if key[0] == "initech"], table
    assert [key for key in rig.monitor.latest if key[0] == "acme"]
