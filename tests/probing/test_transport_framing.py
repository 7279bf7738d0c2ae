"""HTTP/1.1 response framing without sockets: every case of the corpus (tests/http_corpus.py)
read as it should be, the same reading however the bytes are split, and what llhttp is not
asked to know (HEAD, the end of a body read until close, bytes after the end)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.probing.transport.framing import (
    MAX_HEAD_BYTES,
    ProtocolError,
    RequestFields,
    ResponseParser,
    encode_request,
)
from tests.http_corpus import BODY, CASES, Case, length

READABLE = [c for c in CASES if c.outcome == "ok"]
BROKEN = [c for c in CASES if c.outcome != "ok"]


def read_all(pieces: list[bytes], *, head_request: bool = False) -> tuple[ResponseParser, bytes]:
    """Feed the pieces, then the server's close unless the response was already complete."""
    parser = ResponseParser(head_request=head_request)
    body = b"".join(b"".join(parser.feed(piece)) for piece in pieces)
    if not parser.complete:
        parser.feed_eof()
    return parser, body


def reusable(parser: ResponseParser) -> bool:
    return (
        parser.complete
        and parser.head is not None
        and parser.head.keep_alive
        and not parser.trailing_data
    )


@pytest.mark.parametrize("case", READABLE, ids=[c.name for c in READABLE])
def test_each_readable_case_gives_its_body_and_says_if_the_connection_can_be_kept(
    case: Case,
) -> None:
    parser, body = read_all([case.raw])
    assert parser.head is not None and parser.head.status == 200
    assert body == BODY
    assert reusable(parser) is case.reusable


@pytest.mark.parametrize("case", BROKEN, ids=[c.name for c in BROKEN])
def test_each_broken_case_is_a_protocol_error(case: Case) -> None:
    with pytest.raises(ProtocolError, match=case.error):
        read_all([case.raw])


def split(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(raw)) for c in cuts})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]


def outcome(pieces: list[bytes]) -> tuple[bytes, bool] | str:
    try:
        parser, body = read_all(pieces)
    except ProtocolError as exc:
        return str(exc)
    return body, reusable(parser)


@given(st.sampled_from(CASES), st.lists(st.integers(0, 400), max_size=12))
def test_any_split_of_the_bytes_reads_the_same(case: Case, cuts: list[int]) -> None:
    assert outcome(split(case.raw, cuts)) == outcome([case.raw])


def test_the_head_arrives_before_the_body() -> None:
    raw = length()
    parser = ResponseParser()
    assert parser.feed(raw[:20]) == [] and parser.head is None
    assert b"".join(parser.feed(raw[20:])) == BODY
    assert parser.complete and parser.head is not None
    assert parser.head.status == 200 and parser.head.reason == b"OK"
    assert (b"content-type", b"application/json") in parser.head.headers  # names lower-cased


@pytest.mark.parametrize(
    ("raw", "head_request"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", True),  # HEAD: length, no body
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", True),
        (b"HTTP/1.1 204 No Content\r\n\r\n", False),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False),
    ],
)
def test_responses_without_a_body_complete_at_their_head(raw: bytes, head_request: bool) -> None:
    parser = ResponseParser(head_request=head_request)
    assert parser.feed(raw) == []
    assert reusable(parser)


def test_a_head_response_followed_by_more_bytes_spoils_the_connection() -> None:
    parser = ResponseParser(head_request=True)
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]")
    assert parser.complete and parser.trailing_data


@pytest.mark.parametrize(
    "after",
    [b"X", b"HTTP/1.1 408 Request Timeout\r\n\r\n", b"\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"],
    ids=["a-byte", "a-second-response", "a-response-after-blank-lines"],
)
def test_bytes_after_the_end_leave_the_answer_but_spoil_the_connection(after: bytes) -> None:
    at_once = ResponseParser()
    assert b"".join(at_once.feed(length() + after)) == BODY
    assert at_once.complete and at_once.trailing_data
    later = ResponseParser()
    later.feed(length())
    assert not later.trailing_data
    assert later.feed(after) == [] and later.trailing_data


def test_endless_trailers_are_cut() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX: ")
    with pytest.raises(ProtocolError, match="trailers too long"):
        for _ in range(10):
            parser.feed(b"a" * MAX_HEAD_BYTES)


def test_request_encoding() -> None:
    wire = encode_request(b"POST", b"/v1/a?q=1", [(b"Host", b"x"), (b"X-A", b"b")], b"{}")
    assert wire == b"POST /v1/a?q=1 HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\r\n{}"


def read_again(parser: ResponseParser, raw: bytes) -> tuple[ResponseParser, bytes]:
    """The connection's next response, read by the same parser."""
    parser = parser.again()
    body = b"".join(parser.feed(raw))
    if not parser.complete:
        parser.feed_eof()
    return parser, body


KEPT = [c for c in READABLE if c.reusable]


@pytest.mark.parametrize("first", KEPT, ids=[c.name for c in KEPT])
def test_a_parser_read_again_reads_every_case_as_a_new_one_does(first: Case) -> None:
    """After a response that leaves the connection reusable, the next response on it (every
    case of the corpus, broken ones too) reads exactly as with a fresh parser."""
    for case in CASES:
        parser, _ = read_all([first.raw])
        if case.outcome == "ok":
            again, body = read_again(parser, case.raw)
            fresh, fresh_body = read_all([case.raw])
            assert (again.head, body, reusable(again)) == (fresh.head, fresh_body, reusable(fresh))
        else:
            with pytest.raises(ProtocolError, match=case.error):
                read_again(parser, case.raw)


def test_after_a_head_or_a_broken_response_the_next_is_read_afresh() -> None:
    parser = ResponseParser(head_request=True)
    parser.feed(length())  # HEAD: llhttp stopped at the head, its parser not kept
    assert parser.complete
    again, body = read_again(parser, length())
    assert body == BODY and reusable(again)
    broken = ResponseParser()
    with pytest.raises(ProtocolError):
        broken.feed(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n")
    again, body = read_again(broken, length())
    assert body == BODY and reusable(again)


def test_request_fields_kept_encoded_go_on_the_wire_as_any_fields() -> None:
    fields = [(b"Host", b"x"), (b"Accept", b"*/*")]
    kept = RequestFields(fields)
    assert list(kept) == fields and [*kept, (b"X-A", b"b")][-1] == (b"X-A", b"b")
    for method, target, body in [(b"GET", b"/v1/a?q=1", b""), (b"POST", b"/", b"{}")]:
        wire = encode_request(method, target, fields, body)
        assert encode_request(method, target, kept, body) == wire
    assert encode_request(b"GET", b"/", RequestFields([]), b"") == b"GET / HTTP/1.1\r\n\r\n"
