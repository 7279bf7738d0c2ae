"""The README's test command runs every test exactly once: its phases' mark expressions split
every combination of the suite's own marks between them."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

from _pytest.mark.expression import Expression

from tests.run import BACKGROUND, PHASES, _idle_priority

MARKS = ("timing", "alone", "background", "integration")


def _expression(options: list[str]) -> Expression:
    return Expression.compile(options[options.index("-m") + 1])


def test_every_combination_of_marks_runs_in_exactly_one_phase() -> None:
    phases = [_expression(options) for _, options, _ in (*PHASES, BACKGROUND)]
    for size in range(len(MARKS) + 1):
        for marks in itertools.combinations(MARKS, size):
            if "alone" in marks and "timing" not in marks:
                continue  # alone is a kind of timing test (pyproject's markers say so)
            if "background" in marks and "timing" in marks:
                continue  # a test that reads the clock is never background
            chosen = [p.evaluate(lambda name, /, m=marks, **_: name in m) for p in phases]
            assert chosen.count(True) == 1, (marks, chosen)


def test_a_process_started_as_the_background_phase_runs_at_idle_priority() -> None:
    """SCHED_IDLE, or the lowest nice where the kernel or a container refuses it."""
    started = subprocess.run(
        [sys.executable, "-c", "import os; print(os.sched_getscheduler(0), os.nice(0))"],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=_idle_priority,
    )
    policy, nice = map(int, started.stdout.split())
    assert policy == os.SCHED_IDLE or nice == 19, (policy, nice)
