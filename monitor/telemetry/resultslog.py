"""`--results-log FILE`: every probe result as one JSON line, for audits and benchmarks."""

from __future__ import annotations

import asyncio
from json.encoder import encode_basestring_ascii as _string
from pathlib import Path
from typing import TextIO

from monitor.core.results import ProbeResult

# On the event loop, results written within this long go to the file in one write call.
FLUSH_AFTER_S = 0.1


class ResultsLog:
    def __init__(self, path: str | Path) -> None:
        # Flushed FLUSH_AFTER_S after the first result not yet in the file: `tail -f` sees each
        # result within a tenth of a second (64 KiB blocks arrived minutes apart at 20
        # tenants), and a busy monitor makes one write call for many results. Line-buffered,
        # a write call a probe was 2-3% of recmon's CPU in the benchmark (py-spy --gil).
        self._file: TextIO = Path(path).open("a", encoding="utf-8")  # noqa: SIM115 - open for the process's life
        self._flush_due = False
        # Results not yet in the file, formatted and written together when flushed: one
        # write call, and the formatting run back to back, not between each probe's HTTP
        # and detector code (~10 us a probe in the running process, py-spy --gil, against ~6
        # in a tight loop).
        self._pending: list[ProbeResult] = []

    def write(self, result: ProbeResult) -> None:
        self._pending.append(result)  # frozen: the line is the same formatted later
        if self._flush_due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop to flush later: now
            self._flush()
            return
        self._flush_due = True
        loop.call_later(FLUSH_AFTER_S, self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        if not self._file.closed:
            results, self._pending = self._pending, []
            self._file.write("".join(map(_line, results)))
            self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._flush()
        self._file.close()


def _line(result: ProbeResult) -> str:
    # Written by hand, strings escaped by json's own encoder: json.dumps of a dict was a
    # measurable share of a probe's CPU in the benchmark, which logs every probe.
    return (
        f'{{"tenant":{_string(result.tenant)},"check":{_string(result.check)},'
        f'"outcome":"{result.outcome.value}","duration_s":{round(result.duration_s, 6)!r},'
        f'"started_at":{round(result.started_at, 3)!r},"status":{_number(result.status)},'
        f'"items":{_number(result.items)},"reason":{_string(result.reason)},'
        f'"trusted":{"true" if result.latency_trusted else "false"}}}\n'
    )


def _number(value: int | None) -> str:
    return "null" if value is None else str(value)
