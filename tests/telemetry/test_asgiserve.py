"""The listener recmon and the sandbox serve HTTP on."""

from __future__ import annotations

import asyncio
import socket

from monitor.telemetry.asgiserve import listen


async def test_accepted_connections_send_without_waiting_for_acks() -> None:
    """TCP_NODELAY on every accepted connection: without it a response written as head, then
    body, waits for the client's delayed ACK (40 ms on Linux) before its body leaves."""
    nodelay: list[int] = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    listener = listen("127.0.0.1", 0)
    server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.getsockname()[1])
        await reader.read()
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert nodelay and nodelay[0] != 0


async def test_served_until_the_block_exits_without_waiting_for_a_tick() -> None:
    """The server's main loop wakes once a second, and at once when told to exit: leaving the
    block does not wait for the next tick. Its answers carry a Date header (refreshed by the
    tick)."""
    import time

    import httpx

    from monitor.telemetry.asgiserve import serve_asgi

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async with serve_asgi(app, "127.0.0.1", 0) as served:
        async with httpx.AsyncClient() as client:
            response = await client.get(served.url + "/")
        assert response.text == "ok"
        assert "date" in response.headers
        await asyncio.sleep(0.05)  # the main loop is waiting for its next tick
        left = time.monotonic()
    assert time.monotonic() - left < 0.5
