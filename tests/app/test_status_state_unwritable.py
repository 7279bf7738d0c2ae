"""recmon's own state_unwritable alert on the status page's recmon card and in /status."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import jsonschema
import pytest
from prometheus_client import CollectorRegistry

from monitor.app.assembly import build_monitor
from monitor.app.status import model, page
from monitor.app.status.collect import StatusSource, snapshot
from monitor.core.clock import ManualClock
from monitor.state.store import StateStore
from tests.helpers import ROOT, load

SCHEMA = json.loads((ROOT / "docs" / "status.schema.json").read_text())


def test_a_state_file_that_takes_no_writes_shows_on_the_page_and_in_status() -> None:
    clock = ManualClock(start=1_700_000_000.0)
    store = StateStore.open(":memory:")
    monitor = build_monitor(
        load(), clock=clock, registry=CollectorRegistry(), storage=store.write_health
    )
    source = StatusSource(monitor, None, None, "/var/lib/recmon/state.db", clock.time(), "p.yaml")

    def document() -> Any:
        doc = json.loads(json.dumps(model.status_document(snapshot(source, None))))
        jsonschema.validate(doc, SCHEMA)
        return doc["self"]["state_file"]

    monitor.hub.tick()
    assert document()["unwritable"] is None
    assert "not crash-safe" not in page.render_index(snapshot(source, None))
    with store.lock:
        store.connection.execute("PRAGMA query_only = 1")
    with pytest.raises(sqlite3.OperationalError):
        store.put("tls", {})
    monitor.hub.tick()
    clock.advance(90)
    unwritable = document()["unwritable"]
    assert unwritable == {
        "since": {"at": "2023-11-14T22:13:20Z", "ago": "1m 30s"},
        "summary": unwritable["summary"],
    }
    assert unwritable["summary"].startswith(
        "state file unwritable: attempt to write a readonly database (:memory:)"
    )
    html = page.render_index(snapshot(source, None))
    assert "pages sent from memory, not crash-safe" in html
    assert "attempt to write a readonly database" in html
    store.close()
