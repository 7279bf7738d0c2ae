"""HTTP/1.1 response framing without sockets: every way a response can end, every way it can
be broken, and the same reading however the bytes are split."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.probing.transport.framing import (
    MAX_HEAD_BYTES,
    ProtocolError,
    ResponseParser,
    encode_request,
)

LENGTH = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n" + (
    b'{"results":1}'
)
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
)


def read(raw: bytes, *, head_request: bool = False, eof: bool = False) -> tuple[int, bytes, bool]:
    parser = ResponseParser(head_request=head_request)
    body = b"".join(parser.feed(raw))
    if eof:
        parser.feed_eof()
    assert parser.complete and parser.head is not None
    return parser.head.status, body, parser.head.keep_alive


def test_content_length_body() -> None:
    parser = ResponseParser()
    assert parser.feed(LENGTH[:20]) == [] and parser.head is None
    assert b"".join(parser.feed(LENGTH[20:])) == b'{"results":1}'
    assert parser.complete and parser.head is not None
    assert parser.head.status == 200 and parser.head.reason == b"OK"
    assert (b"content-type", b"application/json") in parser.head.headers  # names lower-cased
    assert parser.head.keep_alive


def test_chunked_body_with_extensions_and_trailers() -> None:
    assert read(CHUNKED) == (200, b"hello world", True)


def test_body_until_close_ends_at_eof_and_the_connection_is_not_kept() -> None:
    assert read(b"HTTP/1.1 200 OK\r\n\r\nall of it", eof=True) == (200, b"all of it", False)


@pytest.mark.parametrize(
    ("raw", "head_request"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", True),  # HEAD: length, no body
        (b"HTTP/1.1 204 No Content\r\n\r\n", False),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False),
    ],
)
def test_responses_without_a_body_complete_at_their_head(raw: bytes, head_request: bool) -> None:
    assert read(raw, head_request=head_request)[1] == b""


def test_interim_100_continue_is_skipped() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\n" + LENGTH
    assert read(raw)[:2] == (200, b'{"results":1}')


@pytest.mark.parametrize(
    ("head", "keep_alive"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n", False),
        (b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\n", False),
        (b"HTTP/1.0 200 OK\r\n", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n", True),
    ],
)
def test_keep_alive_follows_version_and_connection_header(head: bytes, keep_alive: bool) -> None:
    assert read(head + b"Content-Length: 2\r\n\r\n[]")[2] is keep_alive


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"GARBAGE\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", "longer than"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEAD_BYTES, "larger than"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n", "larger than"),
    ],
)
def test_broken_responses_are_protocol_errors(raw: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        ResponseParser().feed(raw)


def test_bytes_after_the_end_leave_the_answer_but_spoil_the_connection() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]\r\n") == [b"[]"]
    assert parser.complete and parser.trailing_data
    later = ResponseParser()
    later.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]")
    assert not later.trailing_data
    assert later.feed(b"HTTP/1.1 408 Request Timeout\r\n\r\n") == [] and later.trailing_data


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "without a response"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{", "before the response was complete"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "before the response"),
    ],
)
def test_a_close_before_the_end_is_a_protocol_error(raw: bytes, message: str) -> None:
    parser = ResponseParser()
    parser.feed(raw)
    with pytest.raises(ProtocolError, match=message):
        parser.feed_eof()


@given(st.sampled_from([LENGTH, CHUNKED]), st.lists(st.integers(0, 200), max_size=12))
def test_any_split_of_the_bytes_reads_the_same(raw: bytes, cuts: list[int]) -> None:
    points = sorted({min(c, len(raw)) for c in cuts})
    parser = ResponseParser()
    body = b""
    for start, end in zip([0, *points], [*points, len(raw)], strict=True):
        body += b"".join(parser.feed(raw[start:end]))
    assert parser.complete and parser.head is not None and parser.head.status == 200
    assert body == read(raw)[1]


def test_request_encoding() -> None:
    wire = encode_request(b"POST", b"/v1/a?q=1", [(b"Host", b"x"), (b"X-A", b"b")], b"{}")
    assert wire == b"POST /v1/a?q=1 HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\r\n{}"
