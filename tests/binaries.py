"""Real server binaries for integration tests: found, started on loopback, awaited, stopped.

Locally a missing binary skips the test; in CI (RECMON_REQUIRE_SERVERS=1) it fails it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.localhttp import TLS

DEBIAN_PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "curl": "curl",
    "prometheus-pushgateway": "prometheus-pushgateway",
    "prometheus-blackbox-exporter": "prometheus-blackbox-exporter",
    "tinyproxy": "tinyproxy",
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


# Ports handed to servers a test starts, below the kernel's ephemeral range (32768 up on
# Linux), so that no port the kernel picks (a bind to port 0, a connection's own end) is ever
# one of them; each xdist worker has a block of its own and hands each port out once.
PORT_BLOCK = 1000
FIRST_PORT = 16384


def _worker_ports() -> Iterator[int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw")) if worker.removeprefix("gw").isdigit() else 0
    start = FIRST_PORT + (index % 16) * PORT_BLOCK
    # A random start within the block: two sessions on one machine rarely meet.
    offset = random.randrange(PORT_BLOCK)
    while True:
        for i in range(PORT_BLOCK):
            yield start + (offset + i) % PORT_BLOCK


_ports = _worker_ports()


def free_port(addresses: tuple[str, ...] = ("127.0.0.1",)) -> int:
    """A port nothing listens on, on every one of the addresses, for a server to come."""
    for port in itertools.islice(_ports, PORT_BLOCK):
        try:
            for address in addresses:
                with socket.socket() as s:
                    s.bind((address, port))
        except OSError:
            continue  # in use (or lingering) there: the next one
        return port
    raise RuntimeError("no free port in this worker's block")


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
                    if httpx.get(ready_url, timeout=1, verify=TLS).status_code == 200:
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


@contextlib.contextmanager
def tinyproxy(
    directory: Path, *, settings: str = "", within: float = 10.0
) -> Iterator[tuple[str, Path]]:
    """A real tinyproxy on loopback (Debian package tinyproxy), in the foreground, logging
    each request it is asked to carry. Yields its http:// URL and its log file."""
    binary = require_binary("tinyproxy")
    port = free_port()
    config = directory / f"tinyproxy-{port}.conf"
    log = directory / f"tinyproxy-{port}.log"
    config.write_text(
        f"Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 50\nLogLevel Connect\n"
        f"Allow 127.0.0.1\n{settings}"
    )
    with log.open("wb") as output:
        process = subprocess.Popen(
            [binary, "-d", "-c", str(config)], stdout=output, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + within
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"tinyproxy exited:\n{log.read_text()[-3000:]}")
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), timeout=1),
                ):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"tinyproxy not listening after {within}s")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}", log
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
