"""Stand-ins for third-party endpoints, served for real on loopback (PagerDuty, a webhook,
a dead man's switch): they record what they receive and answer what the test says."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from monitor.app.httpapi import Scope


@dataclass
class RecordingEndpoint:
    """An ASGI app: every request's method, path and JSON body, answered with `status`."""

    status: int = 202
    received: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
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
        payload = json.dumps({"status": "success" if status < 300 else "unavailable"}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def events(self) -> list[tuple[str, str]]:
        return [
            (r["body"]["dedup_key"], r["body"]["event_action"]) for r in self.received if r["body"]
        ]
