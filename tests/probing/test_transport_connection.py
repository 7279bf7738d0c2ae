"""A connection's stamp of its answer: when the poll that reported the last bytes says they
came (monitor.telemetry.polltime), on an injected clock."""

from __future__ import annotations

import asyncio

from monitor.probing.transport.connection import Connection
from monitor.telemetry.polltime import TimedSelector
from tests.http_corpus import BODY, JSON

ANSWER = b"HTTP/1.1 200 OK\r\n" + JSON + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY


class SteppedClock:
    def __init__(self, *times: float) -> None:
        self._times = list(times)

    def __call__(self) -> float:
        return self._times.pop(0)


class Written(asyncio.Transport):
    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass


def stamped(clock: SteppedClock, polls_before_send: int, polls_after_send: int) -> Connection:
    """The connection's numbers once its answer came whole: the selector polled (timeout 0)
    that many times before and after the request went out."""

    async def main() -> Connection:
        with TimedSelector(clock) as polls:
            connection = Connection(polls)
            connection.connection_made(Written())
            for _ in range(polls_before_send):
                polls.select(0)
            connection.send(b"GET / HTTP/1.1\r\n\r\n", head_request=False, read_timeout=None)
            for _ in range(polls_after_send):
                polls.select(0)
            connection.data_received(ANSWER)
            return connection

    return asyncio.run(main())


def test_an_answer_read_after_a_busy_stretch_is_stamped_in_its_middle_after_the_send() -> None:
    """The request went out 30 ms into a 40 ms busy stretch (the last of a burst of sends);
    the poll after the stretch reported its answer, which came between the send and that
    poll: stamped in the middle, doubted half of it (the poll's end was 10 ms late at most)."""
    # made at 0.0; a poll 0.9-1.0; the send at 1.03; a poll 1.04-1.0401
    connection = stamped(SteppedClock(0.0, 0.9, 1.0, 1.03, 1.04, 1.0401), 1, 1)
    assert connection.completed_at is not None and connection.read_doubt is not None
    assert abs(connection.completed_at - 1.03505) < 1e-9
    assert abs(connection.read_doubt - 0.00505) < 1e-9


def test_an_answer_sent_before_the_busy_stretch_is_stamped_within_it() -> None:
    """Sent before the previous poll: the answer came after that poll looked."""
    # made at 0.0; the send at 0.5; a poll 0.9-1.0; a poll 1.02-1.0201
    connection = stamped(SteppedClock(0.0, 0.5, 0.9, 1.0, 1.02, 1.0201), 0, 2)
    assert connection.completed_at is not None and connection.read_doubt is not None
    assert abs(connection.completed_at - 1.01005) < 1e-9
    assert abs(connection.read_doubt - 0.01005) < 1e-9
    assert connection.completed_at - connection.read_doubt >= 1.0 - 1e-9
