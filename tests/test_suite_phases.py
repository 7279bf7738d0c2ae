"""The README's test command runs every test exactly once: its phases' mark expressions split
every combination of the suite's own marks between them."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

from _pytest.mark.expression import Expression

from tests.run import BACKGROUND, PHASES, _idle_priority, _still_defined

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


def test_the_durations_seed_lists_only_tests_that_still_exist() -> None:
    """The durations record merges every run's phases, so it keeps tests removed since:
    written out, only those still defined remain."""
    assert _still_defined(
        "tests/test_suite_phases.py::test_the_durations_seed_lists_only_tests_that_still_exist"
    )
    assert _still_defined(
        "tests/integration/test_reload.py::test_reload_on_change_and_sighup_keeps_last_good_config"
    )
    assert _still_defined("tests/test_cli.py::test_a_busy_port_is_one_line_and_exit_2[run]")
    assert not _still_defined("tests/integration/test_locations.py::test_three_locations_one")
    assert not _still_defined("tests/integration/test_gone.py::test_anything")
