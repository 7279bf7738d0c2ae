"""`--results-log`: one JSON object per probe, whatever the tenant, reason or numbers hold."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.results import Outcome, ProbeResult
from monitor.telemetry.resultslog import ResultsLog


@settings(max_examples=200)
@given(
    tenant=st.text(),
    reason=st.text(),
    outcome=st.sampled_from(list(Outcome)),
    duration=st.floats(0, 1e6, allow_nan=False),
    started=st.floats(0, 4e9, allow_nan=False),
    status=st.none() | st.integers(100, 599),
    items=st.none() | st.integers(0, 10**9),
    trusted=st.booleans(),
)
def test_every_line_is_the_json_of_the_result(
    tenant: str,
    reason: str,
    outcome: Outcome,
    duration: float,
    started: float,
    status: int | None,
    items: int | None,
    trusted: bool,
) -> None:
    result = ProbeResult(
        tenant=tenant,
        check="search",
        outcome=outcome,
        duration_s=duration,
        started_at=started,
        status=status,
        items=items,
        reason=reason,
        latency_trusted=trusted,
    )
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "results.jsonl"
        log = ResultsLog(path)
        log.write(result)
        log.write(result)
        log.close()
        lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0]) == {
        "tenant": tenant,
        "check": "search",
        "outcome": outcome.value,
        "duration_s": round(duration, 6),
        "started_at": round(started, 3),
        "status": status,
        "items": items,
        "reason": reason,
        "trusted": trusted,
    }


def test_each_line_is_readable_while_the_log_is_open(tmp_path: Path) -> None:
    """`tail -f` must see a result as it happens, not when a 64 KiB buffer fills or at exit."""
    path = tmp_path / "results.jsonl"
    log = ResultsLog(path)
    try:
        for n in range(3):
            log.write(
                ProbeResult(
                    tenant=f"t{n}",
                    check="search",
                    outcome=Outcome.OK,
                    duration_s=0.01,
                    started_at=1.0,
                )
            )
            lines = path.read_text(encoding="utf-8").splitlines()
            assert [json.loads(line)["tenant"] for line in lines] == [f"t{i}" for i in range(n + 1)]
    finally:
        log.close()


async def test_on_the_loop_results_reach_the_file_together_within_a_tenth_of_a_second(
    tmp_path: Path,
) -> None:
    import asyncio

    from monitor.telemetry.resultslog import FLUSH_AFTER_S

    path = tmp_path / "results.jsonl"
    log = ResultsLog(path)
    result = ProbeResult("t1", "search", Outcome.OK, 0.05, 1.0)
    log.write(result)
    log.write(result)
    assert path.read_text() == ""  # one write call for both, a moment later
    await asyncio.sleep(FLUSH_AFTER_S + 0.05)
    assert len(path.read_text().splitlines()) == 2
    log.write(result)
    log.close()  # whatever is still buffered goes at close
    assert len(path.read_text().splitlines()) == 3
