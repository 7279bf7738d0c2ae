"""The alert lifecycle every rule shares (pending → firing → resolving), and the detector's
hand-copied state update that must copy every field."""

from __future__ import annotations

import dataclasses

from monitor.core.notifications import Severity
from monitor.detect.detector import _with
from monitor.detect.lifecycle import Subject, Thresholds, Verdict, advance
from monitor.detect.series import (
    AlertState,
    AlertStatus,
    Bucket,
    EventKind,
    Sample,
    SeriesState,
    Tally,
    series_state,
)
from monitor.detect.stats import DecayingHistogram

SUBJECT = Subject("t1", "search")


def verdict(active: bool, clear: bool | None = None, text: str = "bad") -> Verdict:
    return Verdict(active, (not active) if clear is None else clear, lambda: (text, {"n": 1}))


def test_pending_fires_after_hold_and_resolves_after_release() -> None:
    alerts: dict[str, AlertState] = {}
    hold = Thresholds(hold=60, release=30)

    def step(at: float, v: Verdict) -> EventKind | None:
        event = advance(
            alerts,
            "latency_drift",
            v,
            severity=Severity.WARNING,
            now=at,
            subject=SUBJECT,
            thresholds=hold,
        )
        return None if event is None else event.kind

    assert step(0, verdict(True)) is None
    assert alerts["latency_drift"].status is AlertStatus.PENDING
    assert step(59, verdict(True)) is None
    assert step(60, verdict(True)) is EventKind.FIRING
    assert step(70, verdict(False)) is None  # resolving
    assert alerts["latency_drift"].clear_since == 70
    assert step(80, verdict(True)) is None  # firing again: the clear stretch starts over
    assert alerts["latency_drift"].clear_since is None
    assert step(90, verdict(False)) is None
    assert step(120, verdict(False)) is EventKind.RESOLVED
    assert alerts == {}


def test_a_pending_alert_that_stops_is_dropped_without_an_event() -> None:
    alerts: dict[str, AlertState] = {}
    kwargs = {"severity": Severity.WARNING, "subject": SUBJECT, "thresholds": Thresholds(60)}
    assert advance(alerts, "x", verdict(True), now=0, **kwargs) is None  # type: ignore[arg-type]
    assert advance(alerts, "x", verdict(False), now=10, **kwargs) is None  # type: ignore[arg-type]
    assert alerts == {}


def test_resolve_says_what_was_wrong_and_names_the_variant() -> None:
    alerts: dict[str, AlertState] = {}
    first = advance(
        alerts,
        "tls_invalid",
        verdict(True, text="expired"),
        severity=Severity.CRITICAL,
        now=0,
        subject=Subject(None, "tls"),
        variant="api:443",
    )
    assert first is not None and (first.variant, first.summary) == ("api:443", "expired")
    last = advance(
        alerts,
        "tls_invalid",
        verdict(False, text=""),
        severity=Severity.CRITICAL,
        now=5,
        subject=Subject(None, "tls"),
        variant="api:443",
    )
    assert last is not None and last.kind is EventKind.RESOLVED
    assert (last.summary, last.started_at, last.tenant) == ("resolved: expired", 0, None)


def test_with_copies_every_field_of_series_state() -> None:
    # A field added to SeriesState and forgotten in _with would be reset on every probe.
    values = {
        "buckets": (Bucket.of((Sample(1.0, "ok", 0.1),)),),
        "starts": (0,),
        "tallies": (Tally(300.0, 0, 1, {"ok": 1}),),
        "empty_streak": 1,
        "failure_streak": 2,
        "ok_streak": 3,
        "baseline": DecayingHistogram().add(0.1, 1.0, 3600.0),
        "learned_until": 4.0,
        "slow_burn_quiet_until": 5.0,
        "window_p95": 6.0,
        "alerts": {"x": AlertState(AlertStatus.FIRING, since=1.0)},
    }
    names = {f.name for f in dataclasses.fields(SeriesState)}
    assert names == set(values), "a SeriesState field without a value here: add it"
    state = SeriesState(**values)  # type: ignore[arg-type]
    assert _with(state) == state
    for name in names:  # tallies and bucketing too, which SeriesState's == leaves out
        assert getattr(_with(state), name) == values[name]
    # The detector's per-probe builder takes the fields in order, as the constructor does.
    built = series_state(*(values[name] for name in SeriesState.__match_args__))
    assert type(built) is SeriesState
    for name in names:
        assert getattr(built, name) is values[name]
