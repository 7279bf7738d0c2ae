"""A `recmon run` subprocess for integration tests: started on a free port, JSON logs
collected, stopped with a signal."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.binaries import free_port
from tests.localhttp import TLS


class RecmonProcess:
    def __init__(
        self,
        config: Path,
        *,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        module: str = "monitor",
    ) -> None:
        """`module`: what `python -m` runs (a test's wrapper around recmon's command line)."""
        self.config = config
        self.module = module
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.args = args or []
        self.process: asyncio.subprocess.Process | None = None
        self.stderr_lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self, *, ready: bool = True) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "run",
            "--config",
            str(self.config),
            "--listen",
            f"127.0.0.1:{self.port}",
            *self.args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        self._reader = asyncio.create_task(self._read())
        if ready:
            try:
                await self.wait_for(self._ready, "ready")
            except BaseException:
                await self.kill()  # a test that fails here never reaches its stop()
                raise

    async def kill(self) -> None:
        """No recmon outlives its test (left running, it would load the next ones)."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()

    async def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for line in self.process.stderr:
            self.stderr_lines.append(line.decode(errors="replace").rstrip("\n"))

    async def _ready(self) -> bool:
        # Asynchronous: the test's own servers (a sandbox) share this event loop, and recmon
        # gets ready only once they have answered it.
        try:
            async with httpx.AsyncClient(timeout=2, verify=TLS) as client:
                return (await client.get(self.url + "/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10, verify=TLS) as client:
            return await client.get(self.url + path)

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stderr_lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"msg": line, "raw": True})
        return out

    def messages(self) -> list[str]:
        return [entry.get("msg", "") for entry in self.logs()]

    async def wait_for(self, condition: Any, what: str, within: float = 30) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            if self.process is not None and self.process.returncode is not None:
                raise AssertionError(
                    f"recmon exited ({self.process.returncode}) before {what}:\n"
                    + "\n".join(self.stderr_lines[-30:])
                )
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(
            f"timed out waiting for {what}:\n" + "\n".join(self.stderr_lines[-30:])
        )

    async def wait_for_log(self, message: str, within: float = 30) -> dict[str, Any]:
        await self.wait_for(
            lambda: any(m.startswith(message) for m in self.messages()), f"log {message!r}", within
        )
        return next(e for e in self.logs() if e.get("msg", "").startswith(message))

    def send(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def stop(self, sig: signal.Signals = signal.SIGTERM, within: float = 30) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
        try:
            code = await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            await self.kill()
            raise
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        return code
