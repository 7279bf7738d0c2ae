"""On a loop whose selector times its polls (recmon's own: cli builds it), an answer's latency
ends at the poll that read its last bytes, and is trusted by that read alone: an answer read on
time and judged after a long busy stretch is trusted with the right latency; one whose read came
after a busy stretch is withheld. The server runs in a thread of its own, as a real target
would: the monitor's loop standing still does not hold it up."""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any
from unittest import mock

import httpx
import pytest

from monitor.core.clock import SystemClock
from monitor.core.results import Outcome, ProbeResult
from monitor.probing import http
from monitor.probing.http import prepare, probe_http
from monitor.probing.transport.connection import Connection
from monitor.probing.transport.pool import AsyncioTransport
from monitor.telemetry.polltime import TimedSelector, loop_selector
from tests.http_corpus import BODY, JSON
from tests.integration.test_direct_exchange import ThroughHttpx, search_check

pytestmark = [pytest.mark.integration, pytest.mark.timing]

ANSWER = b"HTTP/1.1 200 OK\r\n" + JSON + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY
# The loop stands still this long; reads are trusted under THRESHOLD_S here (5 ms in recmon:
# a loaded machine's preemptions of the test process alone can reach that).
STALL_S = 0.1
THRESHOLD_S = 0.05


@pytest.fixture(autouse=True)
def threshold() -> Iterator[None]:
    with mock.patch.object(http, "TRUST_THRESHOLD_S", THRESHOLD_S):
        yield


@pytest.fixture
def server() -> Iterator[int]:
    """A keep-alive HTTP server on a thread: answers every request at once; its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    done = threading.Event()

    def answer(conn: socket.socket) -> None:
        with conn:
            pending = b""
            while not done.is_set():
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                pending += data
                while b"\r\n\r\n" in pending:
                    _, pending = pending.split(b"\r\n\r\n", 1)
                    conn.sendall(ANSWER)

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    done.set()
    thread.join()
    listener.close()


def on_timed_loop(main: Callable[[TimedSelector], Coroutine[Any, Any, Any]]) -> Any:
    """main(polls) run as cli runs the monitor: on a loop whose selector times its polls."""
    polls = loop_selector()
    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(polls)) as runner:
        return runner.run(main(polls))


def probes(
    port: int, *, direct: bool, rounds: int, guard: Callable[[float, float], bool] | None = None
) -> Callable[[TimedSelector], Coroutine[Any, Any, list[ProbeResult]]]:
    """`rounds` probes on one client whose transport reads by the loop's polls; the first
    opens the connection (its request does not go out at the probe's start)."""
    check = search_check(timeout=2.0)

    async def run(polls: TimedSelector) -> list[ProbeResult]:
        transport = AsyncioTransport(polls=polls)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=httpx.Timeout(check.timeout),
            transport=transport if direct else ThroughHttpx(transport),
        ) as client:
            request = prepare(client, check.render({"tenant": "acme", "query": "shoes"}))
            with mock.patch.object(http, "_exchange", wraps=http._exchange) as exchanged:
                found = [
                    await probe_http(check, "acme", request, client, SystemClock(), {}, guard)
                    for _ in range(rounds)
                ]
            assert exchanged.call_count == (rounds if direct else 0)  # the path it says
            return found

    return run


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "through-httpx"])
def test_an_answer_read_on_time_and_judged_late_is_trusted(server: int, direct: bool) -> None:
    """The loop stands still for 100 ms right after the read that completed the answer (a
    callback queued ahead of the probe's task, as the other answers of a burst are): the
    latency leaves the stall out, and it is trusted, even where the loop-lag monitor would
    have said the loop ran late during the flight (the guard is not asked)."""
    original = Connection.data_received

    def then_stall(connection: Connection, data: bytes) -> None:
        asyncio.get_running_loop().call_soon(time.sleep, STALL_S)
        original(connection, data)

    with mock.patch.object(Connection, "data_received", then_stall):
        results = on_timed_loop(probes(server, direct=direct, rounds=3, guard=never_on_time))
    for result in results:
        assert result.outcome is Outcome.OK, result
        assert result.duration_s < STALL_S, result  # the stall is not the target's
    # The first opened its connection: the loop's time before its request went out is in
    # its latency, which its read cannot tell, so the guard decides (here: untrusted).
    assert [r.latency_trusted for r in results] == [False, True, True]


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "through-httpx"])
def test_an_answer_read_after_a_busy_stretch_is_withheld(server: int, direct: bool) -> None:
    """The loop stands still for 100 ms right after the request went out (in the step that
    wrote it): the answer arrives meanwhile and is read by the first poll after the stall,
    which cannot tell when in those 100 ms it came (it stamps their middle). Not trusted,
    whatever the loop-lag monitor says."""
    original = Connection.send

    def then_stall(connection: Connection, *args: Any, **kwargs: Any) -> Any:
        head = original(connection, *args, **kwargs)
        time.sleep(STALL_S)
        # And until the answer is in, however long the server's new thread takes to start on
        # a loaded machine: once it answered the first request after the stall, and the poll
        # that then blocked until it came timed it rightly (trusted, failing this test).
        assert connection.transport is not None
        select.select([connection.transport.get_extra_info("socket")], [], [], 5.0)
        return head

    with mock.patch.object(Connection, "send", then_stall):
        results = on_timed_loop(probes(server, direct=direct, rounds=3, guard=always_on_time))
    for result in results:
        assert result.outcome is Outcome.OK, result
        # Half the stall is in what it would report (its doubt: the other half).
        assert result.duration_s >= STALL_S / 2, result
    # The first opened its connection: its read's doubt is not its latency's (the loop's delays
    # before the send are not in it), but it waited for its task from the stamp, in the
    # middle of the stall, over 50 ms: the loop was busy around its last byte (untrusted,
    # whatever the loop-lag monitor says: this one says the loop was on time).
    assert [r.latency_trusted for r in results] == [False, False, False]


def test_on_time_reads_are_trusted_and_timed_from_their_poll(server: int) -> None:
    """Without stalls every answer on a kept-alive connection is trusted by its read, and
    its latency ends at the poll that read it: no later than the probe's own end."""
    results = on_timed_loop(probes(server, direct=True, rounds=20, guard=never_on_time))
    assert all(r.outcome is Outcome.OK for r in results)
    # Loopback answers come within the trust threshold of the request on an idle loop; a
    # loaded machine may make one or two doubtful.
    assert sum(r.latency_trusted for r in results[1:]) >= 15


def never_on_time(start: float, end: float) -> bool:
    return False


def always_on_time(start: float, end: float) -> bool:
    return True
