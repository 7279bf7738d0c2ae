"""/metrics, /healthz, /readyz, /status and the status page for `recmon run`, as a small ASGI
app. What it shows comes from callables (the current generation's parts); everything but
/metrics passes through the redactor before it leaves."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote

from prometheus_client import CONTENT_TYPE_LATEST

from monitor.app.status import page
from monitor.app.status.model import Snapshot, iso, status_document

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

HTML = b"text/html; charset=utf-8"
JSON = b"application/json"
_PAGE_HEADERS = [
    (b"content-security-policy", page.CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
SVG = b"image/svg+xml; charset=utf-8"
# An image others embed: cached a while, and inert if opened on its own.
_BADGE_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"max-age=300"),
]
NOT_FOUND = b"not found: try /, /status, /metrics, /healthz, /readyz\n"


class MonitorApi:
    def __init__(
        self,
        *,
        render_metrics: Callable[[], bytes],
        is_alive: Callable[[], bool],
        readiness: Callable[[], tuple[bool, str]],
        snapshot: Callable[[], Snapshot],
        redact: Callable[[str], str] = lambda text: text,
        badge: Callable[[str, str], str | None] | None = None,
        history_bars: Callable[[str], Mapping[str, Sequence[Any]]] | None = None,
        past_incidents: Callable[[], Sequence[Any]] | None = None,
    ) -> None:
        """`badge`: a tenant × check's SVG badge, None when it has no history.
        `history_bars`: a tenant's daily availability bars per check (its page).
        `past_incidents`: the history's recent incidents (the index page, on load)."""
        self.past_incidents = past_incidents
        self.badge = badge
        self.history_bars = history_bars
        self.render_metrics = render_metrics
        self.is_alive = is_alive
        self.readiness = readiness
        self.snapshot = snapshot
        self.redact = redact

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n")
        elif path == "/metrics":
            await self._metrics(scope, send)
        elif path == "/healthz":
            alive = self.is_alive()
            await _respond(send, 200 if alive else 503, b"ok\n" if alive else b"stalled\n")
        elif path == "/readyz":
            ready, text = self.readiness()
            await _respond(send, 200 if ready else 503, self._text(text))
        elif path == "/status":
            known = self.snapshot()
            body = await asyncio.to_thread(
                lambda: json.dumps(status_document(known), indent=2, default=str) + "\n"
            )
            await self._page(scope, send, 200, body, content_type=JSON)
        elif path == "/":
            known, q, n = self.snapshot(), _one(query, "q"), _page(query)
            # Off the event loop: at 10,000 tenants a page takes ~30 ms to build (bench/).
            past = self.past_incidents
            html = await asyncio.to_thread(
                lambda: page.render_index(known, q, n, past() if past is not None else ())
            )
            await self._page(scope, send, 200, html)
        elif path == "/ui/live":
            known, q, n = self.snapshot(), _one(query, "q"), _page(query)
            live = await asyncio.to_thread(page.render_live, known, q, n)
            await self._page(scope, send, 200, json.dumps(live), content_type=JSON)
        elif path.startswith(("/tenants/", "/ui/tenant/")):
            fragment = path.startswith("/ui/")
            tenant = unquote(path.split("/", 3 if fragment else 2)[-1])
            known = self.snapshot()
            bars = None
            if not fragment and self.history_bars is not None:
                bars = await asyncio.to_thread(self.history_bars, tenant)
            detail = page.render_tenant(known, tenant, fragment=fragment, bars=bars)
            if detail is None:
                await _respond(send, 404, self._text(f"no tenant {tenant!r} is monitored\n"))
            elif fragment:
                live = {"generated": iso(known.now), "html": {"tenant": detail}}
                await self._page(scope, send, 200, json.dumps(live), content_type=JSON)
            else:
                await self._page(scope, send, 200, detail)
        elif path.startswith("/static/") and (
            asset := page.static_file(path.removeprefix("/static/"))
        ):
            content_type = page.STATIC[path.removeprefix("/static/")].encode()
            await _respond(send, 200, asset, content_type=content_type, extra=_PAGE_HEADERS)
        elif path.startswith("/badge/") and path.endswith(".svg") and self.badge is not None:
            await self._badge(send, path)
        elif path == "/favicon.ico":
            await _respond(send, 204, b"")
        else:
            await _respond(send, 404, NOT_FOUND)

    async def _badge(self, send: Send, path: str) -> None:
        parts = path.removeprefix("/badge/").removesuffix(".svg").split("/")
        if len(parts) != 2 or not all(parts):
            await _respond(send, 404, b"not found: /badge/<tenant>/<check>.svg\n")
            return
        tenant, check = (unquote(p) for p in parts)
        badge = self.badge
        assert badge is not None
        svg = await asyncio.to_thread(badge, tenant, check)
        if svg is None:
            text = f"no history for tenant {tenant!r}, check {check!r}\n"
            await _respond(send, 404, self._text(text))
            return
        await _respond(send, 200, self._text(svg), content_type=SVG, extra=_BADGE_HEADERS)

    def _text(self, text: str) -> bytes:
        return self.redact(text).encode()

    async def _page(
        self, scope: Scope, send: Send, status: int, text: str, content_type: bytes = HTML
    ) -> None:
        """A page or document: redacted, and compressed for a client that takes gzip (the
        grid's refresh repeats much: 91 KiB → 4 KiB at 10,000 tenants)."""
        body = self._text(text)
        extra = list(_PAGE_HEADERS)
        if _accepts_gzip(scope):
            body = gzip.compress(body, compresslevel=1)
            extra.append((b"content-encoding", b"gzip"))
        await _respond(send, status, body, content_type=content_type, extra=extra)

    async def _metrics(self, scope: Scope, send: Send) -> None:
        wants_gzip = _accepts_gzip(scope)
        # Rendering thousands of series takes a while; do it off the event loop so probes
        # scheduled meanwhile start on time.
        body = await asyncio.to_thread(self._render, wants_gzip)
        extra = [(b"content-encoding", b"gzip")] if wants_gzip else []
        await _respond(send, 200, body, content_type=CONTENT_TYPE_LATEST.encode(), extra=extra)

    def _render(self, compress: bool) -> bytes:
        body = self.render_metrics()
        return gzip.compress(body, compresslevel=1) if compress else body


def _accepts_gzip(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    return b"gzip" in headers.get(b"accept-encoding", b"")


def _one(query: dict[str, list[str]], name: str) -> str:
    return (query.get(name) or [""])[0][:200]


def _page(query: dict[str, list[str]]) -> int:
    value = _one(query, "page")
    return int(value) if value.isdigit() and len(value) < 7 else 1


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
