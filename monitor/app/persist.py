"""Loading and saving the monitor's memory through the StateStore."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import struct
import threading
from collections.abc import Container, Iterable, Mapping

from monitor.alerting.codec import planner_from_json, planner_to_json
from monitor.alerting.hub import AlertHub, AlertMemory
from monitor.alerting.planner import PlannerState
from monitor.app.history import HistoryRecorder, HistorySnapshot
from monitor.core.results import Outcome
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
# A periodic save writes a quiet series (every sample since its last write ok, no alert in
# its head or in the file's) only on its turn, one save in SAVE_TURNS: the series are split
# into SAVE_TURNS runs of their sorted keys (the state file's key order, so a save dirties
# a fifth of the pages, not a few rows on every page). A series with anything else to say
# (a failure, an alert, a first write) is written at every save, as before. What a crash
# (no final save) can lose is thus at most SAVE_TURNS x SAVE_EVERY_S of a quiet series'
# ok samples and history counts; the file holds each series as it was at one save, whole.
# At the fleet (10,000 tenants x 2 / 60 s) a save wrote 20,000 heads, rows and hour rows,
# every page of their tables (the saving thread ~13% of the process, minutes 6-8): see
# docs/BENCHMARKS.md, "The fleet's background, a sixth round".
SAVE_TURNS = 5
# A periodic save writes a series' baseline again only this long after it last did, or on
# the series' turn (the final save, at shutdown and in `once`, writes every one). The
# baseline and how far it has learned are saved together: a restored older pair learns again
# the samples after it that are still in the window, all of them while this (and the turns'
# SAVE_TURNS x SAVE_EVERY_S, and the up to RuleSet.learn_every the baseline learns behind the
# drift window) is at most the longest window minus the drift window (900 - 300 s by
# default); past that, a restore after a crash leaves a few minutes of samples unlearned, of
# a baseline of hours. Encoding the baseline was most of a save's CPU.
BASELINE_EVERY_S = 300.0
# Series encoded and written per transaction in a save (see Persistence._write_series).
SAVE_CHUNK = 1_000


# A series as the state file holds it after the last save: (hash of its head's JSON, hash of its
# baseline's row as written (codec.baseline_row), the series' time (newest sample) when that
# baseline was written, the time of its oldest stored row's first sample, the time of its newest
# stored sample, flags: 1 the file holds the state's baseline as it is now, 2 the head written
# had alerts). Hashes: at 10,000 tenants the texts were 14 MB kept between saves only to be
# compared. An exact tuple of numbers: the garbage collector stops tracking it at its first
# collection (a named tuple it tracks for ever; a dataclass holding a weak reference to the
# state saved was two tracked objects a series, ~40,000 at 10,000 tenants, walked by every
# collection). Packed (_SAVED): one bytes object of 80 bytes, not the tuple's ~220 with its ints
# and floats.
Saved = bytes
_SAVED = struct.Struct("<qqdddB")
_CURRENT_BASELINE = 1
_HAD_ALERTS = 2


def series_changes(
    saved: Mapping[SeriesKey, Saved],
    states: Mapping[SeriesKey, SeriesState],
    *,
    baseline_every: float = 0.0,
    later: Container[SeriesKey] = (),
) -> tuple[SeriesWrite, dict[SeriesKey, Saved]]:
    """What to write so the file holds `states`, given what it holds (`saved`), and what it
    holds afterwards, by content: a head whose text is unchanged is not written again. A series'
    samples are kept in buckets (SeriesState.buckets) that grow at the end and leave from the
    front; the file holds them as rows, each a run of consecutive samples of one bucket keyed by
    its first sample's time: a save writes a row of the samples newer than the newest stored
    (a row per bucket they fall in) and drops the rows before the oldest bucket kept. A series
    whose newest sample is older than the newest stored (the clock went back), or not stored
    yet, is written afresh, a row per bucket. A series in `later` (not its turn, see
    SAVE_TURNS) is left as the file holds it while it is quiet: stored, no alert in its state
    nor in its head as written, every sample since ok. A baseline written less than
    `baseline_every` seconds (of the series' time) ago is kept as written, unless the series
    is not in `later` (its turn)."""
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
        before: tuple[int, int, float, float, float, int] | None = (
            _SAVED.unpack(held) if held is not None else None
        )
        if before is not None and newest < before[4]:
            before = None  # the clock went back: written afresh
        deferred = before is not None and key in later
        if (
            held is not None
            and before is not None
            and deferred
            and not (state.alerts or before[5] & _HAD_ALERTS)
            and _quiet(state, before[4])
        ):
            after[key] = held  # left for its turn
            continue
        core = series_core_text(state)
        stale = False
        if before is not None:
            core_was, baseline_was, baseline_at, first_was, stored, _ = before
            stale = deferred and newest - baseline_at < baseline_every
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
        flags = (0 if stale else _CURRENT_BASELINE) | (_HAD_ALERTS if state.alerts else 0)
        after[key] = _SAVED.pack(hash(core), baseline, baseline_at, first_at, newest, flags)
    return SeriesWrite(removed, keep_from, heads, details, items), after


def _quiet(state: SeriesState, stored: float) -> bool:
    """Every sample of the series newer than `stored` (a time) is ok: the newest one that is
    not (the one before its run of ok_streak ok ones, as the detector counts it: never more
    than its ok samples) is no newer. One lookup, not a scan: the save asks it of every series
    it may leave for later."""
    buckets = state.buckets
    starts = state.starts
    if not buckets:
        return True
    last = starts[-1] + len(buckets[-1]) - 1 - state.ok_streak  # sequence number
    if last < starts[0]:
        return True  # every sample held is ok
    at = bisect.bisect_right(starts, last) - 1
    bucket = buckets[at]
    index = last - starts[at]
    if bucket.outcome(index) == Outcome.OK:
        return _ok_since(state, stored)  # a streak not counted from these samples: read them
    return bucket.at(index) <= stored


def _ok_since(state: SeriesState, stored: float) -> bool:
    """_quiet by reading the outcomes of the samples newer than `stored`."""
    buckets = state.buckets
    at = len(buckets) - 1
    while at >= 0:
        bucket = buckets[at]
        if bucket.at(0) > stored:
            if not bucket.all_ok_since(0):
                return False
            at -= 1
            continue
        offset = 0
        for time in bucket.times():
            if time > stored:
                break
            offset += 1
        return bucket.all_ok_since(offset)
    return True


def turns(keys: Iterable[SeriesKey], count: int = SAVE_TURNS) -> dict[SeriesKey, int]:
    """Each series' turn (0 to count - 1): runs of the sorted keys, the state file's order."""
    ordered = sorted(keys)
    size = len(ordered)
    return {key: i * count // size for i, key in enumerate(ordered)}


class _NotTurn:
    """The series whose turn is not `turn` (a container: no set of 16,000 keys built)."""

    __slots__ = ("_turn", "_turns")

    def __init__(self, turns: Mapping[SeriesKey, int], turn: int) -> None:
        self._turns = turns
        self._turn = turn

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple):
            return False
        return self._turns.get(key, self._turn) != self._turn

    def __bool__(self) -> bool:
        return True


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
        # Each series' turn (see SAVE_TURNS), for the series of the last save; the periodic
        # saves' count, whose remainder is the turn of the series written even if quiet.
        self._turns: dict[SeriesKey, int] = {}
        self._saves = 0
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
        turn = self._saves % SAVE_TURNS

        def write() -> HistorySnapshot | None:
            left = self._write_series(memory.series, baseline_every=BASELINE_EVERY_S, turn=turn)
            self.store.put("planner", planner)
            self.store.put("tls", tls)
            if content_changed:
                self.store.put("content", content_to_json(content))
            self.store.put("slo", slo.to_json())
            if tenants_changed:
                self.store.put("tenants", list(tenants))
            if history is None:
                return None
            # A series left for its turn leaves its hour rows too (they stay to be written).
            written = history.without(left)
            self.store.write_history(written.write)
            return written

        history = await asyncio.to_thread(write)
        # Only once written: a failed save writes them again, and its turn is the next's.
        self._saves += 1
        if content_changed:
            self._content_written = content
        if tenants_changed:
            self._tenants_written = tenants
        if self.history is not None and history is not None:
            self.history.written(history)

    def _write_series(
        self,
        series: Mapping[SeriesKey, SeriesState],
        *,
        baseline_every: float,
        turn: int | None = None,
    ) -> set[SeriesKey]:
        """Encoded and written SAVE_CHUNK series at a time: a first save of 10,000 tenants
        encoded all at once held ~70 MB of text at its peak, and the process kept that memory.
        Each chunk is a transaction; what the file holds is noted once its chunk is written (a
        failed chunk is retried in full at the next save). `turn`: the series whose turn it is
        (see SAVE_TURNS) are written even if quiet, the others only if not; None: every one.
        Returns the series left as the file held them (quiet, not their turn)."""
        left: set[SeriesKey] = set()
        with self._saving:
            later: Container[SeriesKey] = ()
            if turn is not None:
                if len(self._turns) != len(series) or not all(k in self._turns for k in series):
                    self._turns = turns(series)
                later = _NotTurn(self._turns, turn)
            gone = [key for key in self._saved if key not in series]
            if gone:
                self.store.write_series(SeriesWrite(removed=gone))
                for key in gone:
                    del self._saved[key]
            keys = list(series)
            for start in range(0, len(keys), SAVE_CHUNK):
                chunk = {key: series[key] for key in keys[start : start + SAVE_CHUNK]}
                before = {key: self._saved[key] for key in chunk if key in self._saved}
                write, after = series_changes(
                    before, chunk, baseline_every=baseline_every, later=later
                )
                if write.removed or write.keep_from or write.heads or write.details or write.items:
                    self.store.write_series(write)
                self._saved.update(after)
                if later:
                    # Left as held: the very entry the file held (series_changes packs anew
                    # what it writes).
                    left.update(key for key, entry in after.items() if entry is before.get(key))
        return left

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
