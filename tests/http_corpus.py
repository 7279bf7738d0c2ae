"""Edge-case and malformed HTTP/1.1 responses, each named, with what a probe must make of
them. The framing unit tests read each through the parser; the differential integration test
(tests/integration/test_http_corpus.py) sends each from a raw socket to all three transports."""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.probing.transport.framing import MAX_HEAD_BYTES

BODY = b'{"results":[{"id":"p1"}]}'
JSON = b"Content-Type: application/json\r\n"


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    # "ok" for a well-framed answer; "connect_error" for a broken one (the target's fault)
    outcome: str
    error: str = ""  # for a broken one: what the asyncio transport's parser says
    reusable: bool = False  # for a readable one: may the connection carry the next request?
    # Where one transport must differ, its outcome and why (see the differential test).
    differs: dict[str, tuple[str, str]] = field(default_factory=dict)


def length(head: bytes = b"HTTP/1.1 200 OK\r\n", body: bytes = BODY) -> bytes:
    return head + JSON + b"Content-Length: %d\r\n\r\n" % len(body) + body


def chunked(chunks: bytes, head: bytes = b"HTTP/1.1 200 OK\r\n") -> bytes:
    return head + JSON + b"Transfer-Encoding: chunked\r\n\r\n" + chunks


OK_HEAD = b"HTTP/1.1 200 OK\r\n"

# Why a transport reads a case differently (the RFC leaves the recipient the choice, and the
# default transport, llhttp without lenient flags, takes the strict one):
AIOHTTP_LAX = (
    "aiohttp runs llhttp with its lenient flags on for responses (headers, CR before LF, "
    "spaces after a chunk size) unless in its debug mode, and hands a 101 to the caller"
)
H11_UNFOLDS = "h11 unfolds obs-fold, which RFC 9112 section 5.2 allows a user agent to do"
H11_BARE_LF = "h11 takes a bare LF for a line end, which RFC 9112 section 2.2 allows"
H11_VERSION = "h11 reads any HTTP/x.y status line by HTTP/1.1 rules"

CASES = [
    # --- well framed ------------------------------------------------------------------------
    Case("content-length", length(), outcome="ok", reusable=True),
    Case(
        "chunked-with-extensions-and-trailers",
        chunked(b"5;ext=1\r\n" + BODY[:5] + b"\r\n14\r\n" + BODY[5:] + b"\r\n0\r\nX-T: t\r\n\r\n"),
        outcome="ok",
        reusable=True,
    ),
    Case("body-until-close", OK_HEAD + JSON + b"\r\n" + BODY, outcome="ok"),
    Case("http-1.0-with-length", length(b"HTTP/1.0 200 OK\r\n"), outcome="ok"),
    Case(
        "http-1.0-keep-alive",
        length(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"),
        outcome="ok",
        reusable=True,
    ),
    Case("connection-close", length(OK_HEAD + b"Connection: close\r\n"), outcome="ok"),
    Case(
        "connection-keep-alive-close",
        length(OK_HEAD + b"Connection: Keep-Alive, Close\r\n"),
        outcome="ok",
    ),
    Case(
        "interim-100-continue",
        b"HTTP/1.1 100 Continue\r\n\r\n" + length(),
        outcome="ok",
        reusable=True,
    ),
    Case("no-reason-phrase", length(b"HTTP/1.1 200\r\n"), outcome="ok", reusable=True),
    Case("stray-crlf-after-body", length() + b"\r\n", outcome="ok", reusable=True),
    Case(
        "head-of-10kb",
        length(OK_HEAD + b"X-Big: " + b"a" * 10_000 + b"\r\n"),
        outcome="ok",
        reusable=True,
    ),
    # --- broken: the target's fault, connect_error with the reason ---------------------------
    Case(
        "garbage-status-line", b"GARBAGE\r\n\r\n", outcome="connect_error", error="Expected HTTP/"
    ),
    Case(
        "status-of-four-digits",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        outcome="connect_error",
        error="Invalid response status",
    ),
    Case(
        "http-2.0-status-line",
        length(b"HTTP/2.0 200 OK\r\n"),
        outcome="connect_error",
        error="not an HTTP/1.x response",
        differs={"aiohttp": ("ok", AIOHTTP_LAX), "httpx": ("ok", H11_VERSION)},
    ),
    Case(
        "header-without-colon",
        length(OK_HEAD + b"no colon here\r\n"),
        outcome="connect_error",
        error="Invalid header token",
    ),
    Case(
        "folded-first-header",
        length(OK_HEAD + b" folded: x\r\n"),
        outcome="connect_error",
        error="Unexpected space after start line",
        differs={"aiohttp": ("ok", AIOHTTP_LAX)},
    ),
    Case(
        "obs-fold-continuation",
        length(OK_HEAD + b"X-A: a\r\n b\r\n"),
        outcome="connect_error",
        error="Unexpected whitespace after header value",
        differs={"aiohttp": ("ok", AIOHTTP_LAX), "httpx": ("ok", H11_UNFOLDS)},
    ),
    Case(
        "space-before-colon",
        length(OK_HEAD + b"X-A : a\r\n"),
        outcome="connect_error",
        error="Invalid header token",
    ),
    Case(
        "invalid-header-name",
        length(OK_HEAD + b"X A: a\r\n"),
        outcome="connect_error",
        error="Invalid header token",
    ),
    Case(
        "nul-in-header-value",
        length(OK_HEAD + b"X-A: a\x00b\r\n"),
        outcome="connect_error",
        error="Invalid header value char",
    ),
    Case(
        "bare-lf-in-header-line",
        length(OK_HEAD + b"X-A: a\nX-B: b\r\n"),
        outcome="connect_error",
        error="Missing expected CR",
        differs={"aiohttp": ("ok", AIOHTTP_LAX), "httpx": ("ok", H11_BARE_LF)},
    ),
    Case(
        "bare-lf-line-endings",
        length(OK_HEAD).replace(b"\r\n", b"\n"),
        outcome="connect_error",
        error="Missing expected CR",
        differs={"aiohttp": ("ok", AIOHTTP_LAX), "httpx": ("ok", H11_BARE_LF)},
    ),
    Case(
        "conflicting-content-length",
        OK_HEAD + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n[]",
        outcome="connect_error",
        error="Duplicate Content-Length",
    ),
    Case(
        "negative-content-length",
        OK_HEAD + b"Content-Length: -1\r\n\r\n",
        outcome="connect_error",
        error="Invalid character in Content-Length",
    ),
    Case(
        "plus-signed-content-length",
        OK_HEAD + b"Content-Length: +2\r\n\r\n[]",
        outcome="connect_error",
        error="Invalid character in Content-Length",
    ),
    Case(
        "transfer-encoding-and-content-length",
        OK_HEAD
        + JSON
        + b"Transfer-Encoding: chunked\r\nContent-Length: 25\r\n\r\n"
        + b"19\r\n"
        + BODY
        + b"\r\n0\r\n\r\n",
        outcome="connect_error",
        error="Content-Length can't be present with Transfer-Encoding",
    ),
    Case(
        "chunk-size-0x3",
        chunked(b"0x19\r\n" + BODY + b"\r\n0\r\n\r\n"),
        outcome="connect_error",
        error="Invalid character in chunk size",
    ),
    Case(
        "chunk-size-not-hex",
        chunked(b"zz\r\n"),
        outcome="connect_error",
        error="Invalid character in chunk size",
    ),
    Case(
        "chunk-size-negative",
        chunked(b"-1\r\n"),
        outcome="connect_error",
        error="Invalid character in chunk size",
    ),
    Case(
        "chunk-longer-than-its-size",
        chunked(b"1\r\nab\r\n0\r\n\r\n"),
        outcome="connect_error",
        error="Expected LF after chunk data",
    ),
    Case(
        "switching-protocols-unasked",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
        outcome="connect_error",
        error="101 Switching Protocols",
        differs={"aiohttp": ("http_error", AIOHTTP_LAX)},
    ),
    Case(
        "truncated-body",
        length()[:-5],
        outcome="connect_error",
        error="before the response was complete",
    ),
    Case(
        "truncated-chunked",
        chunked(b"19\r\n" + BODY[:10]),
        outcome="connect_error",
        error="before the response was complete",
    ),
    Case("closed-without-response", b"", outcome="connect_error", error="without a response"),
    Case(
        "head-of-20kb",
        length(OK_HEAD + b"X-Big: " + b"a" * 20_000 + b"\r\n"),
        outcome="connect_error",
        error=f"response head larger than {MAX_HEAD_BYTES} bytes",
    ),
    Case(
        "head-of-100kb-in-small-headers",
        length(OK_HEAD + b"".join(b"X-%05d: %s\r\n" % (i, b"a" * 90) for i in range(1000))),
        outcome="connect_error",
        error=f"response head larger than {MAX_HEAD_BYTES} bytes",
    ),
    Case(
        "head-without-end",
        OK_HEAD + b"X-Big: " + b"a" * 100_000,
        outcome="connect_error",
        error=f"response head larger than {MAX_HEAD_BYTES} bytes",
    ),
]
