"""HTTP/1.1 message framing without I/O: a request to bytes; response bytes to a head and
body pieces. Strict where a lenient reading could hide a broken target, bounded everywhere."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

MAX_HEAD_BYTES = 16 * 1024  # a larger response head is the target's fault, not ours to hold
_MAX_CHUNK_LINE = 1024


class ProtocolError(Exception):
    """The response is not HTTP/1.1 as RFC 9112 frames it."""


@dataclass(frozen=True, slots=True)
class Head:
    status: int
    reason: bytes
    headers: tuple[tuple[bytes, bytes], ...]  # names lower-cased, in order received
    keep_alive: bool


def encode_request(
    method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes
) -> bytes:
    """The request as it goes on the wire. Header values come from httpx.Headers, which has
    already refused CR and LF in them."""
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    lines.append(body)
    return b"".join(lines)


class _Body(enum.Enum):
    HEAD = 0  # waiting for the head
    LENGTH = 1  # Content-Length bytes to go
    CHUNK_SIZE = 2
    CHUNK_DATA = 3
    CHUNK_END = 4  # the CRLF after a chunk's data
    TRAILERS = 5
    UNTIL_CLOSE = 6
    DONE = 7


class ResponseParser:
    """Feed it what the socket gives; it says when the head is there and the body is done."""

    def __init__(self, *, head_request: bool = False) -> None:
        self.head: Head | None = None
        # Bytes after the end of the response: the answer stands, the connection is not
        # reused (they may be the start of something nobody asked for).
        self.trailing_data = False
        self._head_request = head_request
        self._buffer = b""
        self._state = _Body.HEAD
        self._remaining = 0

    @property
    def complete(self) -> bool:
        return self._state is _Body.DONE

    def feed(self, data: bytes) -> list[bytes]:
        """Body pieces found in `data` (possibly none). Raises ProtocolError."""
        if self._state is _Body.DONE:
            self.trailing_data = self.trailing_data or bool(data)
            return []
        buffer: bytes | None = self._buffer + data if self._buffer else data
        self._buffer = b""
        pieces: list[bytes] = []
        while buffer and not self.complete:
            buffer = self._step(buffer, pieces)
        if buffer and self.complete:
            self.trailing_data = True
        return pieces

    def feed_eof(self) -> None:
        """The server closed the connection. Raises ProtocolError unless that ends the body."""
        if self._state is _Body.UNTIL_CLOSE:
            self._state = _Body.DONE
        elif self._state is not _Body.DONE:
            raise ProtocolError(
                "server closed the connection before the response was complete"
                if self.head is not None
                else "server closed the connection without a response"
            )

    def _step(self, buffer: bytes, pieces: list[bytes]) -> bytes | None:
        """Consume what one state can from `buffer`; the rest, or None to wait for more (the
        unconsumed part kept)."""
        state = self._state
        if state is _Body.LENGTH or state is _Body.CHUNK_DATA:
            piece = buffer[: self._remaining]
            pieces.append(piece)
            self._remaining -= len(piece)
            if self._remaining == 0:
                self._state = _Body.DONE if state is _Body.LENGTH else _Body.CHUNK_END
            return buffer[len(piece) :]
        if state is _Body.UNTIL_CLOSE:
            pieces.append(buffer)
            return b""
        if state is _Body.HEAD:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise ProtocolError(f"response head larger than {MAX_HEAD_BYTES} bytes")
                self._buffer = buffer
                return None
            if end > MAX_HEAD_BYTES:
                raise ProtocolError(f"response head larger than {MAX_HEAD_BYTES} bytes")
            self._start_body(_parse_head(buffer[:end]))
            return buffer[end + 4 :]
        end = buffer.find(b"\r\n")
        if end < 0:
            if len(buffer) > (MAX_HEAD_BYTES if state is _Body.TRAILERS else _MAX_CHUNK_LINE):
                raise ProtocolError("chunk framing line too long")
            self._buffer = buffer
            return None
        line, rest = buffer[:end], buffer[end + 2 :]
        if state is _Body.CHUNK_SIZE:
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
            if size < 0 or not size_text.isalnum():
                raise ProtocolError(f"bad chunk size {size_text[:20]!r}")
            if size == 0:
                self._state = _Body.TRAILERS
            else:
                self._state, self._remaining = _Body.CHUNK_DATA, size
        elif state is _Body.CHUNK_END:
            if line:
                raise ProtocolError("chunk data longer than its size")
            self._state = _Body.CHUNK_SIZE
        elif not line:  # TRAILERS: an empty line ends them (their contents are ignored)
            self._state = _Body.DONE
        return rest

    def _start_body(self, head: Head) -> None:
        if 100 <= head.status < 200:
            return  # an interim response (100 Continue): the real one follows
        self.head = head
        if self._head_request or head.status in (204, 304):
            self._state = _Body.DONE
            return
        encodings = [v for n, v in head.headers if n == b"transfer-encoding"]
        lengths = {v.strip() for n, v in head.headers if n == b"content-length"}
        if encodings:
            codings = b",".join(encodings).lower().replace(b" ", b"").split(b",")
            if codings[-1] != b"chunked":
                self._state = _Body.UNTIL_CLOSE
                self.head = _closing(head)
            else:
                self._state = _Body.CHUNK_SIZE
        elif lengths:
            if len(lengths) > 1 or not all(v.isdigit() for v in lengths):
                raise ProtocolError("conflicting or invalid Content-Length")
            self._remaining = int(lengths.pop())
            self._state = _Body.LENGTH if self._remaining else _Body.DONE
        else:
            self._state = _Body.UNTIL_CLOSE
            self.head = _closing(head)


def _closing(head: Head) -> Head:
    return Head(head.status, head.reason, head.headers, keep_alive=False)


def _parse_head(raw: bytes) -> Head:
    status_line, *header_lines = raw.split(b"\r\n")
    version, _, rest = status_line.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(f"bad status line {status_line[:40]!r}")
    headers = []
    keep_alive = version == b"HTTP/1.1"
    for line in header_lines:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b" " in name or b"\t" in name:
            raise ProtocolError(f"bad header line {line[:40]!r}")
        name = name.lower()
        value = value.strip(b" \t")
        if name == b"connection":
            tokens = value.lower().replace(b" ", b"").split(b",")
            if b"close" in tokens:
                keep_alive = False
            elif b"keep-alive" in tokens:
                keep_alive = True
        headers.append((name, value))
    return Head(int(code), reason, tuple(headers), keep_alive)
