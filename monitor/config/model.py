"""The configuration as typed, frozen, validated objects. Key names are a contract
(docs/ARCHITECTURE.md)."""

from __future__ import annotations

import base64
import ipaddress
import re
from collections import Counter
from datetime import datetime
from typing import Annotated, Any, Literal, Optional
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    create_model,
    model_validator,
)

from monitor.config.units import Rate, parse_duration, parse_rate, parse_size
from monitor.core.conditions import compile_condition, compile_schema
from monitor.core.jsonpath import JsonPath, compile_path
from monitor.core.notifications import Severity
from monitor.core.results import Outcome
from monitor.core.tenancy import validate_tenant_id

Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
ByteSize = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]
RateLimit = Annotated[Rate, PlainValidator(parse_rate)]


def _compile_path(value: object) -> JsonPath:
    if isinstance(value, JsonPath):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a JSON path string like $.results")
    return compile_path(value)


JsonPathField = Annotated[JsonPath, PlainValidator(_compile_path)]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {value!r}")
    return value.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]


def _proxy_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "http" or not parts.hostname:
        # The value is not echoed: it may carry the proxy's password.
        raise ValueError("expected an http://[user:password@]host:port proxy URL")
    return value


ProxyUrl = Annotated[str, AfterValidator(_proxy_url)]


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"expected an IP address like 10.0.0.3, got {value!r}") from None


IpAddressText = Annotated[str, AfterValidator(_ip_address)]


def _listen_address(value: str) -> str:
    _, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {value!r}")
    return value


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


class Defaults(Model):
    interval: Duration = 60.0
    timeout: Duration = 5.0


class TargetTLS(Model):
    verify: bool = True
    ca_file: str | None = None
    # A client certificate for mTLS (PEM), with its private key: re-read when they change.
    cert_file: str | None = None
    key_file: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> TargetTLS:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("set both cert_file and key_file for a client certificate")
        return self


# Every `<key>_file` below names a file (a mounted secret) whose content, whitespace trimmed,
# is `<key>`: the loader reads it (config.secretfiles), so `<key>` is always set after loading.


class BasicAuth(Model):
    username: str
    password: str
    password_file: str | None = None

    @property
    def credentials(self) -> str:
        """The base64 credentials of the Authorization header (a secret too)."""
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


class OAuth2Spec(Model):
    """OAuth2 client credentials: one token per target, cached and refreshed before expiry."""

    token_url: HttpUrl
    client_id: Annotated[str, Field(min_length=1)]
    client_secret: Annotated[str, Field(min_length=1)]
    client_secret_file: str | None = None
    scopes: list[str] = []
    endpoint_params: dict[str, str] = {}
    timeout: Duration = 10.0


class Target(Model):
    base_url: HttpUrl
    headers: dict[str, str] = {}
    # Header values read from files (a mounted secret), the Prometheus *_file convention.
    header_files: dict[str, str] = {}
    basic_auth: BasicAuth | None = None
    oauth2: OAuth2Spec | None = None
    rate_limit: RateLimit | None = None
    max_connections: int = Field(100, ge=1, le=10_000)
    tls: TargetTLS = TargetTLS()
    # This target's requests go through it (HTTP_PROXY/HTTPS_PROXY/NO_PROXY then do not
    # apply to them); its password is a secret.
    proxy: ProxyUrl | None = None
    # The backends behind base_url's host name (IP addresses), instead of what it resolves
    # to; new connections take them in turn (transport asyncio only).
    addresses: list[IpAddressText] = []

    @model_validator(mode="after")
    def _one_scheme(self) -> Target:
        if self.basic_auth is not None and self.oauth2 is not None:
            raise ValueError("set basic_auth or oauth2, not both")
        return self

    def credential_kinds(self) -> list[str]:
        """Which credentials recmon itself sends to this target, in words (never values)."""
        kinds = []
        if self.oauth2 is not None:
            kinds.append("the OAuth2 token")
        if self.basic_auth is not None:
            kinds.append("the basic auth password")
        auth_headers = [
            name
            for name in (*self.headers, *self.header_files)
            if name.lower() not in ("user-agent", "accept", "content-type")
        ]
        if auth_headers:
            kinds.append("header " + ", ".join(sorted(auth_headers)))
        if self.tls.cert_file is not None:
            kinds.append("the client certificate")
        if self.proxy is not None and urlsplit(self.proxy).password:
            # Plain http through a proxy: its refusal is an HTTP answer like the origin's.
            kinds.append("the proxy credentials")
        return kinds


HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"path must start with '/', got {value!r}")
    return value


class RequestSpec(Model):
    method: Annotated[HttpMethod, BeforeValidator(_upper)] = "GET"
    path: Annotated[str, AfterValidator(_absolute_path)]
    params: dict[str, str] = {}
    headers: dict[str, str] = {}
    json_body: Any = Field(None, alias="json")
    follow_redirects: bool = False


ConditionName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]


class ConditionSpec(Model):
    """One condition on the response (monitor/core/conditions.py): failed, the probe is
    wrong_content and its reason names the condition and the offending value."""

    name: ConditionName
    path: JsonPathField
    op: Literal["==", "!=", "<", "<=", ">", ">=", "in", "not_in", "matches", "present", "absent"]
    value: Any = None
    # Compare the length of the list (string, object) at the path, not the value itself.
    length: bool = False

    @model_validator(mode="after")
    def _compiles(self) -> ConditionSpec:
        compile_condition(self.name, self.path, self.op, self.value, length=self.length)
        return self


def _unique_names(conditions: list[ConditionSpec]) -> list[ConditionSpec]:
    names = Counter(c.name for c in conditions)
    repeated = sorted(n for n, count in names.items() if count > 1)
    if repeated:
        raise ValueError(f"condition names must be unique; repeated: {', '.join(repeated)}")
    return conditions


def _json_schema(value: object) -> dict[str, Any]:
    compile_schema(value)
    assert isinstance(value, dict)
    return value


class Expect(Model):
    status: list[Annotated[int, Field(ge=100, le=599)]] = Field(default=[200], min_length=1)
    items: JsonPathField | None = None
    min_items: int = Field(1, ge=0)
    max_body_bytes: ByteSize = 1024 * 1024
    # Checked only when the body is parsed (items or capture set); null accepts any type.
    content_type: str | None = "application/json"
    # Conditions on the content and a JSON Schema: judged once the items are there.
    conditions: Annotated[list[ConditionSpec], AfterValidator(_unique_names)] = []
    json_schema: Annotated[dict[str, Any], AfterValidator(_json_schema)] | None = Field(
        None, alias="schema"
    )
    # The key that identifies an item (scalar items are their own id): what fingerprints,
    # foreign items and frozen answers are judged on.
    item_id: Annotated[str, Field(min_length=1)] = "id"
    # One list answering different requests, or most tenants at once, pages as a fallback.
    # Unset: on for checks with items. Off for a check whose answers are legitimately alike.
    fallback: bool | None = None
    # Tenants' catalogues are disjoint: an item id answered to two tenants is a leak.
    items_disjoint_across_tenants: bool = False
    # An answer that has not changed at all for this long is frozen (a stale cache).
    changes_within: Duration | None = None


class RetrySpec(Model):
    # Total attempts, the first included. Retries happen inside the probe's one deadline.
    attempts: int = Field(1, ge=1, le=10)
    outcomes: list[Outcome] = [Outcome.CONNECT_ERROR]
    backoff: Duration = 0.1


class CaptureSpec(Model):
    path: JsonPathField
    # first: the first value the path selects. rotate: each round the next of its values
    # (by the round's start time), so recommendations are asked about every search result
    # in turn and a list that answers them all is seen as the fallback it is.
    pick: Literal["first", "rotate"] = "first"


def _capture(value: object) -> object:
    return value if isinstance(value, dict | CaptureSpec) else {"path": value}


def _objective(value: object) -> object:
    """0.995, 99.5 or "99.5%" (Sloth and Pyrra write percentages): the share of probes ok."""
    percent = isinstance(value, str) and value.strip().endswith("%")
    if percent:
        try:
            value = float(str(value).strip()[:-1])
        except ValueError:
            raise ValueError(f"expected an objective like 99.5% or 0.995, got {value!r}") from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value >= 100 or (value == 1 and not percent):
            raise ValueError("an objective of 100% leaves no error budget; use e.g. 99.5% or 0.995")
        if percent or value > 1:
            return value / 100
    return value


class SloSpec(Model):
    """A service level objective for a check: `objective` of its probes ok over `window`
    (all tenants pooled; with per_tenant also each tenant's own), alerted on its burn rate
    (detect.slo, and the rules deploy/prometheus/slo.py generates)."""

    objective: Annotated[float, BeforeValidator(_objective), Field(gt=0, lt=1)]
    window: Duration = 30 * 86400.0
    # Each tenant gets the same objective on its own probes too (fleet-wide always).
    per_tenant: bool = False
    # Outcomes that spend the budget; default: every outcome but ok.
    errors: list[Outcome] | None = None

    @model_validator(mode="after")
    def _errors(self) -> SloSpec:
        if self.errors is not None and (not self.errors or Outcome.OK in self.errors):
            raise ValueError("errors: list the outcomes that spend the budget (not ok)")
        return self

    @property
    def error_outcomes(self) -> frozenset[Outcome]:
        return frozenset(self.errors or [o for o in Outcome if o is not Outcome.OK])


class CheckSpec(Model):
    target: str
    request: RequestSpec
    expect: Expect = Expect()
    # Values taken from this check's response, usable as {name} by checks that run after it:
    # a JSON path (its first value) or {path, pick: rotate}.
    capture: dict[str, Annotated[CaptureSpec, BeforeValidator(_capture)]] = {}
    # Run after this check, in the same round for the tenant, with its captures available.
    after: str | None = None
    interval: Duration | None = None
    timeout: Duration | None = None
    retry: RetrySpec = RetrySpec()
    enabled: bool = True
    slo: SloSpec | None = None


TenantId = Annotated[str, PlainValidator(validate_tenant_id)]


def _unique(values: list[str]) -> list[str]:
    duplicates = sorted(v for v, n in Counter(values).items() if n > 1)
    if duplicates:
        raise ValueError(f"tenant ids must be unique; repeated: {', '.join(duplicates)}")
    return values


class DiscoverSpec(Model):
    url: HttpUrl
    items: JsonPathField = compile_path("$.tenants[*].id")
    refresh: Duration = 600.0
    timeout: Duration = 10.0
    headers: dict[str, str] = {}
    header_files: dict[str, str] = {}
    # Send the discovery request with this target's credentials: its headers, basic auth,
    # client certificate and OAuth2 token.
    target: str | None = None
    max_tenants: int = Field(100_000, ge=1)


class CredentialsSpec(Model):
    """Per-tenant credentials from mounted secrets, exposed to templates as `variable`."""

    # A directory with one file per tenant, named by its id (how a Kubernetes Secret mounts).
    dir: str | None = None
    # A YAML or JSON file mapping tenant id to its credential.
    file: str | None = None
    variable: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = "credential"
    # How often the files are checked for changes (a rotation is picked up without restart).
    refresh: Duration = 10.0

    @model_validator(mode="after")
    def _one_source(self) -> CredentialsSpec:
        if (self.dir is None) == (self.file is None):
            raise ValueError("set exactly one of dir or file")
        return self


class TenantsSpec(Model):
    static: Annotated[list[TenantId], Field(min_length=1), AfterValidator(_unique)] | None = None
    file: str | None = None
    discover: DiscoverSpec | None = None
    vars: dict[str, dict[str, str]] = {}
    default_vars: dict[str, str] = {}
    credentials: CredentialsSpec | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> TenantsSpec:
        sources = [n for n in ("static", "file", "discover") if getattr(self, n) is not None]
        if len(sources) != 1:
            raise ValueError(
                "set exactly one tenant source: static, file or discover"
                + (f" (found {', '.join(sources)})" if sources else "")
            )
        return self


class EngineSpec(Model):
    # Probes running at once, across all targets. Keep it below the sum of max_connections:
    # requests that queue for a pooled connection measure the monitor, not the target.
    max_in_flight: int = Field(256, ge=1, le=100_000)
    # asyncio: the httpx API on recmon's own HTTP/1.1 transport (monitor/probing/transport), about a
    # quarter less CPU per probe than aiohttp (the httpx API on httpx-aiohttp), which in turn
    # needs a quarter of httpx's own pool; that one degrades steeply with many connections.
    transport: Literal["httpx", "aiohttp", "asyncio"] = "asyncio"


class MetricsSpec(Model):
    # Loopback unless told otherwise: what is served names tenants and failure reasons.
    listen: Annotated[str, AfterValidator(_listen_address)] = "127.0.0.1:9464"
    # TLS and basic auth for /, /status and /metrics: a web configuration file in the
    # Prometheus exporters' format (config.webconfig); `recmon run --web.config.file` too.
    web_config_file: str | None = None
    pushgateway: HttpUrl | None = None
    job: str = "recmon"
    # Per-tenant latency histograms cost ~14 series per tenant and check; off keeps one
    # histogram per check (tenant="_all") and per-tenant p95 gauges. Unset: on up to
    # PER_TENANT_HISTOGRAMS_UP_TO (1,000) tenants, off above.
    per_tenant_histograms: bool | None = None


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"expected host:port, like api.example.com:443, got {value!r}")
    return value


HostPort = Annotated[str, AfterValidator(_host_port)]


class TlsSpec(Model):
    """Certificates on every backend address of each host."""

    hosts: list[HostPort] = []
    # Also check the host of every target whose base_url is https.
    include_targets: bool = False
    # Backends behind one name that DNS does not list: {"api.example.com:443": [10.0.0.1, ...]}.
    addresses: dict[HostPort, list[str]] = {}
    interval: Duration = 300.0
    timeout: Duration = 5.0
    warn_before: Duration = 14 * 86400.0
    critical_before: Duration = 3 * 86400.0
    # How long addresses of one host may serve different certificates (a rotation in
    # progress) before that is an alert.
    inconsistency_grace: Duration = 900.0
    # An address that serves no certificate (refused, timed out) is judged on the one it served
    # last for this long; past it, tls_unreachable pages, naming it.
    unreachable_after: Duration = 900.0
    # Certificate alerts resolve after this many consecutive clear rounds.
    success_threshold: int = Field(2, ge=1)
    ca_file: str | None = None


class PagerDutySpec(Model):
    routing_key: Annotated[str, Field(min_length=1)]
    routing_key_file: str | None = None
    # Configurable for the EU region and for tests.
    url: HttpUrl = "https://events.pagerduty.com/v2/enqueue"
    timeout: Duration = 10.0
    source: str = "recmon"


class AlertmanagerSpec(Model):
    url: HttpUrl  # base URL; alerts go to {url}/api/v2/alerts
    # Firing alerts are re-sent this often; Alertmanager resolves alerts not re-sent within
    # its resolve_timeout (5m by default), so keep this well below that.
    resend_interval: Duration = 60.0
    timeout: Duration = 10.0
    headers: dict[str, str] = {}
    header_files: dict[str, str] = {}


class WebhookSpec(Model):
    url: HttpUrl
    headers: dict[str, str] = {}
    header_files: dict[str, str] = {}
    timeout: Duration = 10.0


class HeartbeatSpec(Model):
    """A dead man's switch: pinged while recmon works, so a silent monitor gets noticed."""

    url: HttpUrl
    # The URL is usually its own credential (https://hc-ping.com/<uuid>): it may live in a file.
    url_file: str | None = None
    interval: Duration = 60.0
    timeout: Duration = 10.0


class DeliverySpec(Model):
    # Failed deliveries are retried with exponential backoff between these bounds, forever:
    # a notifier outage delays alerts, it never drops them.
    backoff_initial: Duration = 1.0
    backoff_max: Duration = 300.0


class NotifySpec(Model):
    pagerduty: PagerDutySpec | None = None
    alertmanager: AlertmanagerSpec | None = None
    webhook: WebhookSpec | None = None
    heartbeat: HeartbeatSpec | None = None
    delivery: DeliverySpec = DeliverySpec()
    # Where docs/ is published (e.g. https://git.example.com/recmon/blob/main): pages then
    # link their runbook; without it they carry none.
    runbook_base_url: HttpUrl | None = None
    # direct: recmon pages its tenant alerts itself. rules: it sends none (they still show in
    # metrics, logs and /status): in a multi-location deployment the cross-location rules in
    # deploy/prometheus page them, classified, so one location's network never pages alone.
    tenant_pages: Literal["direct", "rules"] = "direct"


class StateSpec(Model):
    path: str = "recmon-state.db"


Share = Annotated[float, Field(gt=0, le=1)]
# Outcomes that count as failures for the failures rule: everything but ok, and empty and
# auth_error (which have rules of their own), so one incident maps to one alert.
FAILURE_OUTCOMES: list[Outcome] = [
    o for o in Outcome if o not in (Outcome.OK, Outcome.EMPTY, Outcome.AUTH_ERROR)
]


class EmptyResultsRule(Model):
    """Fires when a check keeps returning fewer items than min_items (recommendations missing)."""

    enabled: bool = True
    failure_threshold: int = Field(2, ge=1)  # consecutive empty probes
    success_threshold: int = Field(2, ge=1)  # consecutive ok probes to resolve
    window: Duration = 300.0
    share: Share = 0.5  # ...or this share of the window's probes empty
    min_probes: int = Field(3, ge=1)
    severity: Severity = Severity.CRITICAL


class FailuresRule(Model):
    """Fires when a check keeps failing: http_error, timeout, connect_error, tls_error, ..."""

    enabled: bool = True
    outcomes: list[Outcome] = FAILURE_OUTCOMES
    failure_threshold: int = Field(3, ge=1)
    success_threshold: int = Field(2, ge=1)
    window: Duration = 300.0
    share: Share = 0.5
    min_probes: int = Field(5, ge=1)
    severity: Severity = Severity.CRITICAL


class AuthErrorsRule(Model):
    """Fires when a check's credentials keep being refused (auth_error): the page points at
    the tenant's key, or at recmon's own credentials when they are shared or every tenant's
    are refused — never at the platform."""

    enabled: bool = True
    failure_threshold: int = Field(2, ge=1)
    success_threshold: int = Field(2, ge=1)
    window: Duration = 300.0
    share: Share = 0.5
    min_probes: int = Field(3, ge=1)
    severity: Severity = Severity.CRITICAL


class ErrorRateRule(Model):
    """The slow burn: a share of one failure outcome over a longer window."""

    enabled: bool = True
    outcomes: list[Outcome] = FAILURE_OUTCOMES
    window: Duration = 900.0
    threshold: Share = 0.2
    min_probes: int = Field(10, ge=1)
    # Fires only when the window shows the share with this confidence: the share's lower
    # bound (Wilson score, one-sided) at least half the threshold. A thin window (15 probes in
    # 15 minutes at a 60 s interval) needs 5 of one outcome, not 2 or 3 that a 1% background
    # gives some tenant of thousands every few minutes; a 1 s interval's 900 need ~20%.
    confidence: float = Field(0.99, gt=0.5, lt=1)
    severity: Severity = Severity.WARNING


class LatencyDriftRule(Model):
    """p95 over a short window against the series' own learned baseline p95."""

    enabled: bool = True
    window: Duration = 300.0
    min_samples: int = Field(3, ge=2)
    ratio: float = Field(1.5, gt=1)
    min_delta: Duration = 0.02
    for_: Duration = Field(60.0, alias="for")
    resolve_for: Duration = 120.0
    baseline_half_life: Duration = 6 * 3600.0
    baseline_min_samples: int = Field(30, ge=1)
    # A known-good p95 to compare against until enough samples are learned.
    baseline: Duration | None = None
    # Page only when this sure that the window's p95 is above the threshold: with few samples
    # a single slow outlier must never page.
    confidence: float = Field(0.99, ge=0.5, lt=1)
    severity: Severity = Severity.WARNING


class FallbackRule(Model):
    """One identical list answering different requests of a tenant, or most tenants at once
    (checks with expect.fallback, on by default for checks with items)."""

    enabled: bool = True
    # Most tenants: at least this many, and this share of the tenants answering a list.
    min_tenants: int = Field(3, ge=2)
    share: Share = 0.5
    # Within a tenant: this many different requests answered by one list in a row.
    min_requests: int = Field(3, ge=2)
    severity: Severity = Severity.CRITICAL


class LatencySloRule(Model):
    """An absolute p95 objective, off unless p95 is set."""

    p95: Duration | None = None
    window: Duration = 300.0
    min_samples: int = Field(3, ge=2)
    for_: Duration = Field(120.0, alias="for")
    resolve_for: Duration = 120.0
    confidence: float = Field(0.99, ge=0.5, lt=1)
    severity: Severity = Severity.WARNING


def _partial(model: type[Model]) -> type[Model]:
    """The same keys, all optional: an override changes only what it names."""
    fields: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation: Any = field.annotation
        if field.metadata:
            annotation = Annotated[(annotation, *field.metadata)]
        fields[name] = (Optional[annotation], Field(None, alias=field.alias))  # noqa: UP045
    return create_model(f"Partial{model.__name__}", __base__=Model, **fields)


PartialEmptyResults = _partial(EmptyResultsRule)
PartialFailures = _partial(FailuresRule)
PartialAuthErrors = _partial(AuthErrorsRule)
PartialErrorRate = _partial(ErrorRateRule)
PartialLatencyDrift = _partial(LatencyDriftRule)
PartialLatencySlo = _partial(LatencySloRule)


class AlertOverride(Model):
    """Rule parameters for matching tenants and checks (glob patterns; omitted = all)."""

    tenants: list[str] | None = None
    checks: list[str] | None = None
    empty_results: PartialEmptyResults | None = None  # type: ignore[valid-type]
    failures: PartialFailures | None = None  # type: ignore[valid-type]
    auth_errors: PartialAuthErrors | None = None  # type: ignore[valid-type]
    error_rate: PartialErrorRate | None = None  # type: ignore[valid-type]
    latency_drift: PartialLatencyDrift | None = None  # type: ignore[valid-type]
    latency_slo: PartialLatencySlo | None = None  # type: ignore[valid-type]


class FlappingSpec(Model):
    """An alert paged again soon after it resolved is flapping: it stays open (its resolves
    held) until it has been clear for `stable_for`, so one problem never pages as
    trigger/resolve churn."""

    enabled: bool = True
    window: Duration = 1800.0  # a second incident of one alert within this is flapping
    stable_for: Duration = 600.0


class StormSpec(Model):
    """Many tenants firing the same alert at once make one grouped incident, not N pages."""

    min_tenants: int = Field(5, ge=2)
    min_share: Share | None = None  # ...or this share of all tenants, whichever comes first
    # A storm covering this share of the tenants probed is fleet-wide: an incident of its own
    # says so ("for all 40 tenants", "for 37 of 40 tenants (93%)").
    fleet_share: Share = 0.8
    # A new alert waits this long before paging alone, so a storm can gather first.
    group_wait: Duration = 60.0


class MaintenanceWindow(Model):
    """No notifications for matching tenants and checks between start and end."""

    tenants: list[str] | None = None
    checks: list[str] | None = None
    start: datetime
    end: datetime
    reason: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceWindow:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a time zone, e.g. 2026-11-24T22:00:00Z")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class OverloadRule(Model):
    """recmon's own alert: it cannot probe what it is asked to on time, so its tenant
    judgements are incomplete (timeouts measured under loop lag are withheld)."""

    enabled: bool = True
    # Fires when probe timeouts were withheld, or the event loop ran this late, ...
    lag: Duration = 0.25
    # ...or it falls behind the schedule: more than this share of the runs due were skipped,
    skipped: Share = 0.1
    # or most runs started more than this share of their interval late, or most latencies
    # were withheld as untrusted...
    late: Share = 0.5
    # ...for this long; resolves after this long without either.
    for_: Duration = Field(60.0, alias="for")
    resolve_for: Duration = 300.0
    severity: Severity = Severity.CRITICAL


class FleetRule(Model):
    """A partial outage across the fleet: every tenant's probes of a check pooled, judged with
    a confidence bound (detect.fleet)."""

    enabled: bool = True
    # The window, in probe intervals of the check (each tenant probed this many times).
    intervals: float = Field(2.0, gt=0)
    # Fires when the pooled share of failures (or empty answers) is above this at the lower
    # confidence bound; clears below half of it.
    threshold: Share = 0.05
    confidence: float = Field(0.99, gt=0.5, lt=1)
    min_probes: int = Field(20, ge=1)
    min_tenants: int = Field(5, ge=2)  # tenants that saw a failure in the window
    severity: Severity = Severity.CRITICAL


class SloRule(Model):
    """How the checks' SLOs (checks.<name>.slo) are alerted: multiwindow, multi-burn-rate as
    in the Google SRE Workbook — the page at 14.4x over 1h and 5m or 6x over 6h and 30m, the
    ticket at 1x over 3d and 6h (windows for a 30d SLO window, scaled with it)."""

    enabled: bool = True
    page_severity: Severity = Severity.CRITICAL
    ticket_severity: Severity = Severity.WARNING
    # A burn needs this many errors in its long window: one or two failed probes of a thin
    # series (a tenant probed once a minute) are noise, not a burn.
    min_errors: int = Field(3, ge=1)


class AlertsSpec(Model):
    overload: OverloadRule = OverloadRule()
    slo: SloRule = SloRule()
    fleet: FleetRule = FleetRule()
    empty_results: EmptyResultsRule = EmptyResultsRule()
    failures: FailuresRule = FailuresRule()
    auth_errors: AuthErrorsRule = AuthErrorsRule()
    error_rate: ErrorRateRule = ErrorRateRule()
    latency_drift: LatencyDriftRule = LatencyDriftRule()
    latency_slo: LatencySloRule = LatencySloRule()
    fallback: FallbackRule = FallbackRule()
    overrides: list[AlertOverride] = []
    storm: StormSpec = StormSpec()
    flapping: FlappingSpec = FlappingSpec()
    maintenance: list[MaintenanceWindow] = []


_LOCATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}")


def _location(value: str) -> str:
    if not _LOCATION.fullmatch(value):
        raise ValueError(
            "expected a location name of letters, digits, '_', '.', ':' or '-' "
            f"(at most 63, starting with a letter or digit), got {value!r}"
        )
    return value


Location = Annotated[str, AfterValidator(_location)]


class Config(Model):
    # Where this instance probes from (a region, a cluster): a label on every metric and
    # every alert, so rules can tell one location's trouble from the platform's.
    location: Location | None = None
    defaults: Defaults = Defaults()
    targets: Annotated[dict[str, Target], Field(min_length=1)]
    tenants: TenantsSpec
    checks: Annotated[dict[str, CheckSpec], Field(min_length=1)]
    engine: EngineSpec = EngineSpec()
    metrics: MetricsSpec = MetricsSpec()
    alerts: AlertsSpec = AlertsSpec()
    tls: TlsSpec = TlsSpec()
    notify: NotifySpec = NotifySpec()
    state: StateSpec = StateSpec()

    def interval_of(self, check: str) -> float:
        return self.checks[check].interval or self.defaults.interval

    def timeout_of(self, check: str) -> float:
        return self.checks[check].timeout or self.defaults.timeout

    def captures_before(self, check: str) -> frozenset[str]:
        """Variables the checks this one runs after capture for it."""
        names: set[str] = set()
        current = self.checks[check].after
        visited: set[str] = set()
        while current is not None and current in self.checks and current not in visited:
            visited.add(current)
            names |= set(self.checks[current].capture)
            current = self.checks[current].after
        return frozenset(names)

    @property
    def tenant_credential_names(self) -> frozenset[str]:
        """Template variables whose values are tenants' credentials (from mounted secrets)."""
        spec = self.tenants.credentials
        return frozenset() if spec is None else frozenset({spec.variable})

    @property
    def max_timeout(self) -> float:
        return max((self.timeout_of(name) for name in self.checks), default=self.defaults.timeout)
