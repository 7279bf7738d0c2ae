"""The sandbox over real loopback HTTP: data, faults, scoping, admin API, stats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from monitor.sandbox.app import SandboxApp
from monitor.sandbox.faults import Fault, FaultError, FaultTable, fault_from_json
from monitor.sandbox.server import Sandbox, SandboxSettings, serve_sandbox
from tests.helpers import FAST


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(tenants=5, latency_ms=dict(FAST), jitter=0.0)


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=5) as c:
        yield c


async def test_search_recommendations_and_tenant_list(client: httpx.AsyncClient) -> None:
    tenants = (await client.get("/v1/tenants")).json()["tenants"]
    assert [t["id"] for t in tenants] == [f"tenant-00{i}" for i in range(1, 6)]
    search = await client.get("/v1/tenant-001/search", params={"q": "shoes"})
    assert search.status_code == 200 and search.headers["content-type"] == "application/json"
    assert "server-timing" in search.headers
    results = search.json()["results"]
    assert len(results) == 10 and all(r["id"].startswith("tenant-001-p") for r in results)
    recs = await client.get("/v1/tenant-001/recommendations", params={"product": results[0]["id"]})
    assert len(recs.json()["recommendations"]) == 5


async def test_unknown_or_delisted_product_has_no_recommendations(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    recs = await client.get("/v1/tenant-001/recommendations", params={"product": "SKU-GONE"})
    assert recs.status_code == 200 and recs.json()["recommendations"] == []
    sandbox.faults.set("tenant-001", "*", Fault(delisted=("tenant-001-p01",)))
    recs = await client.get("/v1/tenant-001/recommendations", params={"product": "tenant-001-p01"})
    assert recs.json()["recommendations"] == []
    search = await client.get("/v1/tenant-001/search", params={"q": "x", "limit": 50})
    assert "tenant-001-p01" not in {r["id"] for r in search.json()["results"]}


async def test_unknown_tenant_and_path_are_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/nobody/search")).json() == {"error": "unknown tenant"}
    assert (await client.get("/v1/tenant-001/other")).status_code == 404
    assert (await client.get("/elsewhere")).status_code == 404


async def test_token_is_enforced_and_never_echoed() -> None:
    settings = SandboxSettings(tenants=1, latency_ms=dict(FAST), token="s3cret-token")
    async with serve_sandbox(settings) as served, httpx.AsyncClient(base_url=served.url) as c:
        denied = await c.get("/v1/tenant-001/search")
        assert denied.status_code == 401 and "s3cret" not in denied.text
        wrong = await c.get("/v1/tenant-001/search", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = await c.get("/v1/tenant-001/search", headers={"authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200


async def test_empty_fault_and_scoping_precedence(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    sandbox.faults.set("*", "recommendations", Fault(empty=True))
    sandbox.faults.set("tenant-002", "*", Fault())
    product = {"product": "tenant-001-p01"}
    assert (await client.get("/v1/tenant-001/recommendations", params=product)).json()[
        "recommendations"
    ] == []
    product = {"product": "tenant-002-p01"}
    assert (await client.get("/v1/tenant-002/recommendations", params=product)).json()[
        "recommendations"
    ] != []
    assert (await client.get("/v1/tenant-001/search", params={"q": "a"})).json()["results"] != []


def test_fault_table_lookup_order() -> None:
    table = FaultTable()
    table.set("*", "*", Fault(latency_factor=2))
    table.set("*", "search", Fault(latency_factor=3))
    table.set("t", "*", Fault(latency_factor=4))
    table.set("t", "search", Fault(latency_factor=5))
    assert table.lookup("t", "search").latency_factor == 5
    assert table.lookup("t", "recommendations").latency_factor == 4
    assert table.lookup("u", "search").latency_factor == 3
    assert table.lookup("u", "recommendations").latency_factor == 2
    table.clear("t", "search")
    assert table.lookup("t", "search").latency_factor == 4


@pytest.mark.parametrize(
    "data, message",
    [
        ({"emptyy": True}, "unknown fault field 'emptyy'"),
        ({"empty": "yes"}, "empty must be true or false"),
        ({"error_rate": 2}, "error_rate must be between 0 and 1"),
        ({"fail_ratio": 1.5}, "fail_ratio must be between 0 and 1"),
        ({"status": 99}, "status must be an HTTP status"),
        ({"delisted": "p1"}, "delisted must be a list of strings"),
        ([], "a fault must be a JSON object"),
    ],
)
def test_fault_validation(data: object, message: str) -> None:
    with pytest.raises(FaultError, match=message):
        fault_from_json(data)


async def test_admin_api_sets_lists_and_clears_faults(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    put = await client.put(
        "/_admin/faults", json={"tenant": "tenant-003", "check": "search", "fault": {"status": 502}}
    )
    assert put.status_code == 200
    assert (await client.get("/_admin/faults")).json()["faults"][0]["fault"]["status"] == 502
    bad = await client.put("/_admin/faults", json={"tenant": "*", "check": "checkout", "fault": {}})
    assert bad.status_code == 400 and "check must be one of" in bad.json()["error"]
    bad = await client.put("/_admin/faults", content=b"{nope")
    assert bad.status_code == 400
    await client.delete("/_admin/faults", params={"tenant": "tenant-003", "check": "search"})
    assert (await client.get("/_admin/faults")).json()["faults"] == []


@pytest.mark.parametrize(
    "fault, check",
    [
        (Fault(status=502), lambda r: r.status_code == 502 and "Bad Gateway" in r.text),
        (Fault(status=503), lambda r: r.status_code == 503),
        (Fault(error_rate=1.0), lambda r: r.status_code == 500),
        (
            Fault(invalid_json=True),
            lambda r: r.status_code == 200 and r.text.startswith('{"results": [oops'),
        ),
        (Fault(truncated_json=True), lambda r: r.status_code == 200 and not r.text.endswith("}")),
        (Fault(wrong_content_type=True), lambda r: r.headers["content-type"] == "text/html"),
        (
            Fault(redirect_loop=True),
            lambda r: r.status_code == 302 and r.headers["location"] == "/v1/tenant-001/search?q=a",
        ),
    ],
)
async def test_response_faults(
    sandbox: Sandbox, client: httpx.AsyncClient, fault: Fault, check: object
) -> None:
    sandbox.faults.set("tenant-001", "search", fault)
    response = await client.get("/v1/tenant-001/search", params={"q": "a"})
    assert check(response)  # type: ignore[operator]


async def test_fail_ratio_fails_that_share_of_requests_with_the_status(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    sandbox.faults.set("*", "search", fault_from_json({"fail_ratio": 0.33, "status": 503}))
    statuses = [(await client.get("/v1/tenant-001/search")).status_code for _ in range(150)]
    assert set(statuses) == {200, 503}
    assert 0.2 < statuses.count(503) / len(statuses) < 0.46  # binomial(150, 0.33): > 4 sigma


async def test_latency_factor_slows_answers(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    sandbox.faults.set("*", "search", Fault(latency_factor=8.0))  # 5 ms → 40 ms
    response = await client.get("/v1/tenant-001/search")
    assert float(response.headers["server-timing"].split("dur=")[1]) >= 40


async def test_hang_never_answers_and_frees_the_request(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    sandbox.faults.set("*", "search", Fault(hang=True))
    with pytest.raises(httpx.ReadTimeout):
        await client.get("/v1/tenant-001/search", timeout=0.2)
    sandbox.faults.clear()
    assert (await client.get("/v1/tenant-001/search")).status_code == 200


async def test_slow_drip_outlasts_a_timeout(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    sandbox.faults.set("*", "search", Fault(drip_interval_ms=50))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await client.get("/v1/tenant-001/search")


async def test_huge_body_is_streamed_valid_json(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    size = 5 * 1024 * 1024 + 1
    sandbox.faults.set("*", "search", Fault(huge_body_bytes=size))
    received = 0
    biggest_chunk = 0
    async with client.stream("GET", "/v1/tenant-001/search") as response:
        declared = int(response.headers["content-length"])
        async for chunk in response.aiter_raw():
            received += len(chunk)
            biggest_chunk = max(biggest_chunk, len(chunk))
    assert received == declared and abs(declared - size) <= 1
    assert biggest_chunk < 1024 * 1024


async def test_stats_reflect_server_side_latency(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    for _ in range(5):
        await client.get("/v1/tenant-001/recommendations", params={"product": "tenant-001-p01"})
    stats = (await client.get("/_admin/stats")).json()["recommendations"]
    assert stats["requests"] == 5 and stats["statuses"] == {"200": 5}
    assert stats["latency_ms"]["p50"] >= 5
    await client.delete("/_admin/stats")
    assert (await client.get("/_admin/stats")).json() == {}


def test_jitter_is_reproducible_with_a_seed() -> None:
    a = SandboxApp(SandboxSettings(seed=7))
    b = SandboxApp(SandboxSettings(seed=7))
    assert [a.random.random() for _ in range(5)] == [b.random.random() for _ in range(5)]


def test_faults_by_location_win_for_that_location_only() -> None:
    table = FaultTable()
    table.set("*", "*", Fault(status=503), location="eu")
    table.set("acme", "recommendations", Fault(empty=True))
    assert table.lookup("globex", "search", "eu").status == 503
    assert table.lookup("acme", "recommendations", "eu").status == 503
    assert table.lookup("acme", "recommendations", "us").empty
    assert table.lookup("globex", "search", "us") == Fault()
    assert table.lookup("globex", "search") == Fault()
    assert [rule.get("location") for rule in table.to_json()] == [None, "eu"]
    table.clear(location="eu")
    assert table.lookup("globex", "search", "eu") == Fault()


async def test_the_admin_api_faults_one_location_by_the_probe_header(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    put = await client.put(
        "/_admin/faults",
        json={"location": "eu", "tenant": "*", "check": "*", "fault": {"status": 503}},
    )
    assert put.status_code == 200
    assert put.json()["faults"][0]["location"] == "eu"
    path = "/v1/tenant-003/search?q=shoes"
    assert (await client.get(path, headers={"X-Recmon-Location": "eu"})).status_code == 503
    assert (await client.get(path, headers={"X-Recmon-Location": "us"})).status_code == 200
    assert (await client.get(path)).status_code == 200
    cleared = await client.delete("/_admin/faults", params={"location": "eu"})
    assert cleared.json()["faults"] == []
    assert (await client.get(path, headers={"X-Recmon-Location": "eu"})).status_code == 200


async def _recommended(
    client: httpx.AsyncClient, tenant: str, product: str
) -> list[dict[str, object]]:
    answer = await client.get(f"/v1/{tenant}/recommendations", params={"product": product})
    assert answer.status_code == 200
    items: list[dict[str, object]] = answer.json()["recommendations"]
    return items


async def test_present_but_wrong_faults(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    healthy = await _recommended(client, "tenant-002", "tenant-002-p03")
    assert all(str(i["id"]).startswith("tenant-002-") for i in healthy)

    sandbox.faults.set("*", "recommendations", Fault(fallback=True))
    lists = [
        await _recommended(client, t, f"{t}-p0{n}")
        for t in ("tenant-001", "tenant-003")
        for n in (1, 2)
    ]
    assert all(items == lists[0] for items in lists) and lists[0][0]["id"] == "popular-01"

    sandbox.faults.set("*", "recommendations", fault_from_json({"foreign_tenant": "tenant-004"}))
    foreign = await _recommended(client, "tenant-002", "tenant-002-p03")
    assert foreign and all(str(i["id"]).startswith("tenant-004-") for i in foreign)

    sandbox.faults.set("*", "recommendations", fault_from_json({"drift": "renamed_field"}))
    renamed = await _recommended(client, "tenant-002", "tenant-002-p03")
    assert renamed and all("id" not in i and "product_id" in i for i in renamed)
    sandbox.faults.set("*", "recommendations", fault_from_json({"drift": "changed_type"}))
    changed = await _recommended(client, "tenant-002", "tenant-002-p03")
    assert all(isinstance(i["score"], str) for i in changed)
    with pytest.raises(FaultError, match="drift must be one of"):
        fault_from_json({"drift": "sideways"})


def test_recommendations_refresh_over_time_unless_frozen() -> None:
    from monitor.sandbox.catalog import Catalog

    catalog = Catalog(("t1",), 20)
    assert catalog.recommendations("t1", "t1-p01", 5, shift=0) != catalog.recommendations(
        "t1", "t1-p01", 5, shift=1
    )
