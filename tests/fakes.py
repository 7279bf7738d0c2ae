"""Stand-ins for third-party endpoints, served for real on loopback (PagerDuty, a webhook,
a dead man's switch, a platform that echoes its requests): they record what they receive and
answer what the test says."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from monitor.app.httpapi import Scope


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def send_json(send: Any, status: int, answer: object) -> None:
    payload = json.dumps(answer).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


@dataclass
class RecordingEndpoint:
    """An ASGI app: every request's method, path and JSON body, answered with `status`."""

    status: int = 202
    received: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        status = self.status
        if status < 300:
            self.received.append(
                {
                    "method": scope["method"],
                    "path": scope["path"],
                    "body": json.loads(body) if body else None,
                    "at": time.monotonic(),  # when it arrived, for time-to-page figures
                }
            )
        await send_json(send, status, {"status": "success" if status < 300 else "unavailable"})

    def events(self) -> list[tuple[str, str]]:
        return [
            (r["body"]["dedup_key"], r["body"]["event_action"]) for r in self.received if r["body"]
        ]


@dataclass
class EchoingPlatform:
    """An ASGI app whose every answer quotes what it was sent, as some error pages and
    debugging endpoints do:

    - `POST /oauth2/token`: refuses the client, quoting it — "client revoked (presented
      id:secret as Basic <base64>)", the form body too;
    - `GET /tenants` (discovery): the tenants, plus the request's own credential as a tenant
      id and its request line (query string percent-encoded) as another;
    - `POST /v2/enqueue` (PagerDuty): the first `refuse_pages` events answered 503 with the
      event body (its routing key) quoted, then 202 and recorded in `pages`;
    - anything else (the API): 401 with the request's headers and query in the body.
    """

    tenants: tuple[str, ...] = ("tenant-001", "tenant-002", "tenant-003")
    refuse_pages: int = 3
    pages: list[dict[str, Any]] = field(default_factory=list)
    answered: dict[str, int] = field(default_factory=dict)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path, query = scope["path"], scope["query_string"].decode()
        sent = "; ".join(f"{k}: {v}" for k, v in headers.items()) + f"; query {query}"
        kind = (
            "token"
            if path == "/oauth2/token"
            else "discovery"
            if path == "/tenants"
            else "pagerduty"
            if path == "/v2/enqueue"
            else "api"
        )
        self.answered[kind] = self.answered.get(kind, 0) + 1
        status, answer = 401, {"error": "unauthorized", "message": f"you sent {sent}"}
        if kind == "token":
            scheme, _, basic = headers.get("authorization", "").partition(" ")
            presented = base64.b64decode(basic).decode() if basic else ""
            user, _, secret = presented.partition(":")
            answer = {
                "error": "invalid_client",
                "error_description": f"client revoked (presented {unquote_plus(user)}:"
                f"{unquote_plus(secret)} as {scheme} {basic}; form {body.decode()})",
            }
        elif kind == "discovery":
            credential = headers.get("authorization", "").rpartition(" ")[2]
            ids = [*self.tenants, credential, f"GET {path}?{query} {sent}"]
            status, answer = 200, {"tenants": [{"id": i} for i in ids]}
        elif kind == "pagerduty":
            if self.refuse_pages > 0:
                self.refuse_pages -= 1
                status, answer = 503, {"status": "unavailable", "you sent": body.decode()}
            else:
                self.pages.append(json.loads(body))
                status, answer = 202, {"status": "success"}
        await send_json(send, status, answer)
