"""Delivering the outbox: every sink in order, retried with backoff until it accepts.

A sink that fails is backed off as a whole (its other notifications wait too, instead of each
hammering a sink that is down); the backoff is exponential with jitter (tenacity's wait
strategies) and never shorter than a Retry-After the sink asked for. RETRY is never given up:
an outage delays pages, it never drops them. REJECTED (HTTP 400: the sink will never accept
this) is logged with the sink's reason and not retried.

When the state file takes no writes the outbox holds notifications in memory; they are
delivered all the same, each page saying that delivery is not crash-safe right now, and every
pass tries to write what is held (the outbox resumes as soon as the file takes writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tenacity import RetryCallState, wait_exponential, wait_random

from monitor.alerting.sinks.alertmanager import AlertmanagerSink
from monitor.alerting.sinks.base import Sink
from monitor.config.model import DeliverySpec
from monitor.core.clock import Clock
from monitor.core.notifications import Delivery, DeliveryResult, Notification
from monitor.state.outbox import Outbox, OutboxItem
from monitor.state.store import WriteHealth
from monitor.telemetry.metrics import Metrics

MAX_RETRY_AFTER_S = 900.0

log = logging.getLogger("recmon.delivery")

IDLE_WAKE_S = 5.0
# While notifications are held in memory: how often writing them to the state file is tried.
HELD_RETRY_S = 1.0
PRUNE_EVERY_S = 3600.0


@dataclass(frozen=True, slots=True)
class SinkHealth:
    """A sink as the status page shows it: its last delivery attempt and its backlog."""

    name: str
    last_at: float | None  # wall time of the last attempt; None: nothing sent yet
    last_result: Delivery | None
    last_detail: str  # the sink's answer ("status 503: ..."), never the request
    failures: int  # consecutive failed attempts
    retry_at: float | None  # backed off until then
    pending: int  # notifications waiting in the outbox for this sink


NOT_CRASH_SAFE = "delivery"


def not_crash_safe(notification: Notification, health: WriteHealth) -> Notification:
    """The page as sent from memory: it says that delivery is not crash-safe right now."""
    note = (
        f"sent from memory, not crash-safe: recmon's state file {health.path} takes no "
        f"writes ({health.error or 'write failed'}); a restart now could lose or repeat pages"
    )
    return replace(notification, details={**notification.details, NOT_CRASH_SAFE: note})


class Dispatcher:
    def __init__(
        self,
        outbox: Outbox,
        sinks: Mapping[str, Sink],
        *,
        alertmanager: AlertmanagerSink | None = None,
        clock: Clock,
        metrics: Metrics,
        spec: DeliverySpec,
    ) -> None:
        self.outbox = outbox
        self.sinks = dict(sinks)
        # The sink firing alerts are re-posted to (one of `sinks`), if configured.
        self.alertmanager = alertmanager
        self.clock = clock
        self.metrics = metrics
        self._wait = wait_exponential(
            multiplier=spec.backoff_initial, max=spec.backoff_max
        ) + wait_random(0, spec.backoff_initial)
        # A sink's Retry-After is honoured up to a ceiling: a bogus huge value (or a date years
        # ahead) must not park its pages forever.
        self._max_retry_after = max(spec.backoff_max, MAX_RETRY_AFTER_S)
        self._failures: dict[str, int] = {}
        self._blocked_until: dict[str, float] = {}
        self._last_sent: dict[str, float] = {}
        self._last_result: dict[str, tuple[float, DeliveryResult]] = {}
        self._wake = asyncio.Event()

    # --- enqueue ------------------------------------------------------------------------------

    def enqueue(
        self,
        notifications: Sequence[Notification],
        *,
        entries: Mapping[str, Any] | None = None,
    ) -> None:
        """Store for delivery to every sink (with the named `entries` in the same
        transaction), then wake the delivery loop."""
        if not notifications:
            return
        self.outbox.enqueue(
            notifications,
            self.sinks,
            self.clock.time(),
            entries=entries,
        )
        if self.outbox.holding:
            log.error(
                "notifications could not be stored: delivering them from memory, not "
                "crash-safe until the state file takes writes again",
                extra={
                    "fields": {
                        "notifications": len(notifications),
                        "reason": self.outbox.store.write_health().error,
                    }
                },
            )
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    # --- delivery -----------------------------------------------------------------------------

    def _backoff(self, failures: int) -> float:
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]  # only attempt_number is read
        state.attempt_number = failures
        return float(self._wait(state))

    def write_held(self) -> None:
        """Write what the outbox holds in memory, if the state file takes writes again."""
        if self.outbox.holding and self.outbox.write_held():
            log.info("state file writable again: notifications held in memory are stored")

    async def deliver_due(self) -> int:
        """One pass over what is due; returns how many were delivered."""
        self.write_held()
        now = self.clock.time()
        by_sink: dict[str, list[OutboxItem]] = {}
        for item in self.outbox.due(now, limit=500):
            if self._blocked_until.get(item.sink, 0.0) <= now and item.sink in self.sinks:
                by_sink.setdefault(item.sink, []).append(item)
        results = await asyncio.gather(
            *(self._deliver(sink, items) for sink, items in by_sink.items())
        )
        return sum(results)

    async def _deliver(self, sink_name: str, items: list[OutboxItem]) -> int:
        sink = self.sinks[sink_name]
        pace = sink.min_interval_s
        delivered = 0
        for item in items:
            if pace:
                gap = self._last_sent.get(sink_name, float("-inf")) + pace - self.clock.monotonic()
                if gap > 0:
                    # Paced (PagerDuty takes ~120 events/min per key): come back, don't block.
                    self._blocked_until[sink_name] = self.clock.time() + gap
                    break
                self._last_sent[sink_name] = self.clock.monotonic()
            notification = item.notification
            if item.held:
                notification = not_crash_safe(notification, self.outbox.store.write_health())
            try:
                result = await sink.send(notification)
            except Exception as exc:  # a bug in a sink must delay this page, never drop it
                self.metrics.internal_errors.labels("delivery").inc()
                log.exception("sink failed unexpectedly", extra={"fields": {"sink": sink_name}})
                result = DeliveryResult(Delivery.RETRY, f"internal error: {type(exc).__name__}")
            now = self.clock.time()
            self._last_result[sink_name] = (now, result)
            self.metrics.notifications.labels(sink_name, result.outcome.value).inc()
            fields: dict[str, Any] = {
                "sink": sink_name,
                "id": item.notification.id,
                "attempt": item.attempts + 1,
            }
            if item.held:
                fields["from_memory"] = True  # not crash-safe: the state file takes no writes
            if result.outcome is Delivery.DELIVERED:
                self.outbox.mark_delivered(item, now)
                self._failures.pop(sink_name, None)
                self._blocked_until.pop(sink_name, None)
                delivered += 1
                log.info("notification delivered", extra={"fields": fields})
            elif result.outcome is Delivery.REJECTED:
                self.outbox.mark_rejected(item, now, result.detail)
                log.error(
                    "notification rejected by the sink, not retried",
                    extra={"fields": {**fields, "reason": result.detail}},
                )
            else:
                failures = self._failures.get(sink_name, 0) + 1
                self._failures[sink_name] = failures
                asked = min(result.retry_after or 0.0, self._max_retry_after)
                delay = max(self._backoff(failures), asked)
                self._blocked_until[sink_name] = now + delay
                self.outbox.mark_retry(item, now + delay, result.detail)
                log.warning(
                    "delivery failed, will retry",
                    extra={
                        "fields": {**fields, "reason": result.detail, "retry_in_s": round(delay, 1)}
                    },
                )
                break  # the sink is failing: its other notifications wait with this one
        return delivered

    def health(self) -> list[SinkHealth]:
        """Every configured sink: its last delivery result and what waits for it."""
        now = self.clock.time()
        healths = []
        for name in self.sinks:
            at, result = self._last_result.get(name, (None, None))
            blocked = self._blocked_until.get(name)
            healths.append(
                SinkHealth(
                    name=name,
                    last_at=at,
                    last_result=result.outcome if result else None,
                    last_detail=result.detail if result else "",
                    failures=self._failures.get(name, 0),
                    retry_at=blocked if blocked is not None and blocked > now else None,
                    pending=self.outbox.pending(name),
                )
            )
        return healths

    def next_wakeup(self) -> float | None:
        """Wall time of the next delivery worth attempting."""
        candidates = [t for t in self._blocked_until.values()]
        if self.outbox.holding:
            candidates.append(self.clock.time() + HELD_RETRY_S)
        due = self.outbox.next_attempt()
        if due is not None:
            candidates.append(max(due, min(self._blocked_until.values(), default=due)))
        return min(candidates) if candidates else None

    async def run(self, stop: asyncio.Event) -> None:
        pruned_at = float("-inf")
        while not stop.is_set():
            if self.clock.monotonic() - pruned_at >= PRUNE_EVERY_S:
                # Delivered and rejected rows are kept a week for inspection, then dropped.
                self.outbox.prune(self.clock.time())
                pruned_at = self.clock.monotonic()
            try:
                await self.deliver_due()
            except Exception:
                self.metrics.internal_errors.labels("delivery").inc()
                log.exception("delivery pass failed")
            wake_at = self.next_wakeup()
            delay = (
                IDLE_WAKE_S
                if wake_at is None
                else min(IDLE_WAKE_S, max(0.05, wake_at - self.clock.time()))
            )
            await self._sleep_or_wake(delay, stop)

    async def _sleep_or_wake(self, delay: float, stop: asyncio.Event) -> None:
        self._wake.clear()
        sleeper = asyncio.ensure_future(self.clock.sleep(delay))
        waker = asyncio.ensure_future(self._wake.wait())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({sleeper, waker, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker, stopper):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def flush(self, within: float) -> int:
        """Deliver what can be delivered within `within` seconds (shutdown, end of a CronJob
        run); at least one pass. What is left stays in the outbox for next time; returns how
        many are left."""
        deadline = self.clock.monotonic() + within
        while True:
            await self.deliver_due()
            left = self.outbox.pending()
            wake_at = self.next_wakeup()
            if left == 0 or wake_at is None:
                return left
            delay = max(wake_at - self.clock.time(), 0.01)
            if self.clock.monotonic() + delay > deadline:
                return left
            await self.clock.sleep(delay)

    async def resend_firing(
        self, firing: Callable[[], Sequence[Notification]], stop: asyncio.Event
    ) -> None:
        """Alertmanager forgets alerts not re-sent within its resolve_timeout."""
        sink = self.alertmanager
        if sink is None:
            return
        while not stop.is_set():
            await self.clock.sleep(sink.spec.resend_interval)
            await self.resend_once(firing())

    async def resend_once(self, active: Sequence[Notification]) -> None:
        """Re-post what is firing to Alertmanager, so it does not time the alerts out. A
        failed re-post is counted; the next one (or the alert's endsAt margin) covers it."""
        sink = self.alertmanager
        if sink is not None and active:
            result = await sink.resend(active)
            self.metrics.notifications.labels(sink.name, result.outcome.value).inc()
