"""Loading and saving the monitor's memory through the StateStore."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import struct
import threading
from collections.abc import Mapping

from monitor.alerting.codec import planner_from_json, planner_to_json
from monitor.alerting.hub import AlertHub, AlertMemory
from monitor.alerting.planner import PlannerState
from monitor.app.history import HistoryRecorder
from monitor.detect.codec import (
    baseline_row,
    samples_row,
    series_core_text,
    series_from_parts,
)
from monitor.detect.content import ContentState, content_from_json, content_to_json
from monitor.detect.series import SeriesState
from monitor.probing.tenant_source import TenantSource
from monitor.state.store import SeriesKey, SeriesWrite, StateStore
from monitor.telemetry.metrics import Metrics
from monitor.tls.codec import tls_hosts_from_json, tls_hosts_to_json
from monitor.tls.rules import HostState

log = logging.getLogger("recmon.state")

SAVE_EVERY_S = 60.0
# A periodic save writes a series' baseline again only this long after it last did (the
# final save, at shutdown and in `once`, writes every one). The baseline and how far it has
# learned are saved together: a restored older pair learns again the samples after it that
# are still in the window, all of them while this is at most the longest window minus the
# drift window (900 - 300 s by default). Encoding the baseline was most of a save's CPU.
BASELINE_EVERY_S = 300.0
# Series encoded and written per transaction in a save (see Persistence._write_series).
SAVE_CHUNK = 1_000


# A series as the state file holds it after the last save: (hash of its head's JSON, hash of its
# baseline's row as written (codec.baseline_row), the series' time (newest sample) when that
# baseline was written, the time of its oldest stored row's first sample, the time of its newest
# stored sample, whether the file holds the state's baseline as it is now). Hashes: at 10,000
# tenants the texts were 14 MB kept between saves only to be compared. An exact tuple of numbers:
# the garbage collector stops tracking it at its first collection (a named tuple it tracks for ever;
# a dataclass holding a weak reference to the state saved was two tracked objects a series, ~40,000
# at 10,000 tenants, walked by every collection). Packed (_SAVED): one bytes object of 80 bytes, not
# the tuple's ~220 with its ints and floats.
Saved = bytes
_SAVED = struct.Struct("<qqdddB")


def series_changes(
    saved: Mapping[SeriesKey, Saved],
    states: Mapping[SeriesKey, SeriesState],
    *,
    baseline_every: float = 0.0,
) -> tuple[SeriesWrite, dict[SeriesKey, Saved]]:
    """What to write so the file holds `states`, given what it holds (`saved`), and what it
    holds afterwards, by content: a head whose text is unchanged is not written again. A series'
    samples are kept in buckets (SeriesState.buckets) that grow at the end and leave from the
    front; the file holds them as rows, each a run of consecutive samples of one bucket keyed by
    its first sample's time: a save writes a row of the samples newer than the newest stored
    (a row per bucket they fall in) and drops the rows before the oldest bucket kept. A series
    whose newest sample is older than the newest stored (the clock went back), or not stored
    yet, is written afresh, a row per bucket. A baseline written less than `baseline_every`
    seconds (of the series' time) ago is kept as written."""
    removed: list[SeriesKey] = [key for key in saved if key not in states]
    keep_from: list[tuple[str, str, float]] = []
    heads: list[tuple[str, str, str]] = []
    details: list[tuple[str, str, bytes]] = []
    items: list[tuple[str, str, float, str | bytes]] = []
    after: dict[SeriesKey, Saved] = {}
    for key, state in states.items():
        tenant, check = key
        buckets = state.buckets
        newest = buckets[-1].last_at() if buckets else -math.inf
        held = saved.get(key)
        before: tuple[int, int, float, float, float, bool] | None = (
            _SAVED.unpack(held) if held is not None else None
        )
        if before is not None and newest < before[4]:
            before = None  # the clock went back: written afresh
        core = series_core_text(state)
        stale = False
        if before is not None:
            core_was, baseline_was, baseline_at, first_was, stored, _ = before
            stale = newest - baseline_at < baseline_every
        detail = b""
        if stale:
            baseline = baseline_was
        else:
            detail, baseline_at = baseline_row(state), newest
            baseline = hash(detail)
        if before is None or hash(core) != core_was:
            heads.append((tenant, check, core))
        if before is None or baseline != baseline_was:
            details.append((tenant, check, detail))
        if before is None:
            removed.append(key)  # whatever the file holds of it goes: written afresh
            for bucket in buckets:
                items.append((tenant, check, bucket.at(0), samples_row(bucket, 0)))
        elif newest > stored:
            fresh = len(buckets) - 1
            while fresh and buckets[fresh - 1].last_at() > stored:
                fresh -= 1
            for bucket in buckets[fresh:]:
                offset = 0
                for at in bucket.times():  # one step, not a call per sample
                    if at > stored:
                        break
                    offset += 1
                items.append((tenant, check, at, samples_row(bucket, offset)))
        first_at = buckets[0].at(0) if buckets else math.inf
        if before is not None and first_at > first_was:
            keep_from.append((tenant, check, first_at))
        after[key] = _SAVED.pack(hash(core), baseline, baseline_at, first_at, newest, not stale)
    return SeriesWrite(removed, keep_from, heads, details, items), after


def _same_states(
    states: Mapping[str, ContentState], written: Mapping[str, ContentState] | None
) -> bool:
    """The same content states (by identity: they are immutable) as `written`."""
    return (
        written is not None
        and states.keys() == written.keys()
        and all(state is written[check] for check, state in states.items())
    )


class Persistence:
    def __init__(
        self,
        store: StateStore,
        hub: AlertHub,
        metrics: Metrics,
        tenants: TenantSource,
        history: HistoryRecorder | None = None,
    ) -> None:
        """`history`: the recorder whose changed rows each save writes (none: no history)."""
        self.history = history
        self.store = store
        self.hub = hub
        self.metrics = metrics
        self.tenants = tenants
        # Wall time of the last good save and the last failure's text, for /status.
        self.saved_at: float | None = None
        self.last_error: str | None = None
        # What the file holds, so a save writes only what changed since; one save at a time.
        self._saved: dict[SeriesKey, Saved] = {}
        self._saving = threading.Lock()
        # The cross-tenant content states and the tenant list as the file holds them (None:
        # not written by this process yet). A periodic save writes each again only when it
        # changed: content states are immutable and most probes leave them as they were, but
        # their text is a list of ids per tenant (4.5 MB at 10,000 tenants x 2 checks) that a
        # save encoded and wrote every minute.
        self._content_written: Mapping[str, ContentState] | None = None
        self._tenants_written: tuple[str, ...] | None = None

    def restore(self, *, counters: bool) -> None:
        """Windows, baselines, alert and planner states, the last good tenant list and — for a
        CronJob run, whose process starts from zero each time — the counters."""
        series = self.store.load_series(series_from_parts)
        # Nothing known as saved: the first save writes every series afresh, in the buckets
        # the detector keeps (a restored state is bucketed anew; a file written before
        # buckets, or before samples had rows, is so upgraded in place).
        self._saved = {}
        self._content_written = self._tenants_written = None
        planner = PlannerState()
        saved_planner = self.store.get("planner")
        if saved_planner is not None:
            try:
                planner = planner_from_json(saved_planner)
            except ValueError as exc:
                log.warning(
                    "planner state unreadable, starting it clean",
                    extra={"fields": {"error": str(exc)}},
                )
        tls_hosts: dict[str, HostState] = {}
        tls = self.store.get("tls")
        if isinstance(tls, dict):
            try:
                tls_hosts = tls_hosts_from_json(tls)
            except ValueError as exc:
                log.warning(
                    "certificate state unreadable, starting it clean",
                    extra={"fields": {"error": str(exc)}},
                )
        content: dict[str, ContentState] = {}
        saved_content = self.store.get("content")
        if saved_content is not None:
            try:
                content = content_from_json(saved_content)
            except ValueError as exc:
                log.warning(
                    "cross-tenant content state unreadable, starting it clean",
                    extra={"fields": {"error": str(exc)}},
                )
        tenants = self.store.get("tenants")
        if isinstance(tenants, list) and all(isinstance(t, str) for t in tenants):
            self.tenants.seed(tenants)
        slo = self.store.get("slo")
        if isinstance(slo, dict):
            try:
                self.hub.restore_slo(slo)
            except ValueError as exc:
                log.warning(
                    "SLO state unreadable, starting its windows clean",
                    extra={"fields": {"error": str(exc)}},
                )
        adopted = self.hub.restore(AlertMemory(series, planner, tls_hosts, content))
        if adopted:
            log.warning(
                "paged alerts missing from the saved detector state (recmon stopped without "
                "saving): kept firing, so they resolve when their series recover",
                extra={"fields": {"alerts": adopted}},
            )
        if self.history is not None:
            self.history.restore(self.store)
        if counters:
            snapshot = self.store.get("counters")
            if isinstance(snapshot, dict):
                self.metrics.restore_counters(snapshot)
        log.info(
            "state restored",
            extra={
                "fields": {
                    "path": self.store.path,
                    "series": len(self.hub.memory().series),
                    "firing": self.hub.firing,
                }
            },
        )

    def save(self, *, counters: bool) -> None:
        memory = self.hub.memory()
        self._write_series(memory.series, baseline_every=0.0)  # the last save: all of it
        self.store.put("planner", planner_to_json(memory.planner))
        self.store.put("tls", tls_hosts_to_json(memory.tls_hosts))
        self.store.put("content", content_to_json(memory.content))
        self._content_written = memory.content
        self.store.put("slo", self.hub.slo_snapshot().to_json())
        if self.tenants.current:
            self.store.put("tenants", list(self.tenants.current))
            self._tenants_written = self.tenants.current
        if counters:
            self.store.put("counters", self.metrics.counter_snapshot())
        if self.history is not None:
            history = self.history.changes()
            self.store.write_history(history.write)
            self.history.written(history)

    async def save_async(self) -> None:
        # The memory is a consistent snapshot (immutable states, copied mappings): the series'
        # encoding and the writing happen off the event loop.
        memory = self.hub.memory()
        planner = planner_to_json(memory.planner)
        tls = tls_hosts_to_json(memory.tls_hosts)
        # Mutable windows: copied here, encoded in the thread; per-tenant windows only in the
        # last save (shutdown, `once`): copying 10,000 of them is too long for the loop.
        slo = self.hub.slo_snapshot(tenant_windows=False)
        content = memory.content  # a copy of the mapping, of immutable states
        content_changed = not _same_states(content, self._content_written)
        tenants = self.tenants.current
        tenants_changed = bool(tenants) and tenants != self._tenants_written
        history = self.history.changes() if self.history is not None else None

        def write() -> None:
            self._write_series(memory.series, baseline_every=BASELINE_EVERY_S)
            self.store.put("planner", planner)
            self.store.put("tls", tls)
            if content_changed:
                self.store.put("content", content_to_json(content))
            self.store.put("slo", slo.to_json())
            if tenants_changed:
                self.store.put("tenants", list(tenants))
            if history is not None:
                self.store.write_history(history.write)

        await asyncio.to_thread(write)
        # Only once written: a failed save writes them again.
        if content_changed:
            self._content_written = content
        if tenants_changed:
            self._tenants_written = tenants
        if self.history is not None and history is not None:
            self.history.written(history)

    def _write_series(
        self, series: Mapping[SeriesKey, SeriesState], *, baseline_every: float
    ) -> None:
        """Encoded and written SAVE_CHUNK series at a time: a first save of 10,000 tenants
        encoded all at once held ~70 MB of text at its peak, and the process kept that memory.
        Each chunk is a transaction; what the file holds is noted once its chunk is written (a
        failed chunk is retried in full at the next save)."""
        with self._saving:
            gone = [key for key in self._saved if key not in series]
            if gone:
                self.store.write_series(SeriesWrite(removed=gone))
                for key in gone:
                    del self._saved[key]
            keys = list(series)
            for start in range(0, len(keys), SAVE_CHUNK):
                chunk = {key: series[key] for key in keys[start : start + SAVE_CHUNK]}
                before = {key: self._saved[key] for key in chunk if key in self._saved}
                write, after = series_changes(before, chunk, baseline_every=baseline_every)
                if write.removed or write.keep_from or write.heads or write.details or write.items:
                    self.store.write_series(write)
                self._saved.update(after)

    async def run(self, stop: asyncio.Event, every: float = SAVE_EVERY_S) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
            try:
                await self.save_async()
            except Exception as exc:
                self.metrics.internal_errors.labels("state").inc()
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("saving state failed")
            else:
                self.saved_at = self.hub.clock.time()
                self.last_error = None
