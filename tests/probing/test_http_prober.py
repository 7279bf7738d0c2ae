"""The HTTP prober against httpx.MockTransport: one outcome per behaviour, never an exception."""

from __future__ import annotations

import asyncio
import gc
import json
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.clock import ManualClock, SystemClock
from monitor.core.results import Outcome, ProbeResult
from monitor.probing import http
from monitor.probing.checks import HttpCheck, RenderedRequest
from monitor.probing.http import _build, prepare, prepared, probe_http
from monitor.probing.transport.framing import Head
from monitor.probing.transport.peer import READ_DOUBT, WAITED
from tests.helpers import BASE_CONFIG, checks

Handler = Callable[[httpx.Request], httpx.Response]


def search_check(extra: str = "") -> HttpCheck:
    text = BASE_CONFIG.replace(
        "defaults: {interval: 10s, timeout: 2s}", "defaults: {interval: 10s, timeout: 0.3s}"
    )
    if extra:
        text = text.replace(
            '    capture: {product: "$.results[0].id"}',
            f'    capture: {{product: "$.results[0].id"}}\n{extra}',
        )
    return checks(text)["search"]


async def probe(
    handler: Handler | httpx.AsyncBaseTransport, check: HttpCheck | None = None
) -> ProbeResult:
    check = check or search_check()
    transport = (
        handler if isinstance(handler, httpx.AsyncBaseTransport) else httpx.MockTransport(handler)
    )
    async with httpx.AsyncClient(base_url="http://api.test", transport=transport) as client:
        request = prepare(client, check.render({"tenant": "acme", "query": "shoes"}))
        return await probe_http(check, "acme", request, client, SystemClock())


def results(items: list[object]) -> Handler:
    return lambda request: httpx.Response(200, json={"results": items})


@pytest.mark.timing  # a probe < 0.3 s
async def test_ok_counts_items_and_captures_first_product() -> None:
    result = await probe(results([{"id": "p1"}, {"id": "p2"}]))
    assert result.outcome is Outcome.OK
    assert result.items == 2
    assert result.status == 200
    assert dict(result.captures) == {"product": "p1"}
    assert result.tenant == "acme" and result.check == "search"
    assert 0 < result.duration_s < 0.3


@pytest.mark.parametrize(("waited", "trusted"), [(0.001, True), (0.25, False)])
async def test_the_latency_leaves_out_the_wait_after_the_last_byte_was_read(
    waited: float, trusted: bool
) -> None:
    """A transport that says the whole response waited for the probe's task (a busy loop):
    that wait is the monitor's, not the target's; one of 5 ms or more (the loop-lag trust
    threshold) says the loop was busy enough to have delayed the read too: untrusted."""
    clock = ManualClock()

    def handler(request: httpx.Request) -> httpx.Response:
        clock.advance(0.4)
        return httpx.Response(200, json={"results": [1]}, extensions={WAITED: lambda: waited})

    check = search_check()
    async with httpx.AsyncClient(
        base_url="http://api.test", transport=httpx.MockTransport(handler)
    ) as client:
        request = prepare(client, check.render({"tenant": "acme", "query": "shoes"}))
        result = await probe_http(check, "acme", request, client, clock)
    assert result.outcome is Outcome.OK
    assert result.duration_s == pytest.approx(0.4 - waited)
    assert result.latency_trusted is trusted


@pytest.mark.parametrize(
    ("doubt", "guard", "trusted"),
    [(0.001, False, True), (0.006, True, False), (None, False, False), (None, True, True)],
    ids=["read-on-time", "read-after-busy", "untold-guard-late", "untold-guard-on-time"],
)
async def test_an_answer_whose_read_tells_is_trusted_by_its_read_alone(
    doubt: float | None, guard: bool, trusted: bool
) -> None:
    """A transport that says how late the last byte's read may have been stamped (the loop
    timed its polls): under the 5 ms threshold the latency is trusted however long it then
    waited for the probe's task (a burst's answers are judged one after another) and the
    latency guard (the loop-lag monitor over the flight) is not asked; 5 ms or more: withheld.
    A transport that cannot tell leaves it to the wait (short here) and the guard."""
    clock = ManualClock()
    asked: list[tuple[float, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        clock.advance(0.4)
        extensions = {WAITED: lambda: 0.004, READ_DOUBT: lambda: doubt}
        return httpx.Response(200, json={"results": [1]}, extensions=extensions)

    def latency_guard(start: float, end: float) -> bool:
        asked.append((start, end))
        return guard

    check = search_check()
    async with httpx.AsyncClient(
        base_url="http://api.test", transport=httpx.MockTransport(handler)
    ) as client:
        request = prepare(client, check.render({"tenant": "acme", "query": "shoes"}))
        result = await probe_http(check, "acme", request, client, clock, {}, latency_guard)
    assert result.outcome is Outcome.OK
    assert result.duration_s == pytest.approx(0.4 - 0.004)
    assert result.latency_trusted is trusted
    assert len(asked) == (1 if doubt is None else 0)


async def test_request_is_built_from_the_template_with_url_encoded_tenant() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"results": [1]})

    check = search_check()
    async with httpx.AsyncClient(
        base_url="http://api.test", transport=httpx.MockTransport(handler)
    ) as client:
        request = prepare(client, check.render({"tenant": "a b/c", "query": "red shoes"}))
        await probe_http(check, "a b/c", request, client, SystemClock())
    assert seen[0].url.raw_path == b"/v1/a%20b%2Fc/search?q=red+shoes"


async def test_empty_list_is_empty_not_ok() -> None:
    result = await probe(results([]))
    assert result.outcome is Outcome.EMPTY
    assert result.items == 0
    assert result.status == 200
    assert "0 items at $.results, expected at least 1" in result.reason


async def test_null_list_counts_as_empty() -> None:
    result = await probe(lambda r: httpx.Response(200, json={"results": None}))
    assert result.outcome is Outcome.EMPTY


async def test_unexpected_status_is_http_error() -> None:
    result = await probe(lambda r: httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert result.outcome is Outcome.HTTP_ERROR
    assert result.status == 502
    assert result.reason == "unexpected status 502"


async def test_redirect_is_http_error_when_not_followed() -> None:
    result = await probe(lambda r: httpx.Response(302, headers={"location": str(r.url)}))
    assert result.outcome is Outcome.HTTP_ERROR
    assert result.status == 302


async def test_redirect_loop_is_http_error_when_followed() -> None:
    check = checks(
        BASE_CONFIG.replace(
            'params: {q: "{query}"}}', 'params: {q: "{query}"}, follow_redirects: true}'
        )
    )["search"]
    result = await probe(lambda r: httpx.Response(302, headers={"location": str(r.url)}), check)
    assert result.outcome is Outcome.HTTP_ERROR
    assert result.reason == "too many redirects"


@pytest.mark.parametrize(
    "response, reason",
    [
        (
            httpx.Response(200, content=b"{not json", headers={"content-type": "application/json"}),
            "body is not JSON",
        ),
        (
            httpx.Response(
                200, content=b'{"results": [1, 2', headers={"content-type": "application/json"}
            ),
            "body is not JSON",
        ),
        (
            httpx.Response(200, content=b'{"results": [1]}', headers={"content-type": "text/html"}),
            "content type 'text/html'",
        ),
        (httpx.Response(200, json={"results": {"a": 1}}), "no list at $.results"),
        (httpx.Response(200, json={"hits": [1]}), "no list at $.results"),
    ],
)
async def test_bad_bodies_are_invalid_body(response: httpx.Response, reason: str) -> None:
    result = await probe(lambda r: response)
    assert result.outcome is Outcome.INVALID_BODY
    assert reason in result.reason


async def test_body_over_the_cap_is_invalid_body_without_reading_it_all() -> None:
    sent = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"results": ['
        for _ in range(10_000):
            sent += 65536
            yield b"1," * 32768

    check = search_check("    timeout: 5s")
    result = await probe(
        lambda r: httpx.Response(
            200, content=stream(), headers={"content-type": "application/json"}
        ),
        check,
    )
    assert result.outcome is Outcome.INVALID_BODY
    assert result.reason == "body larger than 1048576 bytes"
    assert sent < 2 * 1048576


async def test_declared_length_over_the_cap_is_refused_before_reading() -> None:
    check = checks(
        BASE_CONFIG.replace(
            "min_items: 1}\n    capture", "min_items: 1, max_body_bytes: 10}\n    capture"
        )
    )["search"]
    result = await probe(results([1, 2, 3]), check)
    assert result.outcome is Outcome.INVALID_BODY


@pytest.mark.timing  # cut within 0.7 s of its deadline
async def test_slow_drip_body_hits_the_overall_deadline() -> None:
    async def drip() -> AsyncIterator[bytes]:
        for char in b'{"results": [1]}':
            await asyncio.sleep(0.05)
            yield bytes([char])

    result = await probe(
        lambda r: httpx.Response(200, content=drip(), headers={"content-type": "application/json"})
    )
    assert result.outcome is Outcome.TIMEOUT
    assert result.reason == "no complete response within 0.3s"
    assert 0.3 <= result.duration_s < 1.0


async def test_hang_is_timeout() -> None:
    class Hang(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await asyncio.Event().wait()
            raise AssertionError

    result = await probe(Hang())
    assert result.outcome is Outcome.TIMEOUT


def raising(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


async def test_connection_refused_is_connect_error() -> None:
    result = await probe(raising(httpx.ConnectError("[Errno 111] Connection refused")))
    assert result.outcome is Outcome.CONNECT_ERROR
    assert "Connection refused" in result.reason


async def test_reset_is_connect_error() -> None:
    result = await probe(raising(httpx.ReadError("[Errno 104] Connection reset by peer")))
    assert result.outcome is Outcome.CONNECT_ERROR


async def test_client_timeout_is_timeout() -> None:
    result = await probe(raising(httpx.ReadTimeout("timed out")))
    assert result.outcome is Outcome.TIMEOUT


def tls_failure(code: int, message: str) -> Exception:
    cause = ssl.SSLCertVerificationError(
        1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}"
    )
    cause.verify_code = code
    cause.verify_message = message
    error = httpx.ConnectError("certificate verify failed")
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    "code, message, reason",
    [
        (10, "certificate has expired", "expired"),
        (9, "certificate is not yet valid", "not_yet_valid"),
        (20, "unable to get local issuer certificate", "unknown_issuer"),
        (62, "Hostname mismatch, certificate is not valid for 'api.test'.", "hostname_mismatch"),
    ],
)
async def test_tls_failures_keep_their_reason(code: int, message: str, reason: str) -> None:
    result = await probe(raising(tls_failure(code, message)))
    assert result.outcome is Outcome.TLS_ERROR
    assert result.tls_reason == reason
    assert message in result.reason


async def test_retry_recovers_but_keeps_the_first_outcome() -> None:
    calls = 0

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json={"results": [1]})

    check = search_check("    retry: {attempts: 3, backoff: 10ms}")
    result = await probe(flaky, check)
    assert result.outcome is Outcome.OK
    assert result.attempts == 2
    assert result.first_outcome is Outcome.CONNECT_ERROR


async def test_retry_gives_up_with_the_last_outcome() -> None:
    check = search_check("    retry: {attempts: 3, backoff: 1ms}")
    result = await probe(raising(httpx.ConnectError("refused")), check)
    assert result.outcome is Outcome.CONNECT_ERROR
    assert result.attempts == 3
    assert result.first_outcome is Outcome.CONNECT_ERROR


async def test_outcomes_not_listed_are_not_retried() -> None:
    calls = 0

    def empty(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, json={"results": []})

    result = await probe(empty, search_check("    retry: {attempts: 3, backoff: 1ms}"))
    assert result.outcome is Outcome.EMPTY
    assert calls == 1
    assert result.first_outcome is None


async def test_json_body_and_headers_are_rendered() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"results": [1]})

    text = BASE_CONFIG.replace(
        'request: {path: "/v1/{tenant}/search", params: {q: "{query}"}}',
        'request: {method: post, path: "/v1/search", headers: {X-Tenant: "{tenant}"}, '
        'json: {tenant: "{tenant}", q: ["{query}"], n: 3}}',
    )
    await probe(handler, checks(text)["search"])
    assert seen[0].method == "POST"
    assert seen[0].headers["x-tenant"] == "acme"
    assert json.loads(seen[0].content) == {"tenant": "acme", "q": ["shoes"], "n": 3}


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_are_auth_error_not_http_error(status: int) -> None:
    result = await probe(lambda r: httpx.Response(status, json={"error": "invalid key"}))
    assert result.outcome is Outcome.AUTH_ERROR
    assert result.status == status
    assert result.credential == "none"
    assert result.reason == f"status {status}: refused, and the request carried no credentials"


async def test_an_expected_401_is_ok() -> None:
    expecting = replace(search_check(), expected_status=frozenset({401}), items=None, captures=())
    result = await probe(lambda r: httpx.Response(401, text="no"), expecting)
    assert result.outcome is Outcome.OK
    assert result.credential == ""


def test_prepared_requests_share_their_headers_and_send_the_same_as_uncached_ones() -> None:
    client = httpx.AsyncClient(base_url="http://api.test", headers={"user-agent": "recmon/t"})
    first, second = (
        RenderedRequest("GET", f"/v1/{tenant}/search", (("q", "shoes"),), (), None)
        for tenant in ("acme", "globex")
    )
    one, two = prepared(client, first), prepared(client, second)
    assert prepared(client, first) is one  # prepared once
    assert one.headers is two.headers  # one Headers for the target's requests
    assert one.origin is two.origin  # the target's URL parts, not a copy per request
    assert one.path is first.path  # the rendered path's string, not a copy
    assert one.headers.raw == _build(client, first).headers.raw
    assert str(one.request().url) == "http://api.test/v1/acme/search?q=shoes"
    assert str(two.request().url) == "http://api.test/v1/globex/search?q=shoes"
    own = RenderedRequest("GET", "/v1/acme/search", (), (("x-tenant-key", "k1"),), None)
    other = replace(own, headers=(("x-tenant-key", "k2"),))
    assert prepared(client, own).request().headers["x-tenant-key"] == "k1"
    assert prepared(client, other).request().headers["x-tenant-key"] == "k2"


@pytest.mark.parametrize(
    "client_read, sent_read", [(5.0, None), (0.3, None), (None, None), (0.1, 0.1)]
)
async def test_the_probe_deadline_stands_for_a_read_timeout_no_shorter(
    client_read: float | None, sent_read: float | None
) -> None:
    # The probe is held to its 0.3 s deadline from before the request goes out: a client read
    # timeout no shorter could never end it first, so the transport arms no timer for it. A
    # shorter one still goes to the transport.
    seen: list[dict[str, float | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.extensions["timeout"]))
        return httpx.Response(200, json={"results": [1]})

    check = search_check()
    timeout = httpx.Timeout(2.0, read=client_read)
    async with httpx.AsyncClient(
        base_url="http://api.test", transport=httpx.MockTransport(handler), timeout=timeout
    ) as client:
        request = prepare(client, check.render({"tenant": "acme", "query": "shoes"}))
        result = await probe_http(check, "acme", request, client, SystemClock())
    assert result.outcome is Outcome.OK
    assert seen == [{"connect": 2.0, "read": sent_read, "write": 2.0, "pool": 2.0}]


@pytest.mark.parametrize(
    ("base_url", "rendered"),
    [
        ("http://api.test", RenderedRequest("GET", "/v1/a%2Fb/s", (("q", "x y&z"),), (), None)),
        ("https://user:pw@API.test:8443/base/", RenderedRequest("HEAD", "/", (), (), None)),
        ("http://[::1]:9000", RenderedRequest("DELETE", "/v1/ü", (), (("X-Key", "v"),), None)),
        ("http://api.test:80", RenderedRequest("GET", "/p", (("a", ""), ("b", "1")), (), None)),
    ],
)
def test_prepared_requests_are_the_requests_httpx_builds(
    base_url: str, rendered: RenderedRequest
) -> None:
    """PreparedRequest.request() sets httpx's internals directly: it must build what httpx
    itself builds, field for field (an httpx upgrade that changes them fails here)."""
    client = httpx.AsyncClient(base_url=base_url, headers={"user-agent": "recmon/t"}, timeout=7)
    made, built = prepared(client, rendered).request(), _build(client, rendered)
    assert (made.method, str(made.url), made.url.raw_path) == (
        built.method,
        str(built.url),
        built.url.raw_path,
    )
    assert (made.url.scheme, made.url.host, made.url.port, made.url.netloc) == (
        built.url.scheme,
        built.url.host,
        built.url.port,
        built.url.netloc,
    )
    assert made.url == built.url
    assert made.headers.raw == built.headers.raw
    assert made.content == built.content == b""
    assert made.extensions == built.extensions == {}
    assert made is not prepared(client, rendered).request()  # one per probe
    for method in (rendered.method, "POST"):  # redirects: a request of its own, no body
        plain = replace(rendered, method=method)
        made, built = prepared(client, plain).with_body(client), _build(client, plain)
        assert (made.url, made.headers.raw, made.content) == (built.url, built.headers.raw, b"")
        assert made.headers is not prepared(client, plain).headers
    with_json = replace(rendered, method="POST", json_body={"q": [rendered.path], "n": 3})
    for kept in (prepared(client, with_json), prepare(client, with_json)):
        made, built = kept.with_body(client), _build(client, with_json)
        assert (made.method, made.url, made.headers.raw) == (
            built.method,
            built.url,
            built.headers.raw,
        )
        assert made.content == built.content
        assert made.headers is not kept.headers  # its own: client.send adds to it
        assert kept.what_asked() == http.asked(with_json)  # the body is part of what is asked
    # An OAuth2 target's token: added to the prepared request as httpx adds it to the rendered
    for plain, token in ((rendered, "t0k"), (with_json, "t1k")):
        bearer = replace(plain, headers=(*plain.headers, ("authorization", f"Bearer {token}")))
        kept = prepare(client, plain).with_bearer(token)
        made = kept.request() if kept.rendered is None else kept.with_body(client)
        built = _build(client, bearer)
        assert (made.url, made.headers.raw, made.content) == (
            built.url,
            built.headers.raw,
            built.content,
        )
        assert prepare(client, plain).headers.get("authorization") is None  # not the kept one's


async def test_a_prepared_request_goes_through_the_client_transport_as_built() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"results": [{"id": "1"}]})

    result = await probe(handler)
    assert result.outcome is Outcome.OK
    assert seen[0].url.raw_path.startswith(b"/v1/acme/search")
    assert seen[0].headers["host"] == "api.test"
    assert await seen[0].aread() == b""


def test_prepared_requests_are_bounded_and_go_with_their_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http, "PREPARED_PER_CLIENT", 2)
    gc.collect()  # earlier tests' clients
    client = httpx.AsyncClient(base_url="http://api.test")
    asked = [RenderedRequest("GET", f"/v1/t{n}/search", (), (), None) for n in range(3)]
    for request in asked:
        prepared(client, request)
    assert len(http._PREPARED[client]) == 1  # full at 2: cleared, then the third kept
    assert prepared(client, asked[2]) is prepared(client, asked[2])
    clients = len(http._PREPARED)
    del client
    gc.collect()
    assert len(http._PREPARED) == clients - 1  # a reload's old clients take theirs along


@pytest.mark.parametrize(
    "raw",
    [
        [],
        [(b"Content-Type", b"application/json; charset=utf-8"), (b"Content-Length", b"12")],
        [(b"content-encoding", b"gzip"), (b"X-Other", b"1"), (b"CONTENT-ENCODING", b"br")],
        [(b"Content-Length", b"5"), (b"content-length", b"5")],
        [(b"Content-Type", "text/plain; name=\u00e9t\u00e9".encode())],
        [(b"Content-Type", b"text/x-\xe9"), (b"Content-Encoding", b"identity")],
    ],
)
def test_read_head_gives_the_values_httpx_headers_give(raw: list[tuple[bytes, bytes]]) -> None:
    response = httpx.Response(200, headers=raw)
    fault, values = http.read_head(response)
    assert fault is None
    assert values == tuple(
        response.headers.get(name)
        for name in ("content-length", "content-encoding", "content-type")
    )


def test_read_head_refuses_a_length_with_chunking_and_an_oversized_head() -> None:
    split = httpx.Response(
        200, headers=[(b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"3")]
    )
    assert http.read_head(split) == (
        "invalid HTTP response: Content-Length can't be present with Transfer-Encoding",
        (None, None, None),
    )
    chunked = httpx.Response(200, headers=[(b"Transfer-Encoding", b"chunked")])
    assert http.read_head(chunked) == (None, (None, None, None))
    huge = httpx.Response(200, headers=[(b"X-Big", b"a" * 70_000), (b"Content-Length", b"3")])
    assert http.read_head(huge)[0] == f"response head larger than {http.MAX_HEAD_BYTES} bytes"


HEAD_NAMES = st.sampled_from(
    [b"content-length", b"content-encoding", b"content-type", b"transfer-encoding", b"x-a"]
)
HEAD_VALUES = st.one_of(
    st.sampled_from([b"12", b"gzip", b"application/json", b"chunked", b"t\xc3\xa9", b"\xe9"]),
    st.binary(max_size=4),
    st.integers(0, 9_000).map(lambda n: b"a" * n),  # past MAX_HEAD_BYTES, or right at it
)


@given(
    st.lists(st.tuples(HEAD_NAMES, HEAD_VALUES), max_size=5),
    st.sampled_from([b"", b"OK", b"x" * 200]),
)
def test_read_answer_head_reads_a_parsed_head_as_read_raw_head(
    headers: list[tuple[bytes, bytes]], reason: bytes
) -> None:
    """Names repeated or not, chunked, values not ASCII, heads around the size limit."""
    head = Head(200, reason, tuple(headers), True)
    assert http.read_answer_head(head) == http.read_raw_head(head.headers, reason)
