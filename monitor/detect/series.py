"""What the detector remembers per tenant × check. Frozen: a snapshot is a reference copy."""

from __future__ import annotations

import bisect
import enum
import functools
import itertools
import math
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from monitor.core.notifications import Severity
from monitor.core.results import Outcome
from monitor.detect.stats import DecayingHistogram, WindowHistogram


class Sample(NamedTuple):
    """One probe, as a window's samples read back (the outcome by its string value). Windows
    keep their samples packed in Buckets, not as these: CPython's garbage collector stops
    tracking only exact tuples, so a NamedTuple kept per sample would lengthen every
    collection."""

    at: float
    outcome: str  # an Outcome value; Outcome members compare equal to it
    latency: float | None  # None unless the probe got a complete answer, timed trustworthily
    reason: str = ""


class AlertStatus(enum.StrEnum):
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True, slots=True)
class AlertState:
    status: AlertStatus
    since: float  # condition true since
    fired_at: float | None = None
    clear_since: float | None = None  # while firing: condition clear since
    severity: Severity = Severity.WARNING
    summary: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


NO_COUNTS: Mapping[str, int] = MappingProxyType({})
# The alerts of a series with none, shared: most series of a fleet (an empty dict each was
# 64 bytes a series).
NO_ALERTS: Mapping[str, AlertState] = MappingProxyType({})

# A series' samples are kept in buckets of consecutive probes, at most this long and this
# many: recording a probe copies the newest bucket and the tuple of buckets, never the window.
# Five minutes: at a 60 s interval a bucket holds five probes, so a window of 15 minutes is
# four objects, not sixteen (a bucket costs ~110 bytes besides its samples' 17 each).
BUCKET_SECONDS = 300.0
BUCKET_SAMPLES = 64

# A packed sample: its time, its latency (NaN: none) and its outcome's code.
_RECORD = struct.Struct("<ddB")
_SIZE = _RECORD.size
_AT = struct.Struct("<d")
_OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)
_CODES: dict[str, int] = {value: code for code, value in enumerate(_OUTCOMES)}
_OK_CODE = bytes([_CODES[Outcome.OK.value]])


class Bucket:
    """Consecutive samples of one series, packed: 17 bytes each in one bytes object (time,
    latency, outcome) and their reasons only if one is not empty. A tuple of Sample tuples
    cost ~170 bytes a sample and four objects for the garbage collector to walk. Immutable;
    reads back as Samples (len, index, iteration) for the rules' texts, the status page and
    the state file; the detector's per-probe path reads times and outcomes in place."""

    __slots__ = ("data", "reasons")

    def __init__(self, data: bytes, reasons: tuple[str, ...] | None = None) -> None:
        self.data = data  # _RECORD per sample, oldest first
        self.reasons = reasons  # one per sample; None: every reason empty

    @classmethod
    def of(cls, samples: Iterable[Sample]) -> Bucket:
        packed = tuple(samples)
        data = b"".join(_pack(s) for s in packed)
        reasons = tuple(s.reason for s in packed)
        return cls(data, reasons if any(reasons) else None)

    def __len__(self) -> int:
        return len(self.data) // _SIZE

    def __getitem__(self, index: int) -> Sample:
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError(index)
        at, latency, code = _RECORD.unpack_from(self.data, index * _SIZE)
        return Sample(
            at,
            _OUTCOMES[code],
            None if latency != latency else latency,  # NaN: no latency
            self.reasons[index] if self.reasons is not None else "",
        )

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.since(0))

    def since(self, offset: int) -> tuple[Sample, ...]:
        """The samples from the offset-th on."""
        packed = _RECORD.iter_unpack(self.data[offset * _SIZE :] if offset else self.data)
        # tuple.__new__: a NamedTuple's own __new__ is a Python function, twice as slow (a
        # save decodes every series' newest samples).
        if self.reasons is None:
            return tuple(
                [
                    _new_sample(Sample, (at, _OUTCOMES[code], None if v != v else v, ""))
                    for at, v, code in packed
                ]
            )
        return tuple(
            [
                _new_sample(Sample, (at, _OUTCOMES[code], None if v != v else v, reason))
                for (at, v, code), reason in zip(packed, self.reasons[offset:], strict=True)
            ]
        )

    def records(self, offset: int) -> bytes | None:
        """The samples from the offset-th on as their packed records (_RECORD, oldest first),
        if none of them has a reason (None otherwise): what the state file stores of them,
        without decoding one (Bucket.of_records reads it back)."""
        reasons = self.reasons
        if reasons is not None and any(reasons[offset:]):
            return None
        return self.data[offset * _SIZE :] if offset else self.data

    @classmethod
    def of_records(cls, data: bytes) -> Bucket:
        """The samples of `records`' bytes, reasons empty (ValueError: not whole records)."""
        if not isinstance(data, bytes) or len(data) % _SIZE:
            raise ValueError(f"packed samples of {len(data)} bytes, not records of {_SIZE}")
        return cls(data)

    def times(self) -> tuple[float, ...]:
        """Every sample's time, oldest first, in one step (a save's scan for its new ones)."""
        count = len(self.data) // _SIZE
        return _times(count).unpack(self.data) if count else ()

    def last_at(self) -> float:
        """The time of the newest sample (a bucket is never empty)."""
        at: float = _AT.unpack_from(self.data, len(self.data) - _SIZE)[0]
        return at

    def at(self, index: int) -> float:
        """The time of the index-th sample (>= 0), without decoding the rest."""
        at: float = _AT.unpack_from(self.data, index * _SIZE)[0]
        return at

    def all_ok_since(self, offset: int) -> bool:
        """Whether every sample from the offset-th on is ok (their outcome codes read in
        place, one slice: a save asks it of every series it may leave for later)."""
        codes = self.data[offset * _SIZE + _SIZE - 1 :: _SIZE]
        return not codes.strip(_OK_CODE)

    def outcome(self, index: int) -> str:
        """The outcome of the index-th sample (>= 0), without decoding the rest."""
        return _OUTCOMES[self.data[index * _SIZE + _SIZE - 1]]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bucket):
            return NotImplemented
        return self.data == other.data and self.reasons == other.reasons

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Bucket({list(self)!r})"


_new_sample = tuple.__new__


@functools.lru_cache(maxsize=2 * BUCKET_SAMPLES)
def _times(count: int) -> struct.Struct:
    """Reads the times of `count` packed records, skipping their latencies and outcomes (a
    bucket holds at most BUCKET_SAMPLES: a few dozen of these)."""
    return struct.Struct("<" + "d9x" * count)


def _pack(sample: Sample) -> bytes:
    latency = math.nan if sample.latency is None else sample.latency
    return _RECORD.pack(sample.at, latency, _CODES[sample.outcome])


class Tally(NamedTuple):
    """The running evidence of one window length, (now - length, now]: how many probes, how
    many of each outcome, and (for a window a latency rule reads) their trusted latencies.
    A probe adds itself and subtracts the samples that left, so no rule reads the samples.
    A NamedTuple, immutable like the state that holds it: one is built per window per probe,
    and a tuple is built in C."""

    length: float
    cursor: int  # sequence number of the oldest sample still inside
    probes: int = 0
    counts: Mapping[str, int] = NO_COUNTS  # outcome value → probes, > 0; never mutated
    latencies: WindowHistogram | None = None  # None: no latency rule reads this window

    def count(self, outcome: str) -> int:
        return self.counts.get(outcome, 0)


# weakref_slot: so a test can show that nothing (a save, a cache) keeps a state alive once
# its series has moved on; 8 bytes a series.
@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class SeriesState:
    # The samples of the longest window (and a few older ones at the front of the first
    # bucket), oldest first, in buckets; `starts` holds each bucket's first sequence number.
    buckets: tuple[Bucket, ...] = ()
    starts: tuple[int, ...] = ()
    # One per window length the rules read, longest first (the longest's cursor is where the
    # series' memory starts). Derived: empty after a restore or a change of rules, rebuilt
    # from the samples at the next probe.
    tallies: tuple[Tally, ...] = ()
    empty_streak: int = 0
    failure_streak: int = 0
    ok_streak: int = 0
    baseline: DecayingHistogram = DecayingHistogram()
    # Samples join the baseline only once they leave the short window, and only if drift was
    # not suspected meanwhile: a slowdown is judged before it can become the new normal.
    learned_until: float = 0.0
    # The slow-burn error-rate rule stays quiet until the outage a faster rule paged for has
    # left its (longer) window, so recovering from one outage does not page a second time.
    slow_burn_quiet_until: float = 0.0
    # p95 of the short window as of the last probe (the recmon_latency_p95_seconds gauge).
    window_p95: float | None = None
    # rule id ("empty_results", "error_rate:timeout", ...) → state; absent = inactive.
    alerts: Mapping[str, AlertState] = field(default_factory=lambda: NO_ALERTS)

    @classmethod
    def from_samples(cls, samples: Iterable[Sample], **fields: Any) -> SeriesState:
        """A state holding `samples` (oldest first), bucketed as the detector buckets them."""
        buckets: tuple[Bucket, ...] = ()
        starts: tuple[int, ...] = ()
        for sample in samples:
            buckets, starts = appended(buckets, starts, sample)
        return cls(buckets=buckets, starts=starts, **fields)

    @property
    def head(self) -> int:
        """Sequence number of the oldest sample the series remembers."""
        if self.tallies:
            return self.tallies[0].cursor
        return self.starts[0] if self.starts else 0

    @property
    def end(self) -> int:
        """Sequence number the next sample gets."""
        return self.starts[-1] + len(self.buckets[-1]) if self.buckets else 0

    @property
    def samples(self) -> tuple[Sample, ...]:
        """Every remembered sample, oldest first (a copy: for the status page and the state
        file, not for every probe)."""
        return self.since(self.head)

    def window(self, since: float) -> list[Sample]:
        """The remembered samples newer than `since` (a time), oldest first (the status page's
        shares over a rule's window; not for every probe)."""
        return [s for s in self.samples if s.at > since]

    def since(self, seq: int) -> tuple[Sample, ...]:
        """The samples from sequence number `seq` on, oldest first."""
        if not self.buckets or seq >= self.end:
            return ()
        at = max(0, bisect.bisect_right(self.starts, seq) - 1)
        first = self.buckets[at].since(max(0, seq - self.starts[at]))
        return tuple(itertools.chain(first, *(b.since(0) for b in self.buckets[at + 1 :])))

    def __eq__(self, other: object) -> bool:
        """The same memory: the same samples remembered and the same scalars. How samples
        are bucketed and the tallies (derived, rebuilt after a restore) are not compared."""
        if not isinstance(other, SeriesState):
            return NotImplemented
        return self._memory() == other._memory()

    __hash__ = object.__hash__

    def _memory(self) -> tuple[Any, ...]:
        return (
            self.samples,
            self.empty_streak,
            self.failure_streak,
            self.ok_streak,
            self.baseline,
            self.learned_until,
            self.slow_burn_quiet_until,
            self.window_p95,
            self.alerts,
        )

    @property
    def first(self) -> Sample | None:
        """The oldest sample remembered."""
        head = self.head
        if not self.buckets or head >= self.end:
            return None
        at = bisect.bisect_right(self.starts, head) - 1
        return self.buckets[at][head - self.starts[at]]

    @property
    def last(self) -> Sample | None:
        return self.buckets[-1][-1] if self.buckets else None

    def firing(self) -> dict[str, AlertState]:
        return {k: a for k, a in self.alerts.items() if a.status is AlertStatus.FIRING}

    def tally(self, length: float) -> Tally | None:
        for tally in self.tallies:
            if tally.length == length:
                return tally
        return None


# SeriesState's fields set directly (its slots' descriptors): the frozen __init__ calls
# object.__setattr__ by name for each of eleven fields, ~0.7 us more on every probe.
_SET_SERIES = tuple(getattr(SeriesState, name).__set__ for name in SeriesState.__match_args__)
_new = object.__new__


def series_state(
    buckets: tuple[Bucket, ...],
    starts: tuple[int, ...],
    tallies: tuple[Tally, ...],
    empty_streak: int,
    failure_streak: int,
    ok_streak: int,
    baseline: DecayingHistogram,
    learned_until: float,
    slow_burn_quiet_until: float,
    window_p95: float | None,
    alerts: Mapping[str, AlertState],
) -> SeriesState:
    """SeriesState(...), every field given in order (the detector builds one per probe)."""
    state: SeriesState = _new(SeriesState)
    (
        set_buckets,
        set_starts,
        set_tallies,
        set_empty,
        set_failure,
        set_ok,
        set_baseline,
        set_learned,
        set_quiet,
        set_p95,
        set_alerts,
    ) = _SET_SERIES
    set_buckets(state, buckets)
    set_starts(state, starts)
    set_tallies(state, tallies)
    set_empty(state, empty_streak)
    set_failure(state, failure_streak)
    set_ok(state, ok_streak)
    set_baseline(state, baseline)
    set_learned(state, learned_until)
    set_quiet(state, slow_burn_quiet_until)
    set_p95(state, window_p95)
    set_alerts(state, alerts)
    return state


def appended(
    buckets: tuple[Bucket, ...], starts: tuple[int, ...], sample: Sample
) -> tuple[tuple[Bucket, ...], tuple[int, ...]]:
    """The buckets with `sample` added at the end (a new bucket when the last is full)."""
    return appended_probe(buckets, starts, sample.at, sample.outcome, sample.latency, sample.reason)


def appended_probe(
    buckets: tuple[Bucket, ...],
    starts: tuple[int, ...],
    at: float,
    outcome: str,
    latency: float | None,
    reason: str,
) -> tuple[tuple[Bucket, ...], tuple[int, ...]]:
    """appended() of Sample(at, outcome, latency, reason), packed without building the Sample
    (the detector's step for every probe)."""
    record = _RECORD.pack(at, math.nan if latency is None else latency, _CODES[outcome])
    if buckets:
        last = buckets[-1]
        data = last.data
        size = len(data) // _SIZE
        full = size >= BUCKET_SAMPLES or at - _AT.unpack_from(data)[0] >= BUCKET_SECONDS
        # Never two buckets starting at one time: a bucket is a row keyed by its first time.
        if not full or at <= _AT.unpack_from(data, (size - 1) * _SIZE)[0]:
            reasons = last.reasons
            if reasons is not None or reason:
                reasons = (*(reasons or ("",) * size), reason)
            return (*buckets[:-1], Bucket(data + record, reasons)), starts
        return (*buckets, Bucket(record, (reason,) if reason else None)), (
            *starts,
            starts[-1] + size,
        )
    return (Bucket(record, (reason,) if reason else None),), (0,)


# A packed sample as read back in place: (time, latency (NaN: none), outcome code).
Record = tuple[float, float, int]
# The outcome values by code, for a Record's third field.
OUTCOME_OF_CODE = _OUTCOMES


def leaving(
    buckets: tuple[Bucket, ...], starts: tuple[int, ...], end: int, cursor: int, since: float
) -> list[Record]:
    """The records from sequence number `cursor` on that are not after `since` (a time):
    those leaving a window (usually none or one), read in place without building Samples."""
    if cursor >= end:
        return []
    at = bisect.bisect_right(starts, cursor) - 1
    data = buckets[at].data
    position = (cursor - starts[at]) * _SIZE
    unpack = _RECORD.unpack_from
    record: Record = unpack(data, position)
    if record[0] > since:
        return []  # the oldest is still inside: nothing leaves
    left = [record]
    # The next ones read in place, bucket after bucket (no slice of the buckets' tuple).
    position += _SIZE
    size = len(data)
    last = len(buckets) - 1
    while True:
        if position >= size:
            if at == last:
                return left
            at += 1
            data = buckets[at].data
            size, position = len(data), 0
        record = unpack(data, position)
        if record[0] > since:
            return left
        left.append(record)
        position += _SIZE


def dropped_before(
    buckets: tuple[Bucket, ...], starts: tuple[int, ...], seq: int
) -> tuple[tuple[Bucket, ...], tuple[int, ...]]:
    """The buckets without those whose samples all come before sequence number `seq`."""
    keep = 0
    while keep + 1 < len(starts) and starts[keep + 1] <= seq:
        keep += 1
    if not keep:
        return buckets, starts
    return buckets[keep:], starts[keep:]


class EventKind(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A detector's verdict: an alert of one series started or stopped firing."""

    kind: EventKind
    rule: str  # empty_results, failures, error_rate, latency_drift, latency_slo, tls_*
    tenant: str | None
    check: str | None
    severity: Severity
    started_at: float  # when it fired
    at: float
    summary: str
    variant: str = ""  # error_rate: the outcome; tls: the host
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Stable identity of the alert: the PagerDuty dedup_key, the outbox's grouping."""
        parts = ["recmon", self.rule, self.check or "-", self.tenant or "-"]
        if self.variant:
            parts.append(self.variant)
        return "/".join(parts)
