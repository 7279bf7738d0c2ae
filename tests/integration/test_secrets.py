"""Secrets never leak: every output recmon produces is searched for the values it holds —
logs (JSON, debug level), /metrics, /healthz, /readyz, /status, the status page (/, a tenant's
page, the in-place refresh), the results log, the state file, error messages, the
configuration dump and the pages sent — also when the platform quotes them back (a token
endpoint, an API, discovery and PagerDuty echoing what they were sent)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from monitor.sandbox.demo import sandbox_config
from monitor.sandbox.faults import Fault
from monitor.sandbox.server import Sandbox, SandboxSettings, serve_sandbox
from monitor.telemetry.asgiserve import serve_asgi
from tests.binaries import free_port, tinyproxy
from tests.fakes import EchoingPlatform, RecordingEndpoint
from tests.helpers import FAST
from tests.integration.recmonproc import RecmonProcess
from tests.secretdir import write_secret_dir
from tests.tlscerts import CertificateAuthority

pytestmark = pytest.mark.integration
SECRETS = {
    "API_TOKEN": "tok-7f3a9c1e55d2",
    "PD_KEY": "rk-b4e1d0c9a8f7",
    "HOOK_TOKEN": "wh-19c7e3a2b6d5",
    "PROXY_PASSWORD": "px-5e8d2b7a9c41",
}
# For the platform that echoes: '/', '+' and '=' make the URL-encoded forms differ; the API
# token is shaped like a tenant id, which discovery lists among the tenants.
ECHOED = {
    "ECHO_CLIENT_SECRET": "cs-9b/2+e7=d41c0",
    "ECHO_API_TOKEN": "tok-e5c9a1d7b3f2",
    "ECHO_QUERY_KEY": "qk-5e/8+a1=f3c7",
    "ECHO_DISCOVERY_KEY": "dk-2a7c4e9b1f",
    "ECHO_PD_KEY": "rk-echo-7c1e0b9d",
}


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(tenants=3, latency_ms=dict(FAST), token=SECRETS["API_TOKEN"])


def config_text(sandbox: Sandbox, pagerduty: str, proxy: str) -> str:
    text = sandbox_config(sandbox.url, interval=1, timeout=1)
    with_password = proxy.replace("http://", "http://alice:${PROXY_PASSWORD}@")
    text = text.replace(
        "    rate_limit: 200/s",
        '    rate_limit: 200/s\n    headers: {Authorization: "Bearer ${API_TOKEN}"}'
        f"\n    proxy: {with_password}",
    )
    text = text.replace(
        "refresh: 10m}", 'refresh: 10m, headers: {Authorization: "Bearer ${API_TOKEN}"}}'
    )
    return (
        text
        + f"""
alerts: {{storm: {{group_wait: 1s}}}}
notify:
  pagerduty: {{routing_key: "${{PD_KEY}}", url: "{pagerduty}/v2/enqueue"}}
  webhook: {{url: "http://127.0.0.1:{free_port()}/hook", headers: {{X-Token: "${{HOOK_TOKEN}}"}}}}
  delivery: {{backoff_initial: 0.2s, backoff_max: 0.5s}}
"""
    )


async def run_cli(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "--log-level",
        "debug",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **SECRETS, **ECHOED},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return out.decode(errors="replace") + err.decode(errors="replace")


async def served_pages(recmon: RecmonProcess, tenant: str, *more: str) -> dict[str, str]:
    """What a running `recmon run` serves: its endpoints, the status page and a tenant's."""
    paths = ("/metrics", "/healthz", "/readyz", "/status", "/", f"/tenants/{tenant}", "/ui/live")
    return {path: (await recmon.get(path)).text for path in (*paths, *more)}


async def left_behind(recmon: RecmonProcess, config: Path, results: Path) -> dict[str, str]:
    """What a stopped `recmon run` left (its logs, results log and state file, beside its
    config), and what `check-config --dump` and `once` print for that config."""
    state = await asyncio.to_thread((config.parent / "recmon-state.db").read_bytes)
    return {
        "logs": "\n".join(recmon.stderr_lines),
        "results log": await asyncio.to_thread(results.read_text),
        "state file": state.decode("latin-1"),
        "dump": await run_cli("check-config", "--dump", str(config)),
        "once": await run_cli("once", "--flush-timeout", "1", "--config", str(config)),
    }


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real proxy that wants the password: the probes go through it."""
    with tinyproxy(tmp_path, settings=f"BasicAuth alice {SECRETS['PROXY_PASSWORD']}\n") as running:
        yield running


async def test_no_output_contains_a_secret(
    sandbox: Sandbox, proxy: tuple[str, Path], tmp_path: Path
) -> None:
    pagerduty = RecordingEndpoint(status=503)
    outputs: dict[str, str] = {}
    proxy_url, proxy_log = proxy
    async with serve_asgi(pagerduty, "127.0.0.1", 0) as pd:
        config = tmp_path / "probes.yaml"
        config.write_text(config_text(sandbox, pd.url, proxy_url))
        sandbox.faults.set("tenant-002", "recommendations", Fault(empty=True))
        results = tmp_path / "results.jsonl"
        recmon = RecmonProcess(config, env=SECRETS, args=["--results-log", str(results)])
        await recmon.start()
        try:
            await recmon.wait_for_log("delivery failed, will retry")  # both sinks fail for a while
            await asyncio.sleep(1)
            pagerduty.status = 202
            await recmon.wait_for(lambda: pagerduty.received, "the page")
            outputs |= await served_pages(recmon, "tenant-002", "/nowhere")
        finally:
            assert await recmon.stop() == 0
        outputs |= await left_behind(recmon, config, results)
        broken = tmp_path / "broken.yaml"
        broken.write_text(
            config.read_text().replace(f"base_url: {sandbox.url}", "base_url: ${API_TOKEN}")
        )
        outputs["config error"] = await run_cli("check-config", str(broken))

    # The secrets were really in use: the sandbox demanded the token, PagerDuty got the key,
    # the proxy carried the probes (it refuses any request without the password).
    assert pagerduty.received[0]["body"]["routing_key"] == SECRETS["PD_KEY"]
    assert "/v1/tenant-001/search" in proxy_log.read_text()
    assert '"tenants": 3' in outputs["/status"]
    # The page and /status carry what the sinks answered and the incident, where a secret
    # could have slipped in.
    assert '"name": "pagerduty"' in outputs["/status"]
    assert "tenant-002" in outputs["/"] and "pagerduty" in outputs["/"]
    assert "Recent probes" in outputs["/tenants/tenant-002"]
    assert "targets.sandbox.base_url" in outputs["config error"]
    assert "[REDACTED]" in outputs["dump"]
    for name, text in outputs.items():
        assert text, f"{name} produced nothing: the check would prove nothing"
        for secret in SECRETS.values():
            assert secret not in text, f"{secret!r} leaked into {name}"


# Every new kind of secret at once: tenants' keys from a mounted Secret, an OAuth2 client
# secret from a file and the tokens it buys, a client certificate's private key, a routing key
# and a header from files.
TENANT_KEYS = {
    "tenant-001": "tk-one-61c2e9d07f",
    "tenant-002": "tk-two-0a4d83b5e1",
    "tenant-003": "tk-three-9f27c4a8",
}
CLIENT = ("recmon-probe", "cs-e71b3c0d9a52")
FILE_SECRETS = {"routing_key": "rk-file-5d9e0a7c13", "hook_header": "hh-file-2b8f61d4c7"}


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[Sandbox, CertificateAuthority]]:
    (tmp_path / "pki").mkdir()
    ca = CertificateAuthority(tmp_path / "pki")
    server = ca.issue("server", names=("127.0.0.1",))
    settings = SandboxSettings(
        tenants=3,
        latency_ms=dict(FAST),
        tenant_keys=dict(TENANT_KEYS),
        oauth2_client=CLIENT,
        token_lifetime=2.0,
    )
    async with serve_sandbox(
        settings,
        ssl_certfile=str(server.cert_pem),
        ssl_keyfile=str(server.key_pem),
        ssl_client_ca=str(ca.pem),
    ) as served:
        yield served, ca


def credentials_config(
    sandbox: Sandbox, ca: CertificateAuthority, tmp_path: Path, pagerduty: str
) -> Path:
    write_secret_dir(tmp_path / "keys", TENANT_KEYS)
    client = ca.issue("client", names=("recmon-probe",))
    (tmp_path / "client-secret").write_text(CLIENT[1] + "\n")
    (tmp_path / "routing-key").write_text(FILE_SECRETS["routing_key"])
    (tmp_path / "hook-header").write_text(FILE_SECRETS["hook_header"])
    text = sandbox_config(sandbox.url, interval=1, timeout=1)
    text = text.replace(
        "    rate_limit: 200/s",
        f"""    rate_limit: 200/s
    tls: {{ca_file: {ca.pem}, cert_file: {client.cert_pem}, key_file: {client.key_pem}}}
    oauth2:
      token_url: {sandbox.url}/oauth2/token
      client_id: {CLIENT[0]}
      client_secret_file: client-secret""",
    )
    text = "\n".join(
        "  static: [tenant-001, tenant-002, tenant-003]\n"
        "  credentials: {dir: keys, variable: api_key, refresh: 0.2s}"
        if line.startswith("  discover:")
        else line
        for line in text.splitlines()
    )
    text = text.replace(
        'params: {q: "{query}"}}', 'params: {q: "{query}"}, headers: {X-Api-Key: "{api_key}"}}'
    ).replace(
        '      params: {product: "{product}"}',
        '      params: {product: "{product}"}\n      headers: {X-Api-Key: "{api_key}"}',
    )
    config = tmp_path / "probes.yaml"
    config.write_text(
        text
        + f"""
alerts: {{storm: {{group_wait: 1s}}}}
notify:
  pagerduty: {{routing_key_file: routing-key, url: "{pagerduty}/v2/enqueue"}}
  webhook:
    url: "http://127.0.0.1:{free_port()}/hook"
    header_files: {{X-Token: hook-header}}
  delivery: {{backoff_initial: 0.2s, backoff_max: 0.5s}}
"""
    )
    return config


async def test_no_output_contains_a_key_client_secret_token_or_private_key(
    secured: tuple[Sandbox, CertificateAuthority], tmp_path: Path
) -> None:
    sandbox, ca = secured
    pagerduty = RecordingEndpoint(status=202)
    outputs: dict[str, str] = {}
    async with serve_asgi(pagerduty, "127.0.0.1", 0) as pd:
        config = credentials_config(sandbox, ca, tmp_path, pd.url)
        results = tmp_path / "results.jsonl"
        recmon = RecmonProcess(config, args=["--results-log", str(results)])
        await recmon.start()
        try:
            await recmon.wait_for(lambda: len(sandbox.app.auth.issued) >= 3, "three tokens")
            # A key the platform no longer takes (auth_error, whose reason names the key's
            # variable), a tenant whose key file is gone, then a client the token endpoint
            # refuses (logged with the endpoint's error).
            sandbox.app.auth.update({"keys": {"tenant-002": "tk-two-rotated-4e0c"}})
            write_secret_dir(
                tmp_path / "keys", {k: v for k, v in TENANT_KEYS.items() if k != "tenant-003"}
            )
            await recmon.wait_for_log("tenant not probed: no credential for it")
            await recmon.wait_for(lambda: pagerduty.received, "a page")
            sandbox.app.auth.update({"refuse_client": True, "revoke": True})
            await recmon.wait_for_log("OAuth2 token request failed")
            for path in ("/metrics", "/healthz", "/readyz", "/status"):
                outputs[path] = (await recmon.get(path)).text
        finally:
            assert await recmon.stop() == 0
        outputs |= await left_behind(recmon, config, results)
        (tmp_path / "bad-url").write_text(FILE_SECRETS["hook_header"])
        broken = tmp_path / "broken.yaml"
        broken.write_text(
            config.read_text().replace(
                "  delivery:", "  heartbeat: {url_file: bad-url}\n  delivery:"
            )
        )
        outputs["config error"] = await run_cli("check-config", str(broken))

    auth = sandbox.app.auth
    tokens = list(auth.issued)
    key_lines = [
        line
        for line in (tmp_path / "pki" / "client.key").read_text().splitlines()
        if not line.startswith("-----")
    ]
    secrets = [
        *TENANT_KEYS.values(),
        "tk-two-rotated-4e0c",
        CLIENT[1],
        *FILE_SECRETS.values(),
        *tokens,
        *key_lines,
    ]
    # The secrets were in use: keys let tenants in, tokens were issued and refused, the key
    # made the handshake, PagerDuty got the key read from its file.
    assert auth.accepted["tenant-001"] > 0 and auth.refused["tenant-002"] > 0
    assert len(tokens) >= 3 and sandbox.tls_front is not None and sandbox.tls_front.accepted
    assert pagerduty.received[0]["body"]["routing_key"] == FILE_SECRETS["routing_key"]
    assert "notify.heartbeat.url" in outputs["config error"]
    assert "auth_error" in outputs["results log"] and "missing_credential" in outputs["/metrics"]
    assert "[REDACTED]" in outputs["dump"]
    for name, text in outputs.items():
        assert text, f"{name} produced nothing: the check would prove nothing"
        for secret in secrets:
            assert secret not in text, f"{secret!r} leaked into {name}"


def echoing_config(url: str, tmp_path: Path) -> Path:
    config = tmp_path / "probes.yaml"
    config.write_text(
        f"""
defaults: {{interval: 1s, timeout: 1s}}
targets:
  api:
    base_url: {url}
    headers: {{Authorization: "Bearer ${{ECHO_API_TOKEN}}"}}
  idp:
    base_url: {url}
    oauth2:
      token_url: {url}/oauth2/token
      client_id: recmon-probe
      client_secret: "${{ECHO_CLIENT_SECRET}}"
tenants:
  discover:
    url: "{url}/tenants?api_key=${{ECHO_DISCOVERY_KEY}}"
    items: "$.tenants[*].id"
    refresh: 1s
    headers: {{Authorization: "Bearer ${{ECHO_API_TOKEN}}"}}
checks:
  search:
    target: api
    request: {{path: "/v1/{{tenant}}/search", params: {{q: shoes, key: "${{ECHO_QUERY_KEY}}"}}}}
    expect: {{items: "$.results", min_items: 1}}
  orders:
    target: idp
    request: {{path: "/v1/{{tenant}}/orders"}}
alerts: {{storm: {{group_wait: 1s, min_tenants: 2}}}}
notify:
  pagerduty: {{routing_key: "${{ECHO_PD_KEY}}", url: "{url}/v2/enqueue"}}
  delivery: {{backoff_initial: 0.2s, backoff_max: 0.5s}}
"""
    )
    return config


async def test_a_platform_quoting_what_it_was_sent_leaks_no_secret(tmp_path: Path) -> None:
    """The token endpoint refuses the client quoting its id:secret and the Basic credential,
    the API refuses quoting the token and key it got, discovery lists the token among the
    tenants and quotes its request line, PagerDuty first refuses quoting the event (and its
    routing key). No output — the pages sent included — holds a secret in any form sent."""
    platform = EchoingPlatform()
    outputs: dict[str, str] = {}
    async with serve_asgi(platform, "127.0.0.1", 0) as served:
        config = echoing_config(served.url, tmp_path)
        results = tmp_path / "results.jsonl"
        recmon = RecmonProcess(config, env=ECHOED, args=["--results-log", str(results)])
        await recmon.start()
        try:
            await recmon.wait_for(
                lambda: (
                    {"orders", "search"}
                    <= {
                        p["payload"]["custom_details"].get("check")
                        for p in platform.pages
                        if p.get("event_action") == "trigger"
                    }
                ),
                "pages for both checks",
            )
            await recmon.wait_for(lambda: platform.answered.get("discovery", 0) >= 2, "discovery")
            outputs |= await served_pages(recmon, "tenant-001")
        finally:
            assert await recmon.stop() == 0
        outputs |= await left_behind(recmon, config, results)
    # The routing key is the one secret PagerDuty is meant to get; the rest of every event not.
    assert all(p.pop("routing_key") == ECHOED["ECHO_PD_KEY"] for p in platform.pages)
    outputs["pages sent"] = json.dumps(platform.pages)

    # Each of them did echo: the secrets were in what recmon got back.
    assert platform.answered["token"] and platform.answered["api"]
    assert "client revoked" in outputs["results log"]  # the endpoint's own words are kept
    assert "invalid_client" in outputs["pages sent"]
    assert "tenant rejected, not probed" in outputs["logs"]  # discovery's echoed request
    assert "status 503" in outputs["logs"]  # PagerDuty's echoing refusals
    client_secret = ECHOED["ECHO_CLIENT_SECRET"]
    basic = base64.b64encode(f"recmon-probe:{quote_plus(client_secret)}".encode()).decode()
    forms = {basic}
    for secret in ECHOED.values():
        forms |= {secret, quote_plus(secret), quote(secret, safe="")}
    leaks = [
        f"{form!r} leaked into {name}"
        for name, text in outputs.items()
        for form in forms
        if form in text
    ]
    assert not leaks, "\n".join(leaks)
    assert all(outputs.values()), "an output was empty: the check would prove nothing"
    # The API token that discovery listed as a tenant was refused as one, and said so.
    assert "a tenant id holding a credential sent to discovery" in outputs["logs"]
