"""The backend tally: failures concentrated on some addresses of a target are a finding that
names them; failures spread over every address, or too few, are none; old buckets leave."""

from __future__ import annotations

from dataclasses import replace

from monitor.core.results import Outcome, ProbeResult
from monitor.detect.backends import BackendTally


def result(address: str, outcome: Outcome = Outcome.OK, *, via_proxy: bool = False) -> ProbeResult:
    return ProbeResult(
        "t1", "search", outcome, 0.05, 0.0, target="api", address=address, via_proxy=via_proxy
    )


def test_the_failures_are_told_by_kind() -> None:
    tally = BackendTally()
    for _ in range(5):
        tally.observe(result(A), 0.0)
    for _ in range(3):
        expired = ProbeResult(
            "t1",
            "search",
            Outcome.TLS_ERROR,
            0.01,
            0.0,
            tls_reason="expired",
            target="api",
            address=C,
        )
        tally.observe(expired, 0.0)
    tally.observe(replace(result(C, Outcome.HTTP_ERROR), status=503), 0.0)
    finding = tally.finding("api", "search", 0.0)
    assert finding is not None
    assert "10.0.0.3:443 (tls_error expired 3, http_error 503 1);" in finding.text


A, B, C = "10.0.0.1:443", "10.0.0.2:443", "10.0.0.3:443"


def feed(tally: BackendTally, now: float, counts: dict[str, tuple[int, int]]) -> None:
    for address, (ok, failed) in counts.items():
        for _ in range(ok):
            tally.observe(result(address), now)
        for _ in range(failed):
            tally.observe(result(address, Outcome.HTTP_ERROR), now)


def test_one_failing_backend_of_three_is_named() -> None:
    tally = BackendTally()
    feed(tally, 100.0, {A: (40, 0), B: (40, 0), C: (0, 41)})
    finding = tally.finding("api", "search", 100.0)
    assert finding is not None
    assert finding.failing == (C,) and finding.healthy == (A, B)
    assert finding.text == (
        "all 41 failures came from 10.0.0.3:443 (http_error 41); "
        "10.0.0.1:443 and 10.0.0.2:443 answered ok (80 probes)"
    )
    assert finding.details()["failures"] == 41


def test_mostly_concentrated_failures_say_how_many() -> None:
    tally = BackendTally()
    feed(tally, 100.0, {A: (40, 1), B: (40, 1), C: (2, 38)})
    finding = tally.finding("api", "search", 100.0)
    assert finding is not None
    assert finding.text.startswith("38 of 40 failures came from 10.0.0.3:443 (http_error 38);")


def test_failures_on_every_backend_or_too_few_are_no_finding() -> None:
    spread = BackendTally()
    feed(spread, 100.0, {A: (20, 20), B: (20, 20), C: (20, 20)})
    assert spread.finding("api", "search", 100.0) is None
    every = BackendTally()
    feed(every, 100.0, {A: (0, 20), B: (0, 20)})
    assert every.finding("api", "search", 100.0) is None  # no healthy address to contrast
    few = BackendTally()
    feed(few, 100.0, {A: (20, 0), C: (0, 2)})
    assert few.finding("api", "search", 100.0) is None
    single = BackendTally()
    feed(single, 100.0, {C: (0, 30)})
    assert single.finding("api", "search", 100.0) is None
    assert single.finding("other", "search", 100.0) is None


def test_proxied_or_unnamed_results_are_not_counted() -> None:
    tally = BackendTally()
    for _ in range(10):
        tally.observe(result(A, Outcome.HTTP_ERROR, via_proxy=True), 0.0)
        tally.observe(result("", Outcome.HTTP_ERROR), 0.0)
        tally.observe(result(B), 0.0)
    assert tally.finding("api", "search", 0.0) is None


def test_failures_leave_with_the_window() -> None:
    tally = BackendTally(window_s=300.0, bucket_s=30.0)
    feed(tally, 0.0, {A: (10, 0), C: (0, 10)})
    assert tally.finding("api", "search", 0.0) is not None
    feed(tally, 400.0, {A: (10, 0), C: (10, 0)})
    assert tally.finding("api", "search", 400.0) is None


def test_a_backend_failing_one_check_is_named_for_it_despite_answering_the_other() -> None:
    """127.0.0.3 fails every search but answers recommendations: counted per target alone, its
    failure share would be 20 in 50 and no finding; per check, it is the search cause."""
    tally = BackendTally()
    feed(tally, 100.0, {A: (20, 0), B: (20, 0), C: (0, 20)})
    for address in (A, B, C):
        for _ in range(30):
            tally.observe(replace(result(address), check="recommendations"), 100.0)
    finding = tally.finding("api", "search", 100.0)
    assert finding is not None and finding.failing == (C,)
    assert tally.finding("api", "recommendations", 100.0) is None
