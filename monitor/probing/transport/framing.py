"""HTTP/1.1 message framing without I/O: a request to bytes; response bytes to a head and
body pieces. The grammar is llhttp's (Node's parser, through httptools), strict: no lenient
flags. recmon adds what a probe needs around it: caps on the head and the chunk framing,
the end of a body read until close (httptools does not expose llhttp_finish), and never
reusing a connection whose response could be read more than one way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import httptools

from monitor.core.frozen import builder

MAX_HEAD_BYTES = 16 * 1024  # a larger response head is the target's fault, not ours to hold
_MAX_CHUNK_LINE = 1024  # per chunk: its size line (and extensions) and the CRLF after it


class ProtocolError(Exception):
    """The response is not HTTP/1.1 as RFC 9112 frames it."""


class _Stop(Exception):
    """Raised from a parser callback to stop parsing where the response ends."""


@dataclass(frozen=True, slots=True)
class Head:
    status: int
    reason: bytes
    headers: tuple[tuple[bytes, bytes], ...]  # names lower-cased, in order received
    keep_alive: bool


_new_head = builder(Head)  # Head(...) for every response: ~0.3 us less (monitor.core.frozen)


class RequestFields(tuple[tuple[bytes, bytes], ...]):
    """A request's header fields (name, value), never changed, that keep their lines as they
    go on the wire: for the prober's requests, sent again every interval with the same
    fields (encoding them anew was ~0.5 us of every probe)."""

    lines: bytes

    def __new__(cls, fields: Sequence[tuple[bytes, bytes]]) -> RequestFields:
        self = super().__new__(cls, fields)
        self.lines = _field_lines(self)
        return self


def _field_lines(headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    lines: list[bytes] = []
    for name, value in headers:
        lines += (name, b": ", value, b"\r\n")
    return b"".join(lines)


def encode_request(
    method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes
) -> bytes:
    """The request as it goes on the wire. Header values come from httpx.Headers, which has
    already refused CR and LF in them."""
    lines = headers.lines if type(headers) is RequestFields else _field_lines(headers)
    return b"".join((method, b" ", target, b" HTTP/1.1\r\n", lines, b"\r\n", body))


class ResponseParser:
    """Feed it what the socket gives; it says when the head is there and the body is done."""

    def __init__(self, *, head_request: bool = False) -> None:
        # llhttp's parser once a response ended cleanly: it stands at the start of the next
        # message, as on any kept-alive connection, and `again` reads the next response with it.
        self._spare: httptools.HttpResponseParser | None = None
        self._start(head_request, httptools.HttpResponseParser(self))

    def again(self, *, head_request: bool = False) -> ResponseParser:
        """This parser, for the connection's next response. Keeping llhttp's parser (and our
        bound methods it holds) for the connection's life instead of building both for each
        response: about 2% of recmon's CPU at 1,000 probes/s (py-spy)."""
        parser, self._spare = self._spare, None
        self._start(head_request, parser or httptools.HttpResponseParser(self))
        return self

    def _start(self, head_request: bool, parser: httptools.HttpResponseParser) -> None:
        self.head: Head | None = None
        self.complete = False
        # Bytes after the end of the response: the answer stands, the connection is not
        # reused (they may be the start of something nobody asked for). A stray CRLF is
        # skipped, as llhttp and RFC 9112 section 2.2 allow.
        self.trailing_data = False
        self._head_request = head_request
        self._parser: httptools.HttpResponseParser | None = parser
        self._ends_at_head = False
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []  # as they came: lower-cased at the end
        self._head_size = 0
        self._until_close = False
        self._fed = 0  # bytes since the head began, against the caps
        self._body_bytes = 0
        self._chunks = 0
        self._pieces: list[bytes] = []

    def detach(self) -> None:
        """The connection is gone: nothing more is fed. Dropping llhttp's parser breaks the
        cycle between it and our bound methods it holds, so a closed connection's parsers are
        freed at once by reference counting, not kept until a full garbage collection."""
        self._parser = self._spare = None

    def feed(self, data: bytes) -> list[bytes]:
        """Body pieces found in `data` (possibly none). Raises ProtocolError."""
        parser = self._parser
        if parser is None:  # complete, or stopped: llhttp would skip CRLFs, then see more
            self.trailing_data = self.trailing_data or bool(data.lstrip(b"\r\n"))
            return []
        self._fed += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._parser = None
            cause = exc.__context__
            if isinstance(cause, ProtocolError):
                raise cause from None
            if not self.complete:
                raise ProtocolError(f"invalid HTTP response: {exc}") from None
            # Whatever came after the response stands apart from it. A response that ends at
            # its head (HEAD) stopped llhttp there: anything after the blank line trails.
            self.trailing_data = not (self._ends_at_head and data.endswith(b"\r\n\r\n"))
        else:
            if self.complete:
                # A clean end: the same llhttp parser reads the next response (a parser
                # stopped or failed above never does). It holds our bound methods and we hold
                # it: a cycle the garbage collector frees once per connection, not per
                # response (once per response it cost 5-8% CPU per probe).
                self._spare = parser
        if self.complete:
            self._parser = None
        pieces, self._pieces = self._pieces, []
        if self.head is None:
            if self._fed > MAX_HEAD_BYTES:
                raise ProtocolError(f"response head larger than {MAX_HEAD_BYTES} bytes")
        elif self._fed - self._body_bytes > 2 * MAX_HEAD_BYTES + _MAX_CHUNK_LINE * self._chunks:
            # The head, chunk size lines and trailers: llhttp holds a trailer's partial
            # value in memory, so this is bounded too.
            raise ProtocolError("chunk framing or trailers too long")
        return pieces

    def feed_eof(self) -> None:
        """The server closed the connection. Raises ProtocolError unless that ends the body."""
        if self.complete:
            return
        if self.head is not None and self._until_close:
            self.complete = True
            return
        raise ProtocolError(
            "server closed the connection before the response was complete"
            if self.head is not None
            else "server closed the connection without a response"
        )

    # --- llhttp's callbacks (httptools calls them from feed_data) ----------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            raise _Stop  # a second response nobody asked for: trailing data

    def on_status(self, reason: bytes) -> None:
        self._reason += reason
        self._grow_head(len(reason) + 13)  # the "HTTP/1.1 200 " before it

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head is not None:
            return  # a trailer: counted against the framing cap, otherwise ignored
        # Names lower-cased and framing read once the head is whole: the least Python per
        # field here (a callback per field from llhttp).
        self._headers.append((name, value))
        self._head_size += len(name) + len(value) + 4
        if self._head_size > MAX_HEAD_BYTES:
            raise ProtocolError(f"response head larger than {MAX_HEAD_BYTES} bytes")

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None  # it is calling
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # An interim response (100 Continue): the real one follows.
            self._reason, self._headers = b"", []
            return
        if status == 101:
            # RFC 9110 section 15.2.2: never without the client's Upgrade header (h11 agrees).
            raise ProtocolError("101 Switching Protocols to a request that asked for none")
        if parser.get_http_version() not in ("1.1", "1.0"):
            raise ProtocolError(f"not an HTTP/1.x response (HTTP/{parser.get_http_version()})")
        headers = tuple([(name.lower(), value) for name, value in self._headers])
        named = dict(headers)
        if b"transfer-encoding" in named:
            # Framed by chunks if chunked is the last coding, else read until close.
            codings = [value for name, value in headers if name == b"transfer-encoding"]
            joined = b",".join(codings).lower().replace(b" ", b"")
            framed = joined.rsplit(b",", 1)[-1] == b"chunked"
        else:  # most answers: framed by Content-Length, or read until close without one
            framed = b"content-length" in named
        no_body = self._head_request or status in (204, 304)
        self._until_close = not (no_body or framed)
        self.head = _new_head(status, self._reason, headers, parser.should_keep_alive())
        self._fed = self._body_bytes = 0  # from here on, the framing cap counts
        if self._head_request:
            self._ends_at_head = self.complete = True
            raise _Stop  # llhttp would wait for the body Content-Length announces

    def on_body(self, body: bytes) -> None:
        self._pieces.append(body)
        self._body_bytes += len(body)

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_message_complete(self) -> None:
        if self.head is not None:
            self.complete = True

    def _grow_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > MAX_HEAD_BYTES:
            raise ProtocolError(f"response head larger than {MAX_HEAD_BYTES} bytes")
