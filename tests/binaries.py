"""Real server binaries for integration tests: found, started on loopback, awaited, stopped.

Locally a missing binary skips the test; in CI (RECMON_REQUIRE_SERVERS=1) it fails it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

DEBIAN_PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "prometheus-pushgateway": "prometheus-pushgateway",
    "prometheus-blackbox-exporter": "prometheus-blackbox-exporter",
}


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = DEBIAN_PACKAGES.get(name, name)
        message = f"{name} is not installed (Debian package {package})"
        if os.environ.get("RECMON_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{message}, and RECMON_REQUIRE_SERVERS=1 makes that a failure")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(
    args: list[str], *, ready_url: str, log: Path, within: float = 30.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server, wait until `ready_url` answers 200, stop it afterwards."""
    with log.open("wb") as output:
        process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + within
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{args[0]} exited with {process.returncode}:\n{log.read_text()[-3000:]}"
                    )
                try:
                    if httpx.get(ready_url, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{args[0]} not ready after {within}s:\n{log.read_text()[-3000:]}"
                    )
                time.sleep(0.1)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
