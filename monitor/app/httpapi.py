"""/metrics, /healthz, /readyz and /status for `recmon run`, as a small ASGI app."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class MonitorApi:
    def __init__(
        self,
        *,
        render_metrics: Callable[[], bytes],
        is_alive: Callable[[], bool],
        is_ready: Callable[[], bool],
        status: Callable[[], dict[str, Any]],
    ) -> None:
        self.render_metrics = render_metrics
        self.is_alive = is_alive
        self.is_ready = is_ready
        self.status = status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n")
        elif path == "/metrics":
            await self._metrics(scope, send)
        elif path == "/healthz":
            alive = self.is_alive()
            await _respond(send, 200 if alive else 503, b"ok\n" if alive else b"stalled\n")
        elif path == "/readyz":
            ready = self.is_ready()
            await _respond(send, 200 if ready else 503, b"ready\n" if ready else b"not ready\n")
        elif path == "/status":
            body = json.dumps(self.status(), indent=2, default=str).encode() + b"\n"
            await _respond(send, 200, body, content_type=b"application/json")
        else:
            await _respond(send, 404, b"not found: try /metrics, /healthz, /readyz, /status\n")

    async def _metrics(self, scope: Scope, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        wants_gzip = b"gzip" in headers.get(b"accept-encoding", b"")
        # Rendering thousands of series takes a while; do it off the event loop so probes
        # scheduled meanwhile start on time.
        body = await asyncio.to_thread(self._render, wants_gzip)
        extra = [(b"content-encoding", b"gzip")] if wants_gzip else []
        await _respond(send, 200, body, content_type=CONTENT_TYPE_LATEST.encode(), extra=extra)

    def _render(self, compress: bool) -> bytes:
        body = self.render_metrics()
        return gzip.compress(body, compresslevel=1) if compress else body


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"text/plain; charset=utf-8",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})
