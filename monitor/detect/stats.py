"""Latency statistics for detection: small-sample p95 bounds and a decaying baseline."""

from __future__ import annotations

import bisect
import itertools
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist


def p95_nearest_rank(values: Sequence[float]) -> float | None:
    """The plain p95 of a window (nearest-rank), for dashboards."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


@lru_cache(maxsize=4096)
def lower_bound_rank(n: int, confidence: float, quantile: float = 0.95) -> int:
    """The largest k such that the k-th smallest of n samples lies at or below the true
    quantile with at least `confidence` probability (a distribution-free bound).

    For p95 at 99%: n=3 → 2, n=5 → 3 (the median), n=20 → 16. A single slow outlier in a
    small window can therefore never carry the bound above the threshold.
    """
    # P(X_(k) <= q) = P(Binomial(n, quantile) >= k)
    best = 1
    tail = 0.0
    for count in range(n, 0, -1):
        tail += math.comb(n, count) * quantile**count * (1 - quantile) ** (n - count)
        if tail >= confidence:
            best = count
            break
    return best


def p95_lower_bound(values: Sequence[float], confidence: float) -> float | None:
    """A value the window's true p95 exceeds with probability ≥ confidence."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[lower_bound_rank(len(ordered), confidence) - 1]


# Baseline histogram: log-spaced buckets, 5% wide, from 1 ms up.
_BUCKET_BASE = 1.05
_BUCKET_FLOOR_S = 0.001
_PRUNE_BELOW = 1e-4


def _bucket_of(seconds: float) -> int:
    if seconds <= _BUCKET_FLOOR_S:
        return 0
    return int(math.log(seconds / _BUCKET_FLOOR_S, _BUCKET_BASE)) + 1


def _bucket_upper(index: int) -> float:
    return _BUCKET_FLOOR_S * _BUCKET_BASE**index


# A baseline bucket packed: its index and its weight (at `updated_at`), 12 bytes.
_WEIGHT = struct.Struct("<id")
# Decay is kept as one number: a histogram's weights are stored multiplied by `scale`, the
# weight a sample added at `updated_at` carries, which doubles every half-life. Adding a sample
# thus touches one weight, not all of them (the quantiles do not depend on the scale). The
# weights are brought back to scale 1 when it passes this, or when one of them decays below
# _PRUNE_BELOW and is dropped, as an add always did.
_REBASE_FROM = 2.0**64


@dataclass(frozen=True, slots=True, eq=False)
class DecayingHistogram:
    """Latency distribution where each sample's weight halves every `half_life` seconds.

    A few dozen numbers per series, whatever the window: ten thousand tenants can keep a day
    of history without keeping a day of samples. Decay scales every weight alike, so the
    quantiles only change when a sample is added; p95 is computed then, once. The weights are
    packed in one bytes object (a tuple of pairs cost ~130 bytes a bucket); the occupied
    buckets' indexes are a tuple shared by every version until a new bucket is occupied.
    """

    indexes: tuple[int, ...] = ()  # occupied buckets, ascending
    scaled: bytes = b""  # a double per occupied bucket: its weight x `scale`
    updated_at: float = 0.0
    total: float = 0.0  # the weights' sum at `updated_at`
    p95: float | None = None
    scale: float = 1.0  # the weight a sample added at `updated_at` carries

    def __eq__(self, other: object) -> bool:
        """The same distribution at the same time: buckets, weights, total and p95 (not
        their scale, which a save and restore brings back to 1)."""
        if not isinstance(other, DecayingHistogram):
            return NotImplemented
        return (self.updated_at, self.total, self.p95, self.buckets) == (
            other.updated_at,
            other.total,
            other.p95,
            other.buckets,
        )

    def __hash__(self) -> int:
        return hash((self.updated_at, self.total, self.p95, self.buckets))

    @property
    def buckets(self) -> tuple[tuple[int, float], ...]:
        """(bucket index, weight at `updated_at`), ascending by index."""
        scale = self.scale
        weights = _doubles(len(self.indexes)).unpack(self.scaled)
        return tuple(zip(self.indexes, [weight / scale for weight in weights], strict=True))

    @property
    def packed(self) -> bytes:
        """The buckets packed, _WEIGHT each: the state file's layout (codec.baseline_row)."""
        return _packed(self.buckets)

    @property
    def weight(self) -> float:
        return self.total

    def add(self, seconds: float, now: float, half_life: float) -> DecayingHistogram:
        """This histogram decayed to `now`, buckets below _PRUNE_BELOW dropped, with one
        sample of `seconds` added."""
        return self.learned(((now, seconds),), half_life)

    def learned(
        self, samples: Iterable[tuple[float, float]], half_life: float
    ) -> DecayingHistogram:
        """This histogram with each (time, seconds) of `samples` added in turn, as add()
        would one at a time (the same floats), its p95 computed once. (The baseline learns
        the samples that left the drift window a few minutes' worth at a time: decay is one
        multiplication of the scale, a sample one weight's increment.)"""
        updated_at, scale, indexes = self.updated_at, self.scale, self.indexes
        weights = list(_doubles(len(indexes)).unpack(self.scaled))
        for now, seconds in samples:
            halvings = (now - updated_at) / half_life if now > updated_at else 0.0
            # The weight of a sample added now: at most 2**64 past the stored scale.
            grown = scale * 2.0 ** min(halvings, 64.0)
            if grown >= _REBASE_FROM or (weights and min(weights) < _PRUNE_BELOW * grown):
                factor = 0.5**halvings / scale  # to the weights at `now`, scale 1
                kept = [
                    (index, weight * factor)
                    for index, weight in zip(indexes, weights, strict=True)
                    if weight * factor >= _PRUNE_BELOW
                ]
                indexes = tuple([index for index, _ in kept])
                weights = [weight for _, weight in kept]
                grown = 1.0
            scale = grown
            if now > updated_at:
                updated_at = now
            index = _bucket_of(seconds)
            at = bisect.bisect_left(indexes, index)
            if at < len(indexes) and indexes[at] == index:
                weights[at] += grown
            else:
                indexes = (*indexes[:at], index, *indexes[at:])
                weights.insert(at, grown)
        if not indexes:
            return self
        # The total and p95 of the weights at `updated_at`, as restore() computes them from
        # the state file's (the same floats: a saved and restored baseline is equal to it).
        # p95: the first bucket whose running weight reaches 95% (_quantile's sums, in C).
        running = list(itertools.accumulate([weight / scale for weight in weights]))
        total = running[-1]
        top = bisect.bisect_left(running, 0.95 * total)
        return _decaying(
            indexes,
            _doubles(len(indexes)).pack(*weights),
            updated_at,
            total,
            _bucket_value(indexes[top]) if top < len(indexes) else _bucket_upper(indexes[-1]),
            scale,
        )

    def quantile(self, q: float) -> float | None:
        if q == 0.95:
            return self.p95
        return _quantile(self.buckets, self.total, q)

    @classmethod
    def restore(
        cls, buckets: tuple[tuple[int, float], ...], updated_at: float
    ) -> DecayingHistogram:
        # Summed in order, as learned() does (sum() of floats is compensated from 3.12 on).
        total = 0.0
        for _, weight in buckets:
            total += weight
        indexes = tuple(index for index, _ in buckets)
        scaled = _doubles(len(buckets)).pack(*[weight for _, weight in buckets])
        return cls(indexes, scaled, updated_at, total, _quantile(buckets, total, 0.95))


# The histograms' fields set directly (their slots' descriptors), not by the frozen
# __init__'s object.__setattr__ per field: one of each is built for most probes.
_new = object.__new__
_SET_DECAYING = tuple(
    getattr(DecayingHistogram, name).__set__ for name in DecayingHistogram.__match_args__
)


def _decaying(
    indexes: tuple[int, ...],
    scaled: bytes,
    updated_at: float,
    total: float,
    p95: float | None,
    scale: float,
) -> DecayingHistogram:
    """DecayingHistogram(indexes, scaled, updated_at, total, p95, scale)."""
    histogram: DecayingHistogram = _new(DecayingHistogram)
    set_indexes, set_scaled, set_updated_at, set_total, set_p95, set_scale = _SET_DECAYING
    set_indexes(histogram, indexes)
    set_scaled(histogram, scaled)
    set_updated_at(histogram, updated_at)
    set_total(histogram, total)
    set_p95(histogram, p95)
    set_scale(histogram, scale)
    return histogram


@lru_cache(maxsize=512)
def _doubles(count: int) -> struct.Struct:
    """The struct of `count` packed weights ("<" packs no padding)."""
    return struct.Struct(f"<{count}d")


def _packed(buckets: tuple[tuple[int, float], ...]) -> bytes:
    return b"".join(_WEIGHT.pack(index, weight) for index, weight in buckets)


def _quantile(buckets: tuple[tuple[int, float], ...], total: float, q: float) -> float | None:
    if total <= 0:
        return None
    target = q * total
    running = 0.0
    for index, weight in buckets:
        running += weight
        if running >= target:
            return _bucket_value(index)
    return _bucket_upper(buckets[-1][0])


def _bucket_value(index: int) -> float:
    # Geometric middle of the bucket: within 2.5% of any value in it.
    return _bucket_upper(index) / math.sqrt(_BUCKET_BASE) if index else _BUCKET_FLOOR_S


# Window histogram: log-spaced buckets 1% wide from 1 µs up, so any reported order statistic
# is within 0.5% of the sample it stands for (docs/CONFIGURATION.md, "latency_drift").
_WINDOW_BASE = 1.01
_WINDOW_FLOOR_S = 1e-6
_LOG_WINDOW_BASE = math.log(_WINDOW_BASE)
WINDOW_RELATIVE_ERROR = math.sqrt(_WINDOW_BASE) - 1  # < 0.5%
WINDOW_ABSOLUTE_ERROR_S = _WINDOW_FLOOR_S  # for latencies at or below the floor


# The bucket numbers up to a day (~2,900): one int object each, shared by every window that
# holds one (a 60 ms latency is bucket ~1,100, past CPython's cached small ints: 28 bytes an
# occupied bucket in every series' window otherwise).
_INDEXES = tuple(range(3_000))


def window_bucket(seconds: float) -> int:
    """Bucket i > 0 holds (floor·1.01^(i-1), floor·1.01^i]; bucket 0 everything at or below
    the floor."""
    if seconds <= _WINDOW_FLOOR_S:
        return 0
    index = max(1, math.ceil(math.log(seconds / _WINDOW_FLOOR_S) / _LOG_WINDOW_BASE))
    return _INDEXES[index] if index < len(_INDEXES) else index


def _window_value(index: int) -> float:
    # The geometric middle of the bucket: within a factor sqrt(1.01) of every value in it.
    return _WINDOW_FLOOR_S * _WINDOW_BASE ** (index - 0.5) if index else _WINDOW_FLOOR_S


@dataclass(frozen=True, slots=True)
class WindowHistogram:
    """The trusted latencies of a sliding window, counted in 1%-wide log buckets: a sample
    joins and leaves in O(occupied buckets) (a bounded number, whatever the window), and a
    rank's value is read without sorting anything. Latencies leave as well as join, which a
    merge-only sketch (DDSketch) does not support."""

    indexes: tuple[int, ...] = ()  # occupied buckets, ascending
    counts: tuple[int, ...] = ()  # samples in each
    total: int = 0

    def added(self, index: int) -> WindowHistogram:
        indexes, counts = self.indexes, self.counts
        at = bisect.bisect_left(indexes, index)
        if at < len(indexes) and indexes[at] == index:
            counts = (*counts[:at], counts[at] + 1, *counts[at + 1 :])
        else:
            indexes = (*indexes[:at], index, *indexes[at:])
            counts = (*counts[:at], 1, *counts[at:])
        return WindowHistogram(indexes, counts, self.total + 1)

    def moved(self, joining: Sequence[int], leaving: Sequence[int]) -> WindowHistogram:
        """added() for each of `joining`, then removed() for each of `leaving`, as one new
        histogram (a probe's usual step: one latency in, one out; one object, not two)."""
        indexes, counts = list(self.indexes), list(self.counts)
        for index in joining:
            at = bisect.bisect_left(indexes, index)
            if at < len(indexes) and indexes[at] == index:
                counts[at] += 1
            else:
                indexes.insert(at, index)
                counts.insert(at, 1)
        for index in leaving:
            at = bisect.bisect_left(indexes, index)
            if at == len(indexes) or indexes[at] != index:
                raise ValueError(f"latency bucket {index} is not in the window")
            if counts[at] > 1:
                counts[at] -= 1
            else:
                del indexes[at], counts[at]
        moved: WindowHistogram = _new(WindowHistogram)
        set_indexes, set_counts, set_total = _SET_WINDOW
        set_indexes(moved, tuple(indexes))
        set_counts(moved, tuple(counts))
        set_total(moved, self.total + len(joining) - len(leaving))
        return moved

    def removed(self, index: int) -> WindowHistogram:
        indexes, counts = self.indexes, self.counts
        at = bisect.bisect_left(indexes, index)
        if at == len(indexes) or indexes[at] != index:
            raise ValueError(f"latency bucket {index} is not in the window")
        if counts[at] > 1:
            counts = (*counts[:at], counts[at] - 1, *counts[at + 1 :])
        else:
            indexes = (*indexes[:at], *indexes[at + 1 :])
            counts = (*counts[:at], *counts[at + 1 :])
        return WindowHistogram(indexes, counts, self.total - 1)

    def ranked(self, rank: int) -> float:
        """The value of the rank-th smallest sample (0-based), within the stated error."""
        if not 0 <= rank < self.total:
            raise IndexError(rank)
        counts = self.counts
        # Quantiles read here are high (p95 and its lower bound): count from the top.
        above = self.total - 1 - rank  # samples larger than the one asked for
        seen = 0
        for at in range(len(counts) - 1, -1, -1):
            seen += counts[at]
            if seen > above:
                return _window_value(self.indexes[at])
        raise AssertionError("unreachable: counts sum to total")

    def p95(self) -> float | None:
        """Nearest-rank p95, as p95_nearest_rank gives it for the raw samples."""
        if not self.total:
            return None
        return self.ranked(max(0, math.ceil(0.95 * self.total) - 1))

    def p95_lower_bound(self, confidence: float) -> float | None:
        """As p95_lower_bound gives it for the raw samples."""
        if not self.total:
            return None
        return self.ranked(lower_bound_rank(self.total, confidence) - 1)


# WindowHistogram's fields set directly, as DecayingHistogram's (one is built most probes).
_SET_WINDOW = tuple(
    getattr(WindowHistogram, name).__set__ for name in WindowHistogram.__match_args__
)


def wilson_lower(bad: int, n: int, confidence: float) -> float:
    """The lower bound of the share bad/n at one-sided `confidence` (Wilson score)."""
    return wilson(bad, n, _normal_quantile(confidence))


@lru_cache(maxsize=16)
def _normal_quantile(confidence: float) -> float:
    # Asked on every probe of a series whose share is above the threshold: computed once.
    return NormalDist().inv_cdf(confidence)


def wilson(bad: int, n: int, z: float) -> float:
    """The Wilson score lower bound of bad/n at normal quantile z."""
    if n == 0:
        return 0.0
    p = bad / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - margin) / (1 + z * z / n))
