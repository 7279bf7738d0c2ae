"""The floor under recmon's 1,000/s row: what a bare asyncio HTTP client costs on this machine.

The issue's bar puts recmon's CPU per probe at ≤ 0.3 of blackbox_exporter's. This measures how
much of that a Python asyncio client spends before it does anything a monitor does: two bare
clients, each its own process, send the 1,000/s row's requests (5,000 tenants × search and
recommendations every 10 s, launched every 10 ms in batches, as recmon's scheduler does) to the
same sandbox over keep-alive connections, read each answer to its Content-Length and decode its
JSON. Nothing else: no timing, no detection, no metrics, no log.

- `callbacks`: no task per request; the protocol's data_received completes it.
- `tasks`: one task per request awaiting a future, with a timeout timer: plain asyncio code.

Then recmon (bench/run.py's row, default rules, its results log, one interval of warm-up: the
windows are not full) and blackbox_exporter (bench/run.py's row), all one after the other in
rounds, each read from /proc over the same window. Ratios to blackbox_exporter are printed per
round and as medians.

    .venv/bin/python bench/floor.py [--rounds 3] [--window 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # bench/run.py: the sandbox, recmon and blackbox_exporter rows

TENANTS, INTERVAL = 5000, 10.0  # bench/run.py's 1,000/s row
BATCH_S = 0.01
TIMEOUT_S = 5.0


class Answer(asyncio.Protocol):
    """One keep-alive connection: one request at a time, the answer read to Content-Length."""

    def __init__(self, pool: list[Answer]) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.body_at = self.need = -1
        self.done: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, request: bytes) -> None:
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.need < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[: end + 2].lower()  # every header line ends in CRLF
            at = head.index(b"content-length:") + 15
            self.body_at = end + 4
            self.need = self.body_at + int(head[at : head.find(b"\r\n", at)])
        if len(self.buffer) < self.need:
            return
        body = self.buffer[self.body_at : self.need]
        self.buffer, self.need = self.buffer[self.need :], -1
        self.pool.append(self)
        if self.done is not None:
            if not self.done.done():  # not timed out
                self.done.set_result(body)
        else:
            judge(body)

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.pool:
            self.pool.remove(self)


def judge(body: bytes) -> bool:
    document = json.loads(body)
    return bool(document.get("results") or document.get("recommendations"))


async def client(host: str, port: int, mode: str) -> None:
    loop = asyncio.get_running_loop()
    pool: list[Answer] = []
    requests = [
        f"GET /v1/tenant-{t:03d}/{path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        for t in range(1, TENANTS + 1)
        for path in ("search?q=shoes", f"recommendations?product=tenant-{t:03d}-p01")
    ]

    async def connection() -> Answer:
        if pool:
            return pool.pop()
        _, protocol = await loop.create_connection(lambda: Answer(pool), host, port)
        return protocol

    async def one_task(request: bytes) -> None:
        answer = await connection()
        answer.done = loop.create_future()
        timer = loop.call_later(TIMEOUT_S, answer.done.cancel)
        answer.send(request)
        try:
            judge(await answer.done)
        finally:
            timer.cancel()
            answer.done = None

    async def one_callback(request: bytes) -> None:
        (await connection()).send(request)

    per_batch = len(requests) / INTERVAL * BATCH_S
    start, sent = loop.time(), 0
    # Each request's latest task, kept as recmon's scheduler keeps one per job (the loop
    # holds only weak references to tasks).
    running: dict[int, asyncio.Task[None]] = {}
    while True:
        due = int((loop.time() - start) / BATCH_S * per_batch)
        while sent < due:
            index = sent % len(requests)
            request = requests[index]
            if mode == "tasks":
                running[index] = loop.create_task(one_task(request))
            elif pool:
                pool.pop().send(request)
            else:
                running[index] = loop.create_task(one_callback(request))
            sent += 1
        await asyncio.sleep(BATCH_S)


def floor_row(mode: str, window: float, warm: float) -> float:
    """A bare client's CPU seconds per 1,000 requests."""
    sandbox = bench.Sandbox(TENANTS)
    process = subprocess.Popen(
        [sys.executable, __file__, "--client", str(sandbox.port), mode],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(warm)
        sandbox.reset_stats()
        cpu0 = bench.cpu_seconds(process.pid)
        time.sleep(window)
        cpu1 = bench.cpu_seconds(process.pid)
        stats = httpx.get(f"{sandbox.url}/_admin/stats").json()
        served: int = sum(check["requests"] for check in stats.values())
    finally:
        try:
            bench.stop_all([process], within=20)
        finally:
            sandbox.stop()
    return (cpu1 - cpu0) / max(served, 1) * 1000


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=30)
    parser.add_argument("--warm", type=float, default=15)
    parser.add_argument("--client", nargs=2, metavar=("PORT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # stopped mid-request: no cleanup to do
        asyncio.run(client("127.0.0.1", int(args.client[0]), args.client[1]))
        return 0
    if shutil.which("prometheus-blackbox-exporter") is None:
        print("blackbox_exporter not installed (prometheus-blackbox-exporter)", file=sys.stderr)
        return 2
    rows: dict[str, list[float]] = {"callbacks": [], "tasks": [], "recmon": [], "blackbox": []}
    for round_ in range(1, args.rounds + 1):
        rows["callbacks"].append(floor_row("callbacks", args.window, args.warm))
        rows["tasks"].append(floor_row("tasks", args.window, args.warm))
        recmon = bench.recmon_row("1000/s", TENANTS, INTERVAL, args.window, "asyncio")
        rows["recmon"].append(recmon.cpu_per_1k)
        blackbox = bench.blackbox_row("1000/s", 1000, args.window)
        assert blackbox is not None
        rows["blackbox"].append(blackbox.cpu_per_1k)
        print(
            f"round {round_}: CPU-s per 1,000 requests "
            + ", ".join(f"{name} {values[-1]:.3f}" for name, values in rows.items())
            + f" (recmon {recmon.achieved:.0f}/s, blackbox_exporter {blackbox.achieved:.0f}/s)",
            flush=True,
        )
    medians = {name: statistics.median(values) for name, values in rows.items()}
    print(f"\nmedians of {args.rounds} rounds, ÷ blackbox_exporter's in the same round:")
    for name in ("callbacks", "tasks", "recmon"):
        ratios = [v / b for v, b in zip(rows[name], rows["blackbox"], strict=True)]
        print(
            f"  {name:9} {medians[name]:.3f} s per 1,000, {statistics.median(ratios):.2f} of "
            f"blackbox_exporter's ({', '.join(f'{r:.2f}' for r in ratios)})"
        )
    ratios = [r / c for r, c in zip(rows["recmon"], rows["callbacks"], strict=True)]
    print(f"  recmon ÷ the bare callbacks client: {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
