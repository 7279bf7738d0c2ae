"""The prober judges content: wrong_content with the condition's name, item ids for the
cross-tenant judgement, a capture rotating through the search results."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from monitor.core.results import Outcome, ProbeResult
from monitor.probing.checks import HttpCheck
from monitor.probing.http import judge_response
from monitor.telemetry.metrics import Metrics
from tests.helpers import BASE_CONFIG, checks

REC_EXPECT = '    expect: {items: "$.recommendations", min_items: 1}'


def recommendations(expect: str) -> HttpCheck:
    text = BASE_CONFIG.replace(
        REC_EXPECT,
        '    expect:\n      items: "$.recommendations"\n' + textwrap.indent(expect, "      "),
    )
    return checks(text)["recommendations"]


TENANT_PATTERN = """\
conditions:
  - name: item-ids-belong-to-tenant
    path: "$.recommendations[*].id"
    op: matches
    value: "^{tenant}-"
"""


def judge(check: HttpCheck, body: Any, tenant: str = "acme", turn: int = 0) -> Any:
    return judge_response(
        check,
        200,
        "application/json",
        json.dumps(body).encode(),
        0.01,
        values={"tenant": tenant, "query": "shoes"},
        turn=turn,
    )


def items(*ids: str) -> dict[str, Any]:
    return {"recommendations": [{"id": i, "score": 0.5} for i in ids]}


def test_another_tenants_item_is_wrong_content_naming_condition_and_value() -> None:
    check = recommendations(TENANT_PATTERN)
    shown = judge(check, items("acme-p1", "acme-p2", "acme-p3", "globex-p4"))
    assert shown.outcome is Outcome.WRONG_CONTENT
    assert shown.condition == "item-ids-belong-to-tenant"
    assert shown.reason == (
        "condition item-ids-belong-to-tenant failed: $.recommendations[3].id = 'globex-p4' "
        "(expected to match '^acme-')"
    )
    assert shown.items == 4
    assert shown.item_ids == ("acme-p1", "acme-p2", "acme-p3", "globex-p4")
    assert judge(check, items("acme-p1", "acme-p2")).outcome is Outcome.OK


def test_an_empty_list_stays_empty_and_garbage_stays_invalid_body() -> None:
    check = recommendations(TENANT_PATTERN)
    assert judge(check, items()).outcome is Outcome.EMPTY
    assert judge(check, {"other": 1}).outcome is Outcome.INVALID_BODY


def test_a_renamed_field_is_wrong_content() -> None:
    check = recommendations(
        "schema: {type: object, properties:\n"
        "  {recommendations: {type: array, items: {required: [id]}}}}\n"
    )
    shown = judge(check, {"recommendations": [{"product_id": "acme-p1"}]})
    assert shown.outcome is Outcome.WRONG_CONTENT and shown.condition == "schema"
    assert "$.recommendations[0].id = absent" in shown.reason


def test_a_value_under_a_credential_key_is_never_shown() -> None:
    check = recommendations(
        'conditions:\n  - {name: c, path: "$.session_token", op: "==", value: "x"}\n'
    )
    body = {**items("acme-p1"), "session_token": "s3cr3t-value"}
    shown = judge(check, body)
    assert shown.outcome is Outcome.WRONG_CONTENT
    assert "s3cr3t" not in shown.reason and "[REDACTED]" in shown.reason


def test_item_ids_only_when_judged_across_requests() -> None:
    off = recommendations("fallback: false\n")
    assert judge(off, items("acme-p1")).item_ids == ()
    on = recommendations("")
    assert judge(on, items("acme-p1", "acme-p2")).item_ids == ("acme-p1", "acme-p2")
    scalar = recommendations("item_id: sku\n")
    assert judge(scalar, {"recommendations": [{"sku": 7}, "x"]}).item_ids == ("7", "x")
    mixed = [{"sku": 1.5}, {"sku": True}, {"sku": None}, {"sku": ["a"]}, False, 2, {"id": "y"}]
    assert judge(scalar, {"recommendations": mixed}).item_ids == ("1.5", "2")  # scalars only


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(-2, 2), st.text(max_size=3)
)
ITEMS = st.lists(
    st.one_of(
        st.fixed_dictionaries({"sku": st.text(max_size=3)}),  # most answers: string ids
        st.dictionaries(st.sampled_from(["sku", "id"]), JSON_SCALARS | st.lists(JSON_SCALARS)),
        JSON_SCALARS,
        st.lists(JSON_SCALARS, max_size=2),
    ),
    max_size=6,
)


@given(ITEMS)
def test_item_ids_are_each_items_scalar_id_or_the_scalar_item_itself(found: list[Any]) -> None:
    """However the items mix objects, ids of any type, missing keys and bare scalars."""
    scalar = recommendations("item_id: sku\n")
    expected = []
    for item in found:
        value = item.get("sku") if isinstance(item, dict) else item
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            expected.append(str(value))
    assert judge(scalar, {"recommendations": found}).item_ids == tuple(expected)


def test_a_rotating_capture_takes_the_next_result_each_round() -> None:
    text = BASE_CONFIG.replace(
        '    capture: {product: "$.results[0].id"}',
        '    capture: {product: {path: "$.results[*].id", pick: rotate}}',
    )
    search = checks(text)["search"]
    body = {"results": [{"id": "p1"}, {"id": "p2"}, {"id": "p3"}]}
    picked = [
        judge_response(
            search, 200, "application/json", json.dumps(body).encode(), 0.01, turn=t
        ).captures["product"]
        for t in range(5)
    ]
    assert picked == ["p1", "p2", "p3", "p1", "p2"]


def test_condition_failures_are_counted_by_condition() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    result = ProbeResult(
        "acme", "recommendations", Outcome.WRONG_CONTENT, 0.01, 0.0, condition="schema"
    )
    metrics.record(result)
    metrics.record(result)
    value = registry.get_sample_value(
        "recmon_probe_condition_failures_total",
        {"check": "recommendations", "condition": "schema"},
    )
    assert value == 2.0
