"""Tenant sources: validation, files, discovery, last good list, shards."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import pytest

from monitor.config.model import DiscoverSpec, TenantsSpec
from monitor.core.clock import ManualClock
from monitor.core.tenancy import InvalidTenantId, Shard, validate_tenant_id
from monitor.probing.tenant_source import (
    TenantSource,
    TenantSourceError,
    accept_ids,
    parse_tenant_file,
)


@pytest.mark.parametrize("good", ["acme", "tenant-001", "a.b_c-d", "7eleven", "A" * 128])
def test_plain_identifiers_are_accepted(good: str) -> None:
    assert validate_tenant_id(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "../admin",
        "a/b",
        "a b",
        "",
        "-x",
        ".hidden",
        "a..b",
        "x\x00",
        "é",
        "A" * 129,
        "a\nb",
        7,
        None,
    ],
)
def test_anything_else_is_rejected(bad: object) -> None:
    with pytest.raises(InvalidTenantId):
        validate_tenant_id(bad)


def test_accept_ids_deduplicates_caps_and_reports() -> None:
    result = accept_ids(["a", "b", "a", "../admin", "c", "d"], limit=3)
    assert result.ids == ("a", "b", "c")
    assert result.truncated == 1
    assert [shown for shown, _ in result.rejected] == ["'../admin'"]


def test_tenant_file_ignores_comments_and_blank_lines() -> None:
    assert parse_tenant_file("# tenants\nacme\n\n  globex  # big one\n").ids == ("acme", "globex")


def test_shards_split_tenants_deterministically_and_completely() -> None:
    tenants = [f"tenant-{i}" for i in range(3000)]
    shards = [Shard(i, 3) for i in range(3)]
    owned = [{t for t in tenants if shard.owns(t)} for shard in shards]
    assert sum(len(o) for o in owned) == 3000
    assert set().union(*owned) == set(tenants)
    assert all(800 < len(o) < 1200 for o in owned)
    assert owned[1] == {t for t in tenants if Shard(1, 3).owns(t)}
    assert Shard.parse("2/3") == Shard(2, 3)
    for bad in ("3/3", "x/2", "1", "-1/2"):
        with pytest.raises(ValueError):
            Shard.parse(bad)


def discovery(handler: httpx.MockTransport, **spec: object) -> TenantSource:
    tenants = TenantsSpec(discover=DiscoverSpec(url="http://discovery.test/tenants", **spec))  # type: ignore[arg-type]
    client = httpx.AsyncClient(transport=handler)
    return TenantSource(tenants, client=client, clock=ManualClock())


async def test_discovery_reads_ids_at_the_configured_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = {"tenants": [{"id": "acme"}, {"id": "globex"}, {"id": "../admin"}, {"id": "x\x07"}]}
    source = discovery(httpx.MockTransport(lambda r: httpx.Response(200, json=body)))
    with caplog.at_level(logging.WARNING, logger="recmon.tenants"):
        assert await source.refresh() == ("acme", "globex")
    rejected = [r for r in caplog.records if r.getMessage() == "tenant rejected, not probed"]
    shown = [r.fields["tenant"] for r in rejected]  # type: ignore[attr-defined]
    assert shown == ["'../admin'", "'x\\x07'"]  # quoted: a control character never reaches a log


async def test_discovery_failure_keeps_the_last_good_list(caplog: pytest.LogCaptureFixture) -> None:
    answers = [
        httpx.Response(200, json={"tenants": [{"id": "acme"}]}),
        httpx.Response(200, content=b"<html>oops</html>"),
        httpx.Response(500),
        httpx.Response(200, json={"tenants": []}),
        httpx.Response(200, json={"tenants": [{"id": "../admin"}, {"id": "x\x07"}]}),
        httpx.Response(200, json={"other": 1}),
    ]
    source = discovery(httpx.MockTransport(lambda r: answers.pop(0)))
    assert await source.refresh() == ("acme",)
    with caplog.at_level(logging.WARNING, logger="recmon.tenants"):
        for _ in range(5):
            assert await source.refresh() == ("acme",)
    failures = [r for r in caplog.records if "keeping the last good list" in r.getMessage()]
    assert len(failures) == 5  # every bad answer said so
    assert source.last_error == "discovery response has no tenants at $.tenants[*].id"


async def test_discovery_failure_without_any_list_raises() -> None:
    source = discovery(httpx.MockTransport(lambda r: httpx.Response(503)))
    with pytest.raises(TenantSourceError, match="status 503"):
        await source.refresh()


async def test_discovery_list_is_capped(caplog: pytest.LogCaptureFixture) -> None:
    body = json.dumps({"tenants": [{"id": f"t{i}"} for i in range(5000)]}).encode()
    source = discovery(
        httpx.MockTransport(lambda r: httpx.Response(200, content=body)), max_tenants=100
    )
    with caplog.at_level(logging.WARNING, logger="recmon.tenants"):
        assert len(await source.refresh()) == 100
    (capped,) = [r for r in caplog.records if r.getMessage() == "tenant list capped"]
    assert capped.fields == {"source": source.description, "kept": 100, "dropped": 4900}  # type: ignore[attr-defined]


async def test_seeded_list_is_used_when_discovery_is_down_from_the_start() -> None:
    source = discovery(httpx.MockTransport(lambda r: httpx.Response(503)))
    source.seed(["acme", "globex"])
    assert await source.refresh() == ("acme", "globex")


async def test_file_source_rereads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tenants.txt"
    path.write_text("acme\n")
    source = TenantSource(TenantsSpec(file="tenants.txt"), clock=ManualClock(), base_dir=tmp_path)
    assert await source.refresh() == ("acme",)
    path.write_text("acme\nglobex\n")
    assert await source.refresh() == ("acme", "globex")
    path.unlink()
    assert await source.refresh() == ("acme", "globex")
    assert "cannot read tenant file" in (source.last_error or "")


async def test_static_source_applies_the_shard() -> None:
    tenants = [f"t{i}" for i in range(100)]
    source = TenantSource(TenantsSpec(static=tenants), clock=ManualClock(), shard=Shard(0, 2))
    owned = await source.refresh()
    assert 0 < len(owned) < 100
    assert all(Shard(0, 2).owns(t) for t in owned)


async def test_discovery_with_a_targets_token_sends_it_and_says_when_there_is_none() -> None:
    from monitor.probing.oauth2 import Token, TokenUnavailable

    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"tenants": [{"id": "acme"}]})

    grants: list[Token | TokenUnavailable] = [
        Token("tok-1", 0.0, 60.0, 1),
        TokenUnavailable("status 401: invalid_client", refused=True),
    ]

    async def token() -> Token | TokenUnavailable:
        return grants.pop(0)

    tenants = TenantsSpec(discover=DiscoverSpec(url="http://discovery.test/tenants"))
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    source = TenantSource(tenants, client=client, token=token, clock=ManualClock())
    assert await source.refresh() == ("acme",)
    assert seen == ["Bearer tok-1"]
    assert await source.refresh() == ("acme",)  # no token: no request, the last good list
    assert seen == ["Bearer tok-1"]
    assert source.last_error == "no OAuth2 token for discovery: status 401: invalid_client"


async def test_discovery_quoting_its_request_leaks_none_of_its_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A discovery endpoint that lists what it was sent among the tenants: a candidate that
    is a credential is refused (never a tenant, a metric label, a page), and what the log says
    of the refused ones holds none of it, however long the quote."""
    token, key = "tok-d15c0e7a9b", "k3y/with+plus=="

    def echo(request: httpx.Request) -> httpx.Response:
        sent = f"{request.headers['authorization']} {request.url}"
        return httpx.Response(
            200, json={"tenants": [{"id": "acme"}, {"id": token}, {"id": "x" * 70 + sent}]}
        )

    url = f"http://discovery.test/tenants?api_key={quote_plus(key)}"
    tenants = TenantsSpec(
        discover=DiscoverSpec(url=url, headers={"Authorization": f"Bearer {token}"})  # type: ignore[arg-type]
    )
    client = httpx.AsyncClient(transport=httpx.MockTransport(echo))
    source = TenantSource(tenants, client=client, clock=ManualClock())
    with caplog.at_level(logging.WARNING, logger="recmon.tenants"):
        assert await source.refresh() == ("acme",)
    rejected = [r for r in caplog.records if r.getMessage() == "tenant rejected, not probed"]
    assert len(rejected) == 2
    said = repr([r.__dict__ for r in rejected])
    assert "holding a credential" in said
    for form in (token, key, quote_plus(key), "tok-d15c"):
        assert form not in said, said


async def test_a_short_header_value_inside_a_tenant_id_does_not_refuse_it() -> None:
    # "X-Region: eu-1" is scrubbed from what is said, but "eu-1-shop" is a tenant all the same.
    body = {"tenants": [{"id": "eu-1-shop"}, {"id": "acme"}]}
    tenants = TenantsSpec(
        discover=DiscoverSpec(url="http://discovery.test/tenants", headers={"X-Region": "eu-1"})  # type: ignore[arg-type]
    )
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=body))
    )
    source = TenantSource(tenants, client=client, clock=ManualClock())
    assert await source.refresh() == ("eu-1-shop", "acme")
