"""Real TLS servers on several loopback addresses answering for one name (a host behind a
load balancer), for the certificate tests."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from monitor.core.clock import SystemClock
from monitor.tls.prober import probe_host, verifying_context
from tests.binaries import free_port
from tests.tlscerts import CertificateAuthority, Issued

HOST = "api.recmon.test"


class Backends:
    """One TLS server per loopback address; certificates can be swapped (a rotation)."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.port = free_port(tuple(addresses))
        self.servers: dict[str, asyncio.Server] = {}
        self.sni_seen: list[str | None] = []

    async def serve(self, address: str, issued: Issued) -> None:
        await self.stop(address)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(issued.cert_pem, issued.key_pem)

        def only_for_the_host(_: object, server_name: str | None, __: object) -> int | None:
            # Like a real virtual-hosting backend: no certificate without the right SNI.
            self.sni_seen.append(server_name)
            return None if server_name == HOST else ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME

        context.sni_callback = only_for_the_host  # type: ignore[assignment]

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        self.servers[address] = await asyncio.start_server(answer, address, self.port, ssl=context)

    async def serve_plain(self, address: str) -> None:
        """Accepts TCP, never speaks TLS."""
        await self.stop(address)

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()

        self.servers[address] = await asyncio.start_server(silent, address, self.port)

    async def stop(self, address: str) -> None:
        server = self.servers.pop(address, None)
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1)

    async def probe(self, ca: CertificateAuthority) -> dict[str, object]:
        results = await probe_host(
            HOST,
            self.port,
            addresses=self.addresses,
            deadline_s=1.0,
            clock=SystemClock(),
            trust=verifying_context(str(ca.pem)),
        )
        return {r.address: r for r in results}
