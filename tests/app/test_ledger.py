"""The ledger's copy of a result: the latest result kept without its item ids (the content
judgement keeps them, packed), every other field as it was."""

from __future__ import annotations

from dataclasses import fields, replace

from monitor.app.ledger import _without_ids
from monitor.core.results import Outcome, ProbeResult


def test_the_latest_result_is_kept_without_its_item_ids_and_nothing_else_changes() -> None:
    result = ProbeResult(
        "acme",
        "recommendations",
        Outcome.WRONG_CONTENT,
        0.25,
        1_700_000_000.0,
        status=200,
        items=3,
        reason="condition failed",
        tls_reason="expired",
        attempts=2,
        first_outcome=Outcome.TIMEOUT,
        captures={"token": "t"},
        latency_trusted=False,
        credential="tenant",
        target="api",
        address="127.0.0.1:8080",
        via_proxy=True,
        condition="ids-belong-to-tenant",
        item_ids=("acme-p1", "acme-p2"),
        asked="5f2b",
    )
    defaults = ProbeResult("t", "c", Outcome.OK, 0.0, 0.0)
    # Every field set to other than its default: a field out of place would show.
    assert all(getattr(result, f.name) != getattr(defaults, f.name) for f in fields(result))
    kept = _without_ids(result)
    assert kept == replace(result, item_ids=())
    assert kept.item_ids == () and result.item_ids == ("acme-p1", "acme-p2")
