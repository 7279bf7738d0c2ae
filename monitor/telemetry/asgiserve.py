"""Serving an ASGI app with uvicorn inside an already running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from typing import Any

import uvicorn

log = logging.getLogger("recmon.http")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn's server as recmon runs it: its main loop wakes once a second (uvicorn's wakes
    ten times a second to look at `should_exit`: at 10,000 tenants every 60 s that was one
    wake-up in fifty of an otherwise idle process) and at once when told to exit."""

    def __init__(self, config: uvicorn.Config) -> None:
        self._exit = asyncio.Event()
        super().__init__(config)

    @property
    def should_exit(self) -> bool:
        return self._exit.is_set()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value:
            self._exit.set()
        else:
            self._exit.clear()

    async def main_loop(self) -> None:
        # uvicorn's on_tick refreshes the Date header when its counter is a multiple of ten.
        counter = 0
        while not await self.on_tick(counter):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), timeout=1.0)
            counter = (counter + 10) % 864000

    # The host program owns signals; uvicorn must neither catch nor re-raise them.
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass(frozen=True, slots=True)
class Served:
    host: str
    port: int
    scheme: str

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def listen(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """A listening socket, or an OSError whose message is one line a person reads.

    Bound here, not by uvicorn: its bind failure is a sys.exit(3) from inside a task, which
    tore through asyncio.run as a 30-line traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Protocol IPPROTO_TCP, not socket.create_server's 0: asyncio sets TCP_NODELAY only on
    # sockets that say they are TCP, and without it a response written as head then body
    # waits for the client's delayed ACK (+40 ms on every sandbox answer in bench/).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        return sock
    except OSError as exc:
        sock.close()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {reason}") from None


@contextlib.asynccontextmanager
async def serve_asgi(
    app: Any,
    host: str,
    port: int,
    *,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    backlog: int = 2048,
    sock: socket.socket | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Served]:
    """Serve until the block exits. Port 0 binds an ephemeral port; the bound one is returned.
    `sock`, from listen(), lets a caller claim the port before it starts anything else.
    `ssl_context`: TLS as built by the caller (uvicorn's own options cannot set a minimum
    version or an optional client certificate)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        # Nothing recmon serves is a websocket: uvicorn's default ("auto") imports a
        # websocket library at every start (wsproto here, ~20-40 ms of CPU).
        ws="none",
        backlog=backlog,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        ssl_version=ssl.PROTOCOL_TLS_SERVER,
        timeout_graceful_shutdown=1,
    )
    if ssl_context is not None:
        config.load()
        config.ssl = ssl_context
    listener = sock or listen(host, port, backlog=backlog)
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[listener]), name=f"http:{host}:{port}")
    while not server.started:
        if task.done():
            exc = task.exception() if not task.cancelled() else None
            raise OSError(f"cannot serve on {host}:{port}: {exc or 'server stopped'}")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield Served(host, bound[1], "https" if ssl_certfile or ssl_context else "http")
    finally:
        server.should_exit = True
        await task
        listener.close()
