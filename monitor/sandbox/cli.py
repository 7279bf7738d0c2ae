"""`recmon sandbox`: serve the simulated multi-tenant service from the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

import yaml

from monitor.sandbox.faults import Fault, FaultError, fault_from_json

if TYPE_CHECKING:
    from monitor.sandbox.server import SandboxSettings

log = logging.getLogger("recmon.sandbox")

DESCRIPTION = """\
Serve a simulated multi-tenant search and recommendations API on loopback:
  GET /v1/tenants                                   the tenant list
  GET /v1/<tenant>/search?q=...                     {"results": [...]}
  GET /v1/<tenant>/recommendations?product=...      {"recommendations": [...]}
  GET /_admin/stats                                 requests served, per tenant and check
  PUT /_admin/faults  {"tenant": T, "check": C, "fault": {...}}   switch a fault on
  DELETE /_admin/faults                             clear every fault
  POST /oauth2/token                                client credentials -> a bearer token
  PUT /_admin/auth  {"keys": {T: KEY}, "refuse_tokens": true, "refuse_client": true,
                     "revoke": true, "token_lifetime": 3}   change what is accepted
  POST|GET|DELETE /_admin/notifications             a webhook receiver: record, list, clear

T is a tenant id or "*", C is search, recommendations or "*". An optional "location": L
limits the fault to probes from recmon's at location L (its X-Recmon-Location header); a
location's faults win over the ones for every location. Fault fields (JSON):
  empty: true                 the list comes back [] with status 200
  latency_factor: 2           latency multiplied (60 ms becomes 120 ms)
  extra_latency_ms: 500       latency added
  error_rate: 0.3             share of requests answering 500
  status: 502                 always answer this status (a broken proxy)
  fail_ratio: 0.33            with status: only this share of requests gets it
  hang: true                  never answer
  drip_interval_ms: 200       send the body a few bytes at a time, this far apart
  invalid_json: true          a body that is not JSON
  truncated_json: true        a JSON body cut short
  wrong_content_type: true    JSON served as text/html
  huge_body_bytes: 50000000   a 200 JSON body this large, streamed
  redirect_loop: true         redirect to itself forever
  delisted: ["p-001"]         product ids treated as not in the catalog
  fallback: true              one popular list for every product (all tenants with "*")
  foreign_tenant: "tenant-004"  answered with that tenant's items instead of its own
  drift: "renamed_field"      items' id renamed to product_id ("changed_type": score a string)
  frozen: true                recommendations stop changing (with --refresh)

Example: recmon sandbox --fault '*:recommendations:{"empty": true}'"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1); several, comma-separated (e.g. "
        "127.0.0.2,127.0.0.3,127.0.0.4): one backend on each, same port, each with its own "
        "faults at its own /_admin/faults",
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)"
    )
    parser.add_argument("--tenants", type=int, default=20, help="number of tenants (default 20)")
    parser.add_argument("--products", type=int, default=20, help="products per tenant (default 20)")
    parser.add_argument(
        "--latency-ms",
        default="search=40,recommendations=60",
        help="simulated latency per check (default search=40,recommendations=60)",
    )
    parser.add_argument(
        "--jitter", type=float, default=0.1, help="lognormal spread of latency (default 0.1)"
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="random seed for jitter and error rates"
    )
    parser.add_argument(
        "--refresh",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="recommendations move on by one item this often, a model refreshing (default 0: "
        "never); the fault frozen stops it",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("RECMON_SANDBOX_TOKEN"),
        help="require 'Authorization: Bearer TOKEN' on /v1 (env RECMON_SANDBOX_TOKEN)",
    )
    parser.add_argument(
        "--tenant-keys",
        metavar="FILE",
        help="YAML/JSON {tenant: key}: each tenant's /v1 requests need 'X-Api-Key: <its key>'",
    )
    parser.add_argument(
        "--oauth2-client",
        metavar="ID:SECRET",
        default=os.environ.get("RECMON_SANDBOX_OAUTH2_CLIENT"),
        help="issue tokens to this client at /oauth2/token and require one on /v1 "
        "(env RECMON_SANDBOX_OAUTH2_CLIENT)",
    )
    parser.add_argument(
        "--token-lifetime", type=float, default=3600.0, help="OAuth2 token lifetime, seconds"
    )
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="private key for --tls-cert (PEM)")
    parser.add_argument(
        "--client-ca", help="require client certificates issued by this CA (PEM; mTLS)"
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="TENANT:CHECK:JSON",
        help="initial fault, e.g. '*:recommendations:{\"empty\": true}' (repeatable)",
    )


def _tenant_keys(path: str | None) -> dict[str, str] | None:
    if path is None:
        return None
    with open(path, encoding="utf-8") as file:
        keys = yaml.safe_load(file)
    if not isinstance(keys, dict):
        raise ValueError(f"--tenant-keys {path}: expected a mapping of tenant to key")
    return {str(k): str(v) for k, v in keys.items()}


def _client(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    client_id, sep, secret = text.partition(":")
    if not sep or not client_id or not secret:
        raise ValueError("--oauth2-client: use ID:SECRET")
    return client_id, secret


def _latencies(text: str) -> dict[str, float]:
    latencies: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"invalid --latency-ms part {part!r}: use check=milliseconds")
        latencies[name.strip()] = float(value)
    return latencies


def run(args: argparse.Namespace) -> int:
    # The server (uvicorn, ~45 ms of imports) when serving, not when any recmon builds its
    # parser with these options.
    from monitor.sandbox.server import SandboxSettings

    try:
        if args.client_ca and not (args.tls_cert and args.tls_key):
            raise ValueError("--client-ca needs --tls-cert and --tls-key")
        if args.client_ca and "," in args.host:
            raise ValueError("--client-ca serves one --host")
        settings = SandboxSettings(
            tenants=args.tenants,
            products=args.products,
            latency_ms=_latencies(args.latency_ms),
            jitter=args.jitter,
            seed=args.seed,
            token=args.token,
            tenant_keys=_tenant_keys(args.tenant_keys),
            oauth2_client=_client(args.oauth2_client),
            token_lifetime=args.token_lifetime,
            refresh_s=args.refresh,
        )
        faults = []
        for spec in args.fault:
            tenant, _, rest = spec.partition(":")
            check, _, body = rest.partition(":")
            faults.append((tenant, check, fault_from_json(json.loads(body))))
    except (ValueError, FaultError, OSError) as exc:
        print(f"recmon sandbox: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(args, settings, faults))


async def _serve(
    args: argparse.Namespace, settings: SandboxSettings, faults: list[tuple[str, str, Fault]]
) -> int:
    from monitor.sandbox.server import serve_backends, serve_sandbox

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if "," in args.host:
                sandboxes = await stack.enter_async_context(
                    serve_backends(
                        [h.strip() for h in args.host.split(",")],
                        settings,
                        port=args.port,
                        ssl_certfile=args.tls_cert,
                        ssl_keyfile=args.tls_key,
                    )
                )
            else:
                sandbox = await stack.enter_async_context(
                    serve_sandbox(
                        settings,
                        host=args.host,
                        port=args.port,
                        ssl_certfile=args.tls_cert,
                        ssl_keyfile=args.tls_key,
                        ssl_client_ca=args.client_ca,
                    )
                )
                sandboxes = [sandbox]
            for sandbox in sandboxes:
                for tenant, check, fault in faults:
                    sandbox.faults.set(tenant, check, fault)
                print(
                    f"sandbox serving {settings.tenants} tenants at {sandbox.url}  "
                    f"(API {sandbox.url}/v1/<tenant>/search|recommendations, "
                    f"tenants {sandbox.url}/v1/tenants, faults {sandbox.url}/_admin/faults, "
                    f"stats {sandbox.url}/_admin/stats)",
                    flush=True,
                )
            await stop.wait()
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"recmon sandbox: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    return 0
