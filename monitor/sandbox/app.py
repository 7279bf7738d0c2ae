"""The sandbox as a raw ASGI app: no framework, so it keeps up with thousands of probes/s."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from monitor.sandbox.auth import SandboxAuth
from monitor.sandbox.catalog import Catalog, tenant_ids
from monitor.sandbox.faults import Fault, FaultError, FaultTable, fault_from_json
from monitor.sandbox.stats import ServerStats

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
CHECKS = ("search", "recommendations")
DRIP_CHUNK = 4
STREAM_CHUNK = 64 * 1024
MAX_ADMIN_BODY = 64 * 1024
MAX_NOTIFICATIONS = 100
MAX_NOTIFICATION_BODY = 4 * 1024 * 1024  # a webhook of a few thousand alerts


@dataclass
class SandboxSettings:
    tenants: int = 20
    products: int = 20
    latency_ms: dict[str, float] = field(
        default_factory=lambda: {"search": 40.0, "recommendations": 60.0}
    )
    jitter: float = 0.1  # lognormal sigma of the simulated latency
    seed: int = 1
    token: str | None = None  # when set, /v1 requests need "Authorization: Bearer <token>"
    # tenant → API key: each tenant's requests need "X-Api-Key: <its key>".
    tenant_keys: dict[str, str] | None = None
    # (client id, secret): /oauth2/token issues tokens for it and /v1 requests need one.
    oauth2_client: tuple[str, str] | None = None
    token_lifetime: float = 3600.0
    token_delay_ms: float = 0.0  # how long the token endpoint takes to answer
    # Recommendations move on by one item this often (a model refreshing); 0: never.
    refresh_s: float = 0.0


class SandboxApp:
    def __init__(
        self,
        settings: SandboxSettings,
        faults: FaultTable | None = None,
        stats: ServerStats | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = Catalog(tenant_ids(settings.tenants), settings.products)
        self.faults = faults or FaultTable()
        self.stats = stats or ServerStats()
        self.random = random.Random(settings.seed)
        self._auth = f"Bearer {settings.token}".encode() if settings.token else None
        self.auth = SandboxAuth(
            keys=dict(settings.tenant_keys) if settings.tenant_keys is not None else None,
            client=settings.oauth2_client,
            token_lifetime=settings.token_lifetime,
        )
        # What a webhook (Alertmanager's, in the deployment quickstart) posted here, newest
        # last: a pager to look at without an account anywhere.
        self.notifications: deque[dict[str, Any]] = deque(maxlen=MAX_NOTIFICATIONS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        path: str = scope["path"]
        if path.startswith("/v1/"):
            await self._api(scope, receive, send, path, started)
        elif path == "/oauth2/token" and scope["method"] == "POST":
            await asyncio.sleep(self.settings.token_delay_ms / 1000)
            status, answer = self.auth.issue(_headers(scope), await _read_body(receive))
            await _respond_json(send, status, answer)
        elif path == "/_admin/auth":
            await self._admin_auth(scope, receive, send)
        elif path == "/healthz":
            await _respond(send, 200, b"ok\n", b"text/plain")
        elif path == "/_admin/faults":
            await self._admin_faults(scope, receive, send)
        elif path == "/_admin/notifications":
            await self._admin_notifications(scope, receive, send)
        elif path == "/_admin/stats":
            if scope["method"] == "DELETE":
                self.stats.reset()
            await _respond_json(send, 200, self.stats.snapshot())
        else:
            await _respond_json(send, 404, {"error": "not found"})

    # --- the API ------------------------------------------------------------------------------

    async def _api(
        self, scope: Scope, receive: Receive, send: Send, path: str, started: float
    ) -> None:
        if self._auth is not None and _header(scope, b"authorization") != self._auth:
            await _respond_json(send, 401, {"error": "missing or wrong bearer token"})
            return
        parts = path.split("/")  # ["", "v1", tenant, check]
        if self.auth.keys is not None or self.auth.client is not None:
            tenant_part = unquote(parts[2]) if len(parts) == 4 else ""
            refusal = self.auth.check(tenant_part, _headers(scope))
            if refusal is not None:
                await _respond(
                    send,
                    refusal.status,
                    json.dumps(refusal.body).encode(),
                    JSON,
                    list(refusal.headers),
                )
                return
        if path == "/v1/tenants":
            await _respond(send, 200, self.catalog.tenant_list_body, JSON)
            return
        if len(parts) != 4 or parts[3] not in CHECKS:
            await _respond_json(send, 404, {"error": "not found"})
            return
        tenant, check = unquote(parts[2]), parts[3]
        if not self.catalog.has(tenant):
            await _respond_json(send, 404, {"error": "unknown tenant"})
            return
        location = _header(scope, LOCATION_HEADER)
        fault = self.faults.lookup(tenant, check, location.decode("latin-1") if location else None)
        status = await self._answer(scope, receive, send, tenant, check, fault, started)
        self.stats.record(check, status, (time.perf_counter() - started) * 1000)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        tenant: str,
        check: str,
        fault: Fault,
        started: float,
    ) -> int:
        if fault.hang:
            self.stats.hanging += 1
            try:
                await _until_disconnect(receive)
            finally:
                self.stats.hanging -= 1
            return 499
        base = self.settings.latency_ms.get(check, 50.0)
        jitter = (
            self.random.lognormvariate(0, self.settings.jitter) if self.settings.jitter else 1.0
        )
        delay = (base * fault.latency_factor * jitter + fault.extra_latency_ms) / 1000
        await asyncio.sleep(delay)
        timing = [
            (b"server-timing", f"app;dur={(time.perf_counter() - started) * 1000:.2f}".encode())
        ]

        if fault.redirect_loop:
            location = scope["path"] + (
                "?" + scope["query_string"].decode() if scope["query_string"] else ""
            )
            await _respond(
                send, 302, b"", b"text/plain", [(b"location", location.encode()), *timing]
            )
            return 302
        if fault.status is not None and (
            fault.fail_ratio >= 1.0 or self.random.random() < fault.fail_ratio
        ):
            if fault.status == 502:
                await _respond(
                    send,
                    502,
                    b"<html><body><h1>502 Bad Gateway</h1></body></html>\n",
                    b"text/html",
                    timing,
                )
            else:
                await _respond(
                    send,
                    fault.status,
                    json.dumps({"error": f"injected {fault.status}"}).encode(),
                    JSON,
                    timing,
                )
            return fault.status
        if fault.error_rate and self.random.random() < fault.error_rate:
            await _respond(send, 500, b'{"error": "injected"}', JSON, timing)
            return 500
        if fault.huge_body_bytes:
            await _stream_huge(send, receive, fault.huge_body_bytes, timing)
            return 200

        body = self._body(scope, tenant, check, fault)
        if fault.invalid_json:
            body = b'{"results": [oops'
        elif fault.truncated_json:
            body = body[: len(body) // 2]
        content_type = b"text/html" if fault.wrong_content_type else JSON
        if fault.drip_interval_ms:
            await _drip(send, receive, body, content_type, fault.drip_interval_ms / 1000, timing)
        else:
            await _respond(send, 200, body, content_type, timing)
        return 200

    def _body(self, scope: Scope, tenant: str, check: str, fault: Fault) -> bytes:
        query = parse_qs(scope["query_string"].decode()) if scope["query_string"] else {}
        limit = _int(query.get("limit", [""])[0], 10 if check == "search" else 5)
        if check == "search":
            q = query.get("q", [""])[0]
            source = (
                fault.foreign_tenant
                if fault.foreign_tenant and self.catalog.has(fault.foreign_tenant)
                else tenant
            )
            if fault.empty:
                items = []
            elif fault.fallback:
                items = self.catalog.popular(limit)
            else:
                items = self.catalog.search(source, q, limit, fault.delisted)
            return json.dumps(
                {"tenant": tenant, "query": q, "results": _drifted(items, fault)}
            ).encode()
        product = query.get("product", [""])[0]
        refresh = self.settings.refresh_s
        shift = int(time.time() // refresh) if refresh and not fault.frozen else 0
        if fault.empty:
            items = []
        elif fault.fallback:
            items = self.catalog.popular(limit)
        elif fault.foreign_tenant and self.catalog.has(fault.foreign_tenant):
            # A cache keyed without the tenant: the same product position, another catalogue.
            other = fault.foreign_tenant
            own = self.catalog.products(tenant)
            index = own.index(product) if product in own else 0
            theirs = self.catalog.products(other)
            items = self.catalog.recommendations(
                other, theirs[index % len(theirs)], limit, fault.delisted, shift
            )
        else:
            items = self.catalog.recommendations(tenant, product, limit, fault.delisted, shift)
        return json.dumps(
            {"tenant": tenant, "product": product, "recommendations": _drifted(items, fault)}
        ).encode()

    # --- admin --------------------------------------------------------------------------------

    async def _admin_auth(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] in ("PUT", "POST"):
            try:
                request = json.loads(await _read_body(receive))
                if not isinstance(request, dict):
                    raise ValueError("expected a JSON object")
                self.auth.update(request)
            except (ValueError, TypeError) as exc:
                await _respond_json(send, 400, {"error": str(exc)})
                return
        await _respond_json(send, 200, self.auth.snapshot())

    async def _admin_notifications(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method == "POST":
            try:
                body = json.loads(await _read_body(receive, MAX_NOTIFICATION_BODY))
            except ValueError:
                await _respond_json(send, 400, {"error": "expected a JSON body up to 4 MiB"})
                return
            self.notifications.append({"received_at": time.time(), "body": body})
            await _respond_json(send, 200, {"received": len(self.notifications)})
        elif method == "GET":
            await _respond_json(send, 200, {"notifications": list(self.notifications)})
        elif method == "DELETE":
            self.notifications.clear()
            await _respond_json(send, 200, {"notifications": []})
        else:
            await _respond_json(send, 405, {"error": "use POST, GET or DELETE"})

    async def _admin_faults(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method == "GET":
            await _respond_json(send, 200, {"faults": self.faults.to_json()})
        elif method == "DELETE":
            query = parse_qs(scope["query_string"].decode())
            tenant = query.get("tenant", [None])[0]
            check = query.get("check", [None])[0]
            location = query.get("location", [None])[0]
            self.faults.clear(tenant, check, location)
            await _respond_json(send, 200, {"faults": self.faults.to_json()})
        elif method in ("PUT", "POST"):
            try:
                request = json.loads(await _read_body(receive))
                if not isinstance(request, dict):
                    raise FaultError("expected a JSON object {tenant, check, fault}")
                unknown = set(request) - {"tenant", "check", "fault", "location"}
                if unknown:
                    raise FaultError(f"unknown keys: {', '.join(sorted(unknown))}")
                tenant = request.get("tenant", "*")
                check = request.get("check", "*")
                location = request.get("location", "*")
                if not all(isinstance(v, str) for v in (tenant, check, location)):
                    raise FaultError("tenant, check and location must be strings ('*' for all)")
                if check not in (*CHECKS, "*"):
                    raise FaultError(f"check must be one of {', '.join(CHECKS)} or '*'")
                fault = fault_from_json(request.get("fault", {}))
            except (ValueError, FaultError) as exc:
                await _respond_json(send, 400, {"error": str(exc)})
                return
            self.faults.set(tenant, check, fault, location)
            await _respond_json(send, 200, {"faults": self.faults.to_json()})
        else:
            await _respond_json(send, 405, {"error": "use GET, PUT or DELETE"})


def _drifted(items: list[dict[str, object]], fault: Fault) -> list[dict[str, object]]:
    """The items after a deploy changed their shape: a field renamed, a type changed."""
    if fault.drift == "renamed_field":
        return [{("product_id" if k == "id" else k): v for k, v in item.items()} for item in items]
    if fault.drift == "changed_type":
        return [{k: (str(v) if k == "score" else v) for k, v in item.items()} for item in items]
    return items


def _int(text: str, default: int) -> int:
    return int(text) if text.isdigit() and 0 < int(text) <= 100 else default


# recmon sends its `location` in this header (monitor.probing.httpclient.LOCATION_HEADER).
LOCATION_HEADER = b"x-recmon-location"


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {bytes(k): bytes(v) for k, v in scope["headers"]}


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _read_body(receive: Receive, limit: int = MAX_ADMIN_BODY) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        if len(body) > limit:
            raise FaultError("request body too large")
        if not message.get("more_body"):
            break
    return body


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})


async def _respond_json(send: Send, status: int, data: object) -> None:
    await _respond(send, status, json.dumps(data).encode(), JSON)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _while_connected(receive: Receive, work: Awaitable[None]) -> None:
    """Run `work` until it ends or the client goes away, whichever is first."""
    watcher = asyncio.ensure_future(_until_disconnect(receive))
    worker = asyncio.ensure_future(work)
    try:
        await asyncio.wait({watcher, worker}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (watcher, worker):
            task.cancel()
        await asyncio.gather(watcher, worker, return_exceptions=True)


async def _drip(
    send: Send,
    receive: Receive,
    body: bytes,
    content_type: bytes,
    interval: float,
    extra: list[tuple[bytes, bytes]],
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})

    async def drip() -> None:
        for start in range(0, len(body), DRIP_CHUNK):
            await send(
                {
                    "type": "http.response.body",
                    "body": body[start : start + DRIP_CHUNK],
                    "more_body": True,
                }
            )
            await asyncio.sleep(interval)
        await send({"type": "http.response.body", "body": b""})

    await _while_connected(receive, drip())


async def _stream_huge(
    send: Send, receive: Receive, size: int, extra: list[tuple[bytes, bytes]]
) -> None:
    """A valid JSON body of exactly `size` bytes, never held in memory whole."""
    head, tail = b'{"results": [', b"1]}"
    middle = max(0, size - len(head) - len(tail))
    if middle % 2:
        head += b" "  # the filler comes in "1," pairs
        middle -= 1
    size = len(head) + middle + len(tail)
    filler = b"1," * (STREAM_CHUNK // 2)
    headers = [(b"content-type", JSON), (b"content-length", str(size).encode()), *extra]
    await send({"type": "http.response.start", "status": 200, "headers": headers})

    async def stream() -> None:
        left = middle
        await send({"type": "http.response.body", "body": head, "more_body": True})
        while left > 0:
            chunk = filler[: min(len(filler), left)]
            left -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": tail})

    await _while_connected(receive, stream())
