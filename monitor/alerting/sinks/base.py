"""The one interface every sink implements, and what all of them share: timestamps and the
reading of an HTTP answer as delivered, retry or rejected."""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

import httpx

from monitor.core.notifications import Delivery, DeliveryResult, Notification
from monitor.core.secrets import request_of, scrub

MAX_REASON = 300


class Sink(Protocol):
    """What the dispatcher reads of a sink."""

    name: str
    # Seconds between two sends, at least (PagerDuty takes ~120 events/min per key); 0: none.
    min_interval_s: float

    async def send(self, notification: Notification) -> DeliveryResult: ...


def rfc3339(unix_seconds: float) -> str:
    moment = datetime.fromtimestamp(unix_seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def retry_after(response: httpx.Response, now: float) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def classify(
    response: httpx.Response,
    now: float,
    *,
    accepted: tuple[int, ...] = (),
    secrets: Iterable[str] = (),
) -> DeliveryResult:
    """2xx (or the listed codes) delivered; 408, 429 and 5xx retry; other 4xx are rejected —
    sending the same thing again cannot succeed. `secrets`: what the request carried outside
    its headers and URL (a routing key in the body), scrubbed from the answer too."""
    status = response.status_code
    if status in accepted or 200 <= status < 300:
        return DeliveryResult(Delivery.DELIVERED, f"status {status}")
    # The answer's text becomes a log line and the outbox's last_error in the state file: a
    # sink that echoes its request (a proxy's error page, a debugging endpoint) must not
    # carry the credentials recmon sent it into either.
    text = scrub(response.text.strip(), request_of(response), secrets)
    reason = f"status {status}: {text[:MAX_REASON]}"
    if status in (408, 429) or status >= 500:
        return DeliveryResult(Delivery.RETRY, reason, retry_after(response, now))
    return DeliveryResult(Delivery.REJECTED, reason)


def classify_error(exc: Exception, secrets: Iterable[str] = ()) -> DeliveryResult:
    """Network trouble: timeouts, refused, reset, DNS — always worth another try."""
    request = request_of(exc) if isinstance(exc, httpx.RequestError) else None
    text = scrub(str(exc), request, secrets)
    return DeliveryResult(Delivery.RETRY, f"{type(exc).__name__}: {text[:MAX_REASON]}")


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: object,
    *,
    request_timeout: float,
    now: float,
    headers: dict[str, str] | None = None,
    accepted: tuple[int, ...] = (),
    secrets: Iterable[str] = (),
) -> DeliveryResult:
    try:
        # One deadline for the whole exchange: httpx's timeouts are per read, and a sink
        # that trickles its answer would otherwise hold every page behind it.
        async with asyncio.timeout(request_timeout):
            response = await client.post(url, json=body, headers=headers, timeout=request_timeout)
    except TimeoutError:
        return DeliveryResult(Delivery.RETRY, f"no complete answer within {request_timeout:g}s")
    except httpx.HTTPError as exc:
        return classify_error(exc, secrets)
    return classify(response, now, accepted=accepted, secrets=secrets)
