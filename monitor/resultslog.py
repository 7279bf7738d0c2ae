"""`--results-log FILE`: every probe result as one JSON line, for audits and benchmarks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from monitor.results import ProbeResult


class ResultsLog:
    def __init__(self, path: str | Path) -> None:
        # Buffered: thousands of lines a second cost one write call per 64 KiB.
        self._file: TextIO = Path(path).open("a", encoding="utf-8", buffering=64 * 1024)  # noqa: SIM115 - open for the process's life

    def write(self, result: ProbeResult) -> None:
        entry = {
            "tenant": result.tenant,
            "check": result.check,
            "outcome": result.outcome.value,
            "duration_s": round(result.duration_s, 6),
            "started_at": round(result.started_at, 3),
            "status": result.status,
            "items": result.items,
            "reason": result.reason,
            "trusted": result.latency_trusted,
        }
        self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._file.close()
