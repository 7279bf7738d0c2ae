"""One HTTP/1.1 connection as an asyncio protocol: one request at a time, the response body
handed over in pieces, reading paused while the reader is behind (a cap holds without the
rest of the body ever being pulled in)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable
from typing import cast

from monitor.probing.transport.framing import Head, ProtocolError, ResponseParser
from monitor.telemetry.polltime import TimedSelector

_PAUSE_ABOVE = 256 * 1024  # bytes of body waiting for the reader
_RESUME_BELOW = 64 * 1024


class ConnectionClosed(Exception):
    """The connection ended (reset, or closed early); `cause` is the OS error, if any."""


class Connection(asyncio.Protocol):
    def __init__(self, polls: TimedSelector | None = None) -> None:
        """`polls`: the selector of the loop it runs on, when that one times its polls (the
        monitor's own loop: monitor.telemetry.polltime); None: stamps with loop.time()."""
        self._loop = self.loop = asyncio.get_running_loop()  # the loop it belongs to
        self._polls = polls
        # The clock of `completed_at`: the polls' (the loop's own, time.monotonic) or the loop's.
        self.time = polls.time if polls is not None else self._loop.time
        self.transport: asyncio.Transport | None = None
        self.peer = ""  # ip:port of the server (or proxy) this connection reached
        self.closed = False
        self.received = False  # any byte of the current response: a retry is no longer safe
        self.idle_since = 0.0
        # Loop time the pending response was whole: its latency ends there, not when the
        # probe's task next runs (a loop iteration later, ~1 ms on a busy loop). With `polls`:
        # when the poll that reported its last bytes says they came (TimedSelector.arrival),
        # and `read_doubt` how far off that stamp may be, either way; None: not known (no
        # timed poll).
        self.completed_at: float | None = None
        self.read_doubt: float | None = None
        self._sent_at = 0.0  # with `polls`: when the pending request was written
        self._parser: ResponseParser | None = None  # the pending response's
        self._reader: ResponseParser | None = None  # kept for the next response
        self._error: BaseException | None = None
        self._head: asyncio.Future[Head] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._pieces: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is one without subclassing asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if self._error is not None:
            return
        if parser is None:
            self._fail(ProtocolError("data from the server while no request was pending"))
            return
        self.received = True
        try:
            pieces = parser.feed(data)
        except ProtocolError as exc:
            self._fail(exc)
            return
        if parser.head is not None and self._head is not None and not self._head.done():
            self._head.set_result(parser.head)
        if pieces:
            self._pieces.extend(pieces)
            self._buffered += sum(map(len, pieces))
            if self._buffered > _PAUSE_ABOVE and not self._paused and self.transport is not None:
                self._paused = True
                self.transport.pause_reading()
        if parser.complete:
            self._note_complete()
        if pieces or parser.complete:
            self._wake()

    def eof_received(self) -> bool:
        if self._parser is not None and self._error is None:
            try:
                self._parser.feed_eof()
                self._note_complete()
            except ProtocolError as exc:
                self._fail(exc)
            self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._parser is not None and not self._parser.complete and self._error is None:
            if exc is not None:
                closed = ConnectionClosed(f"{type(exc).__name__}: {exc}")
                closed.__cause__ = exc
                self._fail(closed)
            else:
                try:
                    self._parser.feed_eof()
                    # Called soon after the close, not by the poll that saw it: untimed.
                    self._note_complete(polled=False)
                except ProtocolError as error:
                    self._fail(error)
        if self._reader is not None:
            self._reader.detach()  # nothing more arrives: free llhttp's parser now (no cycle)
        self._wake()

    # --- used by the pool -------------------------------------------------------------------

    def send(
        self, data: bytes, *, head_request: bool, read_timeout: float | None
    ) -> Awaitable[Head]:
        """Write the request; the response head, to be awaited. Raises ProtocolError,
        ConnectionClosed or TimeoutError (read_timeout)."""
        assert self.transport is not None
        if self.closed:  # before a parser is made for it (a closed connection keeps none)
            raise ConnectionClosed("the connection was closed while idle")
        reader = self._reader
        self._parser = self._reader = (
            reader.again(head_request=head_request)
            if reader is not None
            else ResponseParser(head_request=head_request)
        )
        self._error = None
        self.received = False
        self.completed_at = self.read_doubt = None
        self._head = self._loop.create_future()
        if self._polls is not None:
            self._sent_at = self.time()
        self.transport.write(data)
        if read_timeout is None:
            # The probe's deadline holds it (http._send): no timeout object of its own
            # (asyncio.timeout's construction, enter and exit were ~2.5% of the 10k-tenant
            # fleet's CPU, py-spy), and the future itself awaited (no coroutine of its own).
            return self._head
        return self._head_within(self._head, read_timeout)

    async def _head_within(self, head: asyncio.Future[Head], read_timeout: float) -> Head:
        async with asyncio.timeout(read_timeout):
            return await head

    def buffered_piece(self) -> bytes | None:
        """The next body piece already read; b"" once the body is complete; None if the next
        must be waited for (`readable`). Raises what ended the connection."""
        pieces = self._pieces
        if not pieces:
            parser = self._parser
            assert parser is not None
            if parser.complete:  # whole: whatever happens to the connection afterwards
                return b""
            if self._error is not None:
                raise self._error
            return None
        piece = pieces.popleft()
        self._buffered -= len(piece)
        if self._paused and self._buffered < _RESUME_BELOW and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return piece

    async def readable(self, read_timeout: float | None) -> None:
        """Until more of the body (or its end, or an error) is there. Raises TimeoutError."""
        self._wakeup = self._loop.create_future()
        if read_timeout is None:
            await self._wakeup
            return
        async with asyncio.timeout(read_timeout):
            await self._wakeup

    @property
    def reusable(self) -> bool:
        parser = self._parser
        return (
            not self.closed
            and self._error is None
            and parser is not None
            and parser.complete
            and not parser.trailing_data
            and not self._pieces
            and parser.head is not None
            and parser.head.keep_alive
        )

    def tunnel_transport(self) -> asyncio.Transport:
        """After a 2xx to CONNECT: the raw transport, for TLS to the origin over it. Raises
        ProtocolError if anything came after the proxy's answer (it would be read as TLS)."""
        parser = self._parser
        if (
            parser is None
            or not parser.complete
            or parser.trailing_data
            or self._error is not None
            or self.closed
            or self.transport is None
        ):
            raise ProtocolError("bytes after the proxy's answer to CONNECT")
        self._parser = None
        self._head = None
        return self.transport

    def start_tls_over(self, transport: asyncio.Transport) -> None:
        """The TLS transport start_tls made over the tunnel: requests go through it now."""
        self.transport = transport

    def release(self, now: float) -> None:
        """The response is done with; the connection waits for the next request."""
        self._parser = None
        self._head = None
        self.idle_since = now

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        if self._head is not None and not self._head.done():
            self._head.set_exception(exc)
            self._head.exception()  # retrieved: a late failure nobody awaits is not "lost"
        self._wake()
        self.close()

    def _note_complete(self, polled: bool = True) -> None:
        """The response is whole. `polled`: its last bytes (or end) came in a reader callback
        of the poll that reported them, data_received or eof_received (polltime's reasoning)."""
        if self.completed_at is None:
            polls = self._polls
            if polls is None or not polled:
                self.completed_at = self.time()
            else:
                self.completed_at, self.read_doubt = polls.arrival(self._sent_at)

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
