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
