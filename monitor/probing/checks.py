"""Checks compiled once from the configuration: templates parsed, defaults applied."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.config.model import CheckSpec, Config, SloSpec
from monitor.core.conditions import Condition, SchemaCheck, compile_condition, compile_schema
from monitor.core.jsonpath import JsonPath
from monitor.core.results import (
    CREDENTIAL_EITHER,
    CREDENTIAL_NONE,
    CREDENTIAL_SHARED,
    CREDENTIAL_TENANT,
    Outcome,
)
from monitor.core.templating import Template, parse_template, render_value, template_names


@dataclass(frozen=True, slots=True)
class RenderedRequest:
    method: str
    path: str
    params: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    json_body: Any


@dataclass(frozen=True, slots=True)
class Capture:
    name: str
    path: JsonPath
    rotate: bool = False  # the round's turn among the path's values, not the first


@dataclass(frozen=True, slots=True)
class HttpCheck:
    name: str
    target: str
    method: str
    path: Template
    params: tuple[tuple[str, Template], ...]
    headers: tuple[tuple[str, Template], ...]
    json_body: Any
    follow_redirects: bool
    expected_status: frozenset[int]
    items: JsonPath | None
    min_items: int
    max_body_bytes: int
    content_type: str | None
    captures: tuple[Capture, ...]
    timeout: float
    interval: float
    after: str | None
    retry_attempts: int
    retry_outcomes: frozenset[Outcome]
    retry_backoff: float
    # What earlier checks capture for this one: missing when one of them failed.
    captured_before: frozenset[str] = frozenset()
    # Whose credentials the request carries (CREDENTIAL_*) and, in words, which: what an
    # auth_error page points at. Never a value.
    credential_scope: str = CREDENTIAL_NONE
    credential_label: str = "no credentials"
    # Conditions on the content and a JSON Schema (wrong_content when one fails).
    conditions: tuple[Condition, ...] = ()
    schema: SchemaCheck | None = None
    # The item key that identifies an item, and whether answers are judged across requests
    # and tenants (fallback, foreign items, frozen): then results carry their item ids.
    item_id: str = "id"
    fallback: bool = False
    items_disjoint: bool = False
    changes_within: float | None = None
    # Its service level objective (None: none), alerted on its burn rate by the alert hub.
    slo: SloSpec | None = None

    @property
    def parses_body(self) -> bool:
        return (
            self.items is not None
            or bool(self.captures)
            or bool(self.conditions)
            or self.schema is not None
        )

    @property
    def tenant_pattern(self) -> Condition | None:
        """The condition whose pattern names the tenant (items of another tenant tell)."""
        return next((c for c in self.conditions if c.tenant_pattern), None)

    @property
    def judged_across(self) -> bool:
        """Whether results carry item ids for the cross-tenant judgement."""
        return self.items is not None and (
            self.fallback
            or self.items_disjoint
            or self.changes_within is not None
            or self.tenant_pattern is not None
        )

    @property
    def variables(self) -> frozenset[str]:
        names: set[str] = set(self.path.names) | template_names(self.json_body)
        for _, template in (*self.params, *self.headers):
            names |= template.names
        return frozenset(names)

    def render(self, values: Mapping[str, str]) -> RenderedRequest:
        """The request for one tenant; raises MissingVariable when a value is unknown."""
        return RenderedRequest(
            method=self.method,
            # Tenant ids and variables go into the path URL-encoded: "a/b" stays one segment.
            path=self.path.render(values, url_encode=True),
            params=tuple((k, t.render(values)) for k, t in self.params),
            headers=tuple((k, t.render(values)) for k, t in self.headers),
            json_body=render_value(self.json_body, values) if self.json_body is not None else None,
        )


# Header and query parameter names that carry credentials.
_CREDENTIAL_WORDS = ("auth", "key", "token", "secret", "password", "signature", "session")


def looks_like_credential(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _CREDENTIAL_WORDS)


def credential_of(name: str, spec: CheckSpec, config: Config) -> tuple[str, str]:
    """(scope, label) of the credentials a check's requests carry: a per-tenant variable in a
    credential header or parameter is the tenant's own key; target headers, OAuth2 and client
    certificates are recmon's, shared by every tenant; both at once are either's."""
    credentials = config.tenant_credential_names
    per_tenant = set(credentials)
    for values in config.tenants.vars.values():
        per_tenant |= set(values)
    per_tenant -= set(config.tenants.default_vars) | config.captures_before(name)
    target = config.targets.get(spec.target)
    shared = (
        [f"{kind} of target {spec.target}" for kind in target.credential_kinds()]
        if target is not None
        else []
    )
    for field, mapping in (("header", spec.request.headers), ("parameter", spec.request.params)):
        for key, value in mapping.items():
            used = template_names(value) & per_tenant
            if used & credentials or (used and looks_like_credential(key)):
                variable = sorted(used & credentials or used)[0]
                own = f"the tenant's {{{variable}}} ({field} {key})"
                if shared:  # a refusal is the tenant's key or recmon's credential
                    return CREDENTIAL_EITHER, f"{own} or {', '.join(shared)}"
                return CREDENTIAL_TENANT, own
    if target is None:
        return CREDENTIAL_NONE, "no credentials"
    if shared:
        return CREDENTIAL_SHARED, ", ".join(shared)
    for mapping in (spec.request.headers, spec.request.params):
        if any(looks_like_credential(key) for key in mapping):
            return CREDENTIAL_SHARED, f"the credential headers of check {name}"
    return CREDENTIAL_NONE, "no credentials"


def compile_check(name: str, spec: CheckSpec, config: Config) -> HttpCheck:
    request, expect = spec.request, spec.expect
    scope, label = credential_of(name, spec, config)
    return HttpCheck(
        name=name,
        target=spec.target,
        method=request.method,
        path=parse_template(request.path),
        params=tuple((k, parse_template(v)) for k, v in request.params.items()),
        headers=tuple((k, parse_template(v)) for k, v in request.headers.items()),
        json_body=request.json_body,
        follow_redirects=request.follow_redirects,
        expected_status=frozenset(expect.status),
        items=expect.items,
        min_items=expect.min_items,
        max_body_bytes=expect.max_body_bytes,
        content_type=expect.content_type.lower() if expect.content_type else None,
        captures=tuple(
            Capture(key, capture.path, capture.pick == "rotate")
            for key, capture in spec.capture.items()
        ),
        timeout=config.timeout_of(name),
        interval=config.interval_of(name),
        after=spec.after,
        retry_attempts=spec.retry.attempts,
        retry_outcomes=frozenset(spec.retry.outcomes),
        retry_backoff=spec.retry.backoff,
        slo=spec.slo,
        captured_before=config.captures_before(name),
        credential_scope=scope,
        credential_label=label,
        conditions=tuple(
            compile_condition(c.name, c.path, c.op, c.value, length=c.length)
            for c in expect.conditions
        ),
        schema=compile_schema(expect.json_schema) if expect.json_schema is not None else None,
        item_id=expect.item_id,
        fallback=expect.fallback if expect.fallback is not None else expect.items is not None,
        items_disjoint=expect.items_disjoint_across_tenants,
        changes_within=expect.changes_within,
    )


def compile_checks(config: Config) -> dict[str, HttpCheck]:
    return {
        name: compile_check(name, spec, config)
        for name, spec in config.checks.items()
        if spec.enabled
    }
