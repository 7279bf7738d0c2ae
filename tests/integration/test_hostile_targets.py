"""Targets at their worst: resets, 50 MB bodies, redirect loops, hangs next to healthy
tenants. Each ends in its outcome within the deadline, memory stays bounded, and the
scheduler keeps everyone else on time."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import CollectorRegistry

from monitor.app.assembly import build_monitor
from monitor.app.service import Monitor
from monitor.config.loader import load_config_text
from monitor.core.clock import SystemClock
from monitor.core.results import Outcome, ProbeResult
from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture(params=["httpx", "aiohttp", "asyncio"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sandbox_tenants() -> int:
    return 10


def monitor_for(
    url: str, transport: str, extra: str = "", *, interval: float = 60, timeout: float = 1
) -> Monitor:
    text = (
        sandbox_config(url, interval=interval, timeout=timeout)
        + f"\nengine: {{transport: {transport}}}\n"
        + extra
    )
    return build_monitor(
        load_config_text(text, source="<test>"), clock=SystemClock(), registry=CollectorRegistry()
    )


async def one_round(monitor: Monitor) -> dict[tuple[str, str], ProbeResult]:
    try:
        return {(r.tenant, r.check): r for r in await monitor.probe_round()}
    finally:
        await monitor.aclose()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def raw_target_monitor(
    url: str, transport: str, *, probe_timeout: float = 2, target: str = ""
) -> Monitor:
    """The sandbox's checks for one static tenant (acme) of the target at `url`; `target`
    adds keys to the target (YAML lines, indented by four)."""
    base = sandbox_config(url, timeout=probe_timeout).replace(
        "    rate_limit: 200/s\n", "    rate_limit: 200/s\n" + target
    )
    text = (
        re.sub(r"discover: \{.*\}", "static: [acme]", base)
        + f"\nengine: {{transport: {transport}}}\n"
    )
    return build_monitor(
        load_config_text(text, source="<test>"), clock=SystemClock(), registry=CollectorRegistry()
    )


async def probe_raw_target(
    handler: Handler, transport: str, *, probe_timeout: float = 2, host: str | None = None
) -> ProbeResult:
    """One search probe against a hand-written TCP server that misbehaves as `handler` says."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monitor = raw_target_monitor(
        f"http://{host or '127.0.0.1'}:{port}", transport, probe_timeout=probe_timeout
    )
    try:
        results = await monitor.probe_round()
        internal_errors = monitor.registry.get_sample_value(
            "recmon_internal_errors_total", {"component": "engine"}
        )
    finally:
        await monitor.aclose()
        server.close()
    assert not internal_errors  # the target's doing is an outcome, never a recmon bug
    (search,) = [r for r in results if r.check == "search"]
    return search


async def test_connection_reset_is_connect_error(transport: str) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )  # RST on close
        writer.transport.abort()

    search = await probe_raw_target(reset, transport)
    assert search.outcome is Outcome.CONNECT_ERROR
    assert search.duration_s < 2


def replying(raw: bytes) -> Handler:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(raw)
        await writer.drain()
        writer.close()

    return reply


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Huge: " + b"a" * 20_000 + b"\r\nContent-Length: 2\r\n\r\n[]",
        b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"results": [',
    ],
    ids=["garbage-status-line", "oversized-header", "truncated-body"],
)
async def test_malformed_http_is_an_outcome_not_a_crash(transport: str, raw: bytes) -> None:
    search = await probe_raw_target(replying(raw), transport)
    assert search.outcome in {Outcome.CONNECT_ERROR, Outcome.INVALID_BODY}, search
    assert search.reason and "127.0.0.1" not in search.reason  # no URL (nor its query) echoed


async def test_unresolvable_host_is_connect_error(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name fails inside this process's resolver: no query ever leaves the machine.
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host == "no-such-host.test":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    async def never_called(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise AssertionError("nothing should connect")

    search = await probe_raw_target(never_called, transport, host="no-such-host.test")
    assert search.outcome is Outcome.CONNECT_ERROR
    assert "name" in search.reason.lower() or "resolve" in search.reason.lower(), search.reason


async def test_endless_chunked_body_is_cut_at_the_cap_with_bounded_memory(transport: str) -> None:
    """No Content-Length to refuse on: the cap must hold while the body streams in."""
    chunk = b"x" * 65536
    sent = 0

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            while sent < 50_000_000:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # the client hung up at its cap: what we want
        finally:
            writer.close()

    tracemalloc.start()
    try:
        search = await probe_raw_target(endless, transport, probe_timeout=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert search.outcome is Outcome.INVALID_BODY and "larger than" in search.reason
    assert sent < 20_000_000  # the client stopped reading: the 50 MB were never pulled in
    assert peak < 16 * 1024 * 1024


def gzipped(body: bytes) -> bytes:
    squeezer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return squeezer.compress(body) + squeezer.flush()


async def test_a_gzip_bomb_is_cut_at_the_cap_with_bounded_memory(transport: str) -> None:
    """48 KB on the wire, 50 MB inflated: refused after 1 MiB of inflating, never held."""
    bomb = gzipped(b"\0" * 50_000_000)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
    raw = head + b"Content-Length: %d\r\n\r\n" % len(bomb) + bomb
    tracemalloc.start()
    try:
        search = await probe_raw_target(replying(raw), transport, probe_timeout=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(bomb) < 100_000
    assert search.outcome is Outcome.INVALID_BODY and "larger than" in search.reason
    assert peak < 8 * 1024 * 1024


async def test_a_gzipped_answer_is_read_like_any_other(transport: str) -> None:
    body = gzipped(json.dumps({"results": [{"id": "p1"}, {"id": "p2"}]}).encode())
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
    raw = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    search = await probe_raw_target(replying(raw), transport)
    assert (search.outcome, search.items) == (Outcome.OK, 2)


async def test_fifty_megabyte_body_is_refused_with_bounded_memory(
    sandbox: Sandbox, transport: str
) -> None:
    sandbox.faults.set("tenant-001", "search", Fault(huge_body_bytes=50_000_000))
    monitor = monitor_for(sandbox.url, transport, timeout=5)
    tracemalloc.start()
    try:
        results = await one_round(monitor)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    result = results[("tenant-001", "search")]
    assert result.outcome is Outcome.INVALID_BODY and "larger than 1048576" in result.reason
    assert peak < 16 * 1024 * 1024  # the cap (1 MiB) plus the round, never the 50 MB


@pytest.mark.parametrize("follow", [False, True], ids=["not-followed", "followed"])
async def test_redirect_loop_is_http_error(sandbox: Sandbox, transport: str, follow: bool) -> None:
    sandbox.faults.set("tenant-001", "search", Fault(redirect_loop=True))
    monitor = monitor_for(sandbox.url, transport)
    if follow:
        text = (
            sandbox_config(sandbox.url, timeout=5).replace(
                'params: {q: "{query}"}}', 'params: {q: "{query}"}, follow_redirects: true}'
            )
            + f"\nengine: {{transport: {transport}}}\n"
        )
        await monitor.aclose()
        monitor = build_monitor(
            load_config_text(text, source="<test>"),
            clock=SystemClock(),
            registry=CollectorRegistry(),
        )
    result = (await one_round(monitor))[("tenant-001", "search")]
    assert result.outcome is Outcome.HTTP_ERROR
    assert result.reason == ("too many redirects" if follow else "unexpected status 302")


@pytest.mark.timing  # asserts on schedule lag
@pytest.mark.alone
async def test_hanging_tenants_never_stall_the_others(sandbox: Sandbox, transport: str) -> None:
    hung = [f"tenant-00{i}" for i in range(1, 6)]
    for tenant in hung:
        sandbox.faults.set(tenant, "search", Fault(hang=True))
    monitor = monitor_for(sandbox.url, transport, interval=0.5, timeout=1.5)
    results: list[ProbeResult] = []
    monitor.result_listeners.append(results.append)
    stop = asyncio.Event()
    task = asyncio.create_task(monitor.run(stop))
    await asyncio.sleep(4)
    stop.set()
    await task
    registry = monitor.registry
    on_time = registry.get_sample_value("recmon_schedule_lag_seconds_bucket", {"le": "0.1"}) or 0
    within_half = (
        registry.get_sample_value("recmon_schedule_lag_seconds_bucket", {"le": "0.5"}) or 0
    )
    launched = registry.get_sample_value("recmon_schedule_lag_seconds_count") or 0
    await monitor.aclose()
    healthy = Counter(r.tenant for r in results if r.check == "search" and r.tenant not in hung)
    assert len(healthy) == 5 and min(healthy.values()) >= 5  # every half second, unbothered
    timeouts = [r for r in results if r.tenant in hung]
    assert timeouts and all(r.outcome is Outcome.TIMEOUT and r.duration_s < 2.5 for r in timeouts)
    # Started at their slot: nearly all within 100 ms, all within half an interval (shared CI
    # machines have hiccups; a stalled scheduler would miss whole intervals).
    assert launched > 40 and on_time / launched >= 0.9 and within_half == launched
