"""Secrets at the edges: a sink that echoes its request (a proxy's error page, a debugging
endpoint) answers with the Basic-auth header recmon sent, base64 and all. Neither the log
nor the state file (the outbox's last_error) may carry it."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.alerting.sinks.base import post_json
from monitor.core.notifications import Delivery
from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import Sandbox
from monitor.telemetry.asgiserve import serve_asgi

pytestmark = pytest.mark.integration
USER, PASSWORD, TOKEN = "pager", "s3cret-Passw0rd", "tok-9f8e7d6c5b4a"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 502 with every request header it got, as some proxies' error pages do."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    text = "\n".join(f"{k.decode()}: {v.decode()}" for k, v in scope["headers"]).encode()
    await send({"type": "http.response.start", "status": 502, "headers": []})
    await send({"type": "http.response.body", "body": b"bad gateway; you sent:\n" + text})


@pytest.fixture
def sandbox_tenants() -> int:
    return 2


async def test_the_reason_of_a_failed_delivery_holds_no_credential() -> None:
    async with serve_asgi(echo, "127.0.0.1", 0) as sink, httpx.AsyncClient() as client:
        result = await post_json(
            client,
            f"http://{USER}:{PASSWORD}@127.0.0.1:{sink.port}/hook?token={TOKEN}",
            {"a": 1},
            request_timeout=5,
            now=0.0,
            headers={"X-Api-Key": "key-1234567890", "Authorization": "Bearer abcdef123456"},
        )
    assert result.outcome is Delivery.RETRY
    assert "bad gateway" in result.detail  # the answer is still there to read
    for secret in (BASIC, PASSWORD, TOKEN, "key-1234567890", "abcdef123456"):
        assert secret not in result.detail, result.detail


async def test_an_echoing_sink_leaks_into_neither_log_nor_state_file(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    async with serve_asgi(echo, "127.0.0.1", 0) as sink:
        config = tmp_path / "probes.yaml"
        config.write_text(
            sandbox_config(sandbox.url, timeout=2)
            + f"""
notify:
  webhook: {{url: "http://{USER}:${{HOOK_PASSWORD}}@127.0.0.1:{sink.port}/hook"}}
  delivery: {{backoff_initial: 0.1s, backoff_max: 0.2s}}
alerts:
  empty_results: {{window: 1s}}
"""
        )
        sandbox.faults.set("*", "recommendations", Fault(empty=True))
        logs = ""
        for _ in range(2):  # the second run fires and tries to deliver
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "monitor",
                "once",
                str(config),
                "--flush-timeout",
                "2",
                "--log-format",
                "json",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={"HOOK_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"},
            )
            stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
            logs += stdout.decode() + stderr.decode()
    failures = [
        json.loads(line)
        for line in logs.splitlines()
        if line.startswith("{") and "status 502" in line
    ]
    assert failures, logs[-3000:]  # the delivery failed, and the log says how
    assert "bad gateway" in logs
    state = b"".join(p.read_bytes() for p in sorted(Path(tmp_path).glob("recmon-state.db*")))  # noqa: ASYNC240 - after the runs
    assert b"status 502" in state  # the outbox kept the reason
    for secret in (BASIC, PASSWORD):
        assert secret not in logs
        assert secret.encode() not in state
