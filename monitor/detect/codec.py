"""The detector's state to JSON and back (the state file stores it opaque), its rows of
samples and its baseline packed (samples_row, baseline_row). Unknown or broken entries raise
ValueError."""

from __future__ import annotations

import bisect
import json
import struct
from collections.abc import Iterable
from json.encoder import encode_basestring_ascii as _string
from typing import Any

from monitor.core.notifications import Severity
from monitor.core.results import Outcome
from monitor.detect.series import (
    AlertEvent,
    AlertState,
    AlertStatus,
    Bucket,
    EventKind,
    Sample,
    SeriesState,
)
from monitor.detect.stats import DecayingHistogram


def series_to_json(state: SeriesState) -> dict[str, Any]:
    """The whole state in one document (series_head_to_json with the samples as "s")."""
    return {"s": [sample_to_json(s) for s in state.samples], **series_head_to_json(state)}


def series_head_to_json(state: SeriesState) -> dict[str, Any]:
    """Everything but the samples, which the state file keeps as rows of their own, a row per
    bucket (bucket_to_json): a save writes the buckets changed since the last one."""
    return {**series_core_to_json(state), **baseline_to_json(state)}


def series_core_to_json(state: SeriesState) -> dict[str, Any]:
    """The head without the baseline: a few numbers, and the alerts."""
    first = state.first
    return {
        # The oldest sample remembered: a stored bucket may start before it (rows are whole
        # buckets); older samples in it are not read back.
        "from": None if first is None else first.at,
        "streaks": [state.empty_streak, state.failure_streak, state.ok_streak],
        "quiet_until": state.slow_burn_quiet_until,
        "p95": state.window_p95,
        "alerts": {k: alert_to_json(a) for k, a in state.alerts.items()},
    }


# The state file's JSON, compact: what every text below must equal.
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def series_core_text(state: SeriesState) -> str:
    """_dumps(series_core_to_json(state)), the same text built by hand: a save encodes every
    probed series' head, and json's encoder (a dict built, then walked) was a third of a
    save's CPU at 10,000 tenants."""
    head = state.head
    buckets = state.buckets
    first = "null"
    if buckets and head < state.end:
        at = bisect.bisect_right(state.starts, head) - 1
        first = _number(buckets[at].at(head - state.starts[at]))
    alerts = state.alerts
    # The streaks are ints (counts): formatted as such, not through _number's checks.
    return (
        f'{{"from":{first},"streaks":[{state.empty_streak:d},'
        f"{state.failure_streak:d},{state.ok_streak:d}],"
        f'"quiet_until":{_number(state.slow_burn_quiet_until)},'
        f'"p95":{_number(state.window_p95)},"alerts":'
        f"{_dumps({k: alert_to_json(a) for k, a in alerts.items()}) if alerts else '{}'}}}"
    )


def samples_text(samples: Iterable[Sample]) -> str:
    """_dumps(bucket_to_json(samples)), built by hand (see series_core_text): a save writes a
    row of each probed series' new samples."""
    rows = []
    for at, outcome, latency, reason in samples:
        if at - at != 0.0 or (latency is not None and latency - latency != 0.0):
            return _dumps(bucket_to_json(samples))  # not finite: json's own spelling
        rows.append(
            f"[{at!r},{_string(outcome)},{'null' if latency is None else repr(latency)},"
            f"{_string(reason)}]"
        )
    return '{"b":[' + ",".join(rows) + "]}"


def samples_row(bucket: Bucket, offset: int) -> str | bytes:
    """A state-file row of the bucket's samples from the offset-th on: their packed records
    (Bucket.records, 17 bytes a sample, read back by Bucket.of_records) when none has a
    reason, their JSON text (samples_text) otherwise. Packed: a save copies bytes, where
    decoding each new sample and writing its text was a fifth of a save's CPU at 10,000
    tenants, and the row is a third of the text's size."""
    records = bucket.records(offset)
    if records is not None:
        return records
    return samples_text(bucket.since(offset))


def baseline_text(state: SeriesState) -> str:
    """_dumps(baseline_to_json(state)), built by hand (see series_core_text)."""
    baseline = state.baseline
    return (
        f'{{"b":[{_number(baseline.updated_at)},['
        + ",".join([f"[{_number(i)},{_number(w)}]" for i, w in baseline.buckets])
        + f']],"learned_until":{_number(state.learned_until)}}}'
    )


# A packed baseline (baseline_row): its time and how far it has learned, then a bucket per
# occupied latency bucket, its index and weight (DecayingHistogram.packed's layout, which
# tests/state/test_texts.py holds to this one).
_BASELINE_HEAD = struct.Struct("<dd")
_BASELINE_BUCKET = struct.Struct("<id")


def baseline_row(state: SeriesState) -> bytes:
    """What baseline_to_json holds, packed: the state file's detail row. A save writes every
    series' baseline every few minutes; its text (a pair of numbers a bucket) took ~20 us a
    series, this copies bytes and is half the size."""
    baseline = state.baseline
    return _BASELINE_HEAD.pack(baseline.updated_at, state.learned_until) + baseline.packed


def _baseline_from_row(row: bytes) -> dict[str, Any]:
    """baseline_to_json of the state a baseline_row was packed from."""
    if len(row) < _BASELINE_HEAD.size or (len(row) - _BASELINE_HEAD.size) % _BASELINE_BUCKET.size:
        raise ValueError(f"packed baseline of {len(row)} bytes")
    updated_at, learned_until = _BASELINE_HEAD.unpack_from(row)
    buckets = _BASELINE_BUCKET.iter_unpack(row[_BASELINE_HEAD.size :])
    return {"b": [updated_at, [list(bucket) for bucket in buckets]], "learned_until": learned_until}


def _number(value: object) -> str:
    """A number (or None) as json writes it."""
    if isinstance(value, float):
        if value - value == 0.0:  # finite: json writes its repr
            return float.__repr__(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        return int.__repr__(value)
    elif value is None:
        return "null"
    return _dumps(value)


def baseline_to_json(state: SeriesState) -> dict[str, Any]:
    """The learned baseline and how far it has learned: a pair, written and read together (a
    restored older pair learns again the samples after `learned_until` still in the window).
    Most of a head's bytes, and it changes with every sample learned."""
    return {
        "b": [state.baseline.updated_at, [[i, w] for i, w in state.baseline.buckets]],
        "learned_until": state.learned_until,
    }


def sample_to_json(sample: Sample) -> list[Any]:
    return [sample.at, sample.outcome, sample.latency, sample.reason]


def bucket_to_json(bucket: Iterable[Sample]) -> dict[str, Any]:
    """A state-file row: a bucket of consecutive samples (SeriesState.buckets). Rows written
    before buckets were one sample each, [at, outcome, latency, reason]: both are read."""
    return {"b": [sample_to_json(s) for s in bucket]}


def _rows_samples(rows: list[Any]) -> list[Any]:
    samples: list[Any] = []
    for row in rows:
        if isinstance(row, dict):
            samples.extend(row["b"])
        elif isinstance(row, bytes):
            samples.extend(Bucket.of_records(row))  # samples_row's packed records
        else:
            samples.append(row)
    return samples


def series_from_json(data: dict[str, Any]) -> SeriesState:
    return series_from_parts(data, None, [])


def series_from_parts(
    head: dict[str, Any], baseline: dict[str, Any] | bytes | None, samples: list[Any]
) -> SeriesState:
    """A state from its head, its baseline (baseline_to_json, or packed by baseline_row;
    None: in the head, as written before it had a place of its own) and its rows, oldest
    first: buckets (bucket_to_json, or packed by samples_row) or, as written before buckets,
    one sample each. A head that still carries its samples ("s", written before they had
    rows of their own) gives them first."""
    if baseline is not None:
        try:
            head = {
                **head,
                **(_baseline_from_row(baseline) if isinstance(baseline, bytes) else baseline),
            }
        except ValueError as exc:
            raise ValueError(f"unreadable series state: {exc}") from None
    try:
        rows = [*head.get("s", ()), *_rows_samples(samples)]
        first = head.get("from")
        if first is not None:
            first = float(first)
            rows = [row for row in rows if float(row[0]) >= first]
        empty, failure, ok = (int(v) for v in head["streaks"])
        updated_at, buckets = head["b"]
        return SeriesState.from_samples(
            (
                Sample(
                    float(at),
                    Outcome(outcome).value,
                    None if latency is None else float(latency),
                    str(reason),
                )
                for at, outcome, latency, reason in rows
            ),
            empty_streak=empty,
            failure_streak=failure,
            ok_streak=ok,
            baseline=DecayingHistogram.restore(
                tuple((int(i), float(w)) for i, w in buckets), float(updated_at)
            ),
            learned_until=float(head.get("learned_until", 0.0)),
            slow_burn_quiet_until=float(head.get("quiet_until", 0.0)),
            window_p95=None if head.get("p95") is None else float(head["p95"]),
            alerts={str(k): alert_from_json(v) for k, v in head["alerts"].items()},
        )
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"unreadable series state: {exc}") from None


def alert_to_json(alert: AlertState) -> dict[str, Any]:
    return {
        "status": alert.status.value,
        "since": alert.since,
        "fired_at": alert.fired_at,
        "clear_since": alert.clear_since,
        "severity": alert.severity.value,
        "summary": alert.summary,
        "details": dict(alert.details),
    }


def alert_from_json(data: dict[str, Any]) -> AlertState:
    return AlertState(
        status=AlertStatus(data["status"]),
        since=float(data["since"]),
        fired_at=None if data.get("fired_at") is None else float(data["fired_at"]),
        clear_since=None if data.get("clear_since") is None else float(data["clear_since"]),
        severity=Severity(data.get("severity", "warning")),
        summary=str(data.get("summary", "")),
        details=dict(data.get("details") or {}),
    )


def event_to_json(event: AlertEvent) -> dict[str, Any]:
    return {
        "kind": event.kind.value,
        "rule": event.rule,
        "tenant": event.tenant,
        "check": event.check,
        "severity": event.severity.value,
        "started_at": event.started_at,
        "at": event.at,
        "summary": event.summary,
        "variant": event.variant,
        "details": dict(event.details),
    }


def event_from_json(data: dict[str, Any]) -> AlertEvent:
    return AlertEvent(
        kind=EventKind(data["kind"]),
        rule=str(data["rule"]),
        tenant=data.get("tenant"),
        check=data.get("check"),
        severity=Severity(data["severity"]),
        started_at=float(data["started_at"]),
        at=float(data["at"]),
        summary=str(data["summary"]),
        variant=str(data.get("variant", "")),
        details=dict(data.get("details") or {}),
    )
