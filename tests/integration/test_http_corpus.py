"""The differential corpus: every response in tests/http_corpus.py, sent by a raw loopback
socket to a probe on each of the three transports. Where the HTTP grammar decides, all three
reach the same outcome; where one must differ, the case says how and why."""

from __future__ import annotations

import asyncio

import pytest

from monitor.core.results import Outcome
from tests.http_corpus import CASES, Case
from tests.integration.test_hostile_targets import (
    probe_raw_target,
    raw_target_monitor,
    replying,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("transport", ["asyncio", "aiohttp", "httpx"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_every_transport_reads_the_corpus_alike(case: Case, transport: str) -> None:
    search = await probe_raw_target(replying(case.raw), transport)
    expected, _why = case.differs.get(transport, (case.outcome, "the grammar decides"))
    assert search.outcome is Outcome(expected), search
    if expected != "ok":
        assert search.reason and "127.0.0.1" not in search.reason
    if transport == "asyncio" and case.error:
        assert case.error in search.reason, search.reason


@pytest.mark.parametrize("transport", ["asyncio", "aiohttp", "httpx"])
@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("content-length", True),
        ("transfer-encoding-and-content-length", False),
        ("connection-close", False),
    ],
)
async def test_a_connection_is_reused_only_after_an_unambiguous_response(
    transport: str, name: str, kept: bool
) -> None:
    """Two probe rounds against a server that answers every request on a connection with the
    same bytes: a response readable two ways (a response-splitting risk) never lets the
    connection carry the next request, on any transport."""
    (case,) = [c for c in CASES if c.name == name]
    accepted = requests = 0

    async def answer_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted, requests
        accepted += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                requests += 1
                writer.write(case.raw)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer_each, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monitor = raw_target_monitor(f"http://127.0.0.1:{port}", transport)
    try:
        outcomes = [
            r.outcome for _ in range(2) for r in await monitor.probe_round() if r.check == "search"
        ]
    finally:
        await monitor.aclose()
        server.close()
    assert outcomes == [Outcome(case.outcome)] * 2
    assert requests >= 2
    assert accepted == (1 if kept else requests)
