"""CPU per probe of the probe path alone (probe_http on the asyncio transport, a task per probe,
the loop's read path), two source trees alternated.

    .venv/bin/python bench/probe_path.py /tmp/main .     # main against this tree
    .venv/bin/python bench/probe_path.py /tmp/main . --transport aiohttp --in-flight 200

A raw HTTP/1.1 server in its own process answers every request on kept-alive connections
after a few milliseconds with a sandbox-like search answer. Each run, in a process of its
own, keeps 60 probes in flight (--in-flight; a task each, as the scheduler launches them)
through one client (--transport, default asyncio; --connections, its max_connections) for a
warm-up, then counts its CPU over the measured probes; trees alternate (A B A B
...), and the medians' ratio to the first tree's is printed. Nothing after a probe
(ProbeLedger.observe) runs: bench/observe_path.py measures that.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

BODY = json.dumps(
    {"query": "shoes", "results": [{"id": f"p{i}", "score": 1.0 - i / 10} for i in range(10)]}
).encode()
ANSWER = (
    b"HTTP/1.1 200 OK\r\ndate: Sun, 06 Dec 2026 20:00:00 GMT\r\nserver: uvicorn\r\n"
    b"content-length: %d\r\ncontent-type: application/json\r\n\r\n" % len(BODY)
) + BODY
DELAY_S = 0.005

SERVER = """
import asyncio, sys
answer = {answer!r}
class Reply(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        self.buffer += data
        while b"\\r\\n\\r\\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\\r\\n\\r\\n", 1)
            asyncio.get_running_loop().call_later({delay}, self.transport.write, answer)
async def main():
    server = await asyncio.get_running_loop().create_server(Reply, "127.0.0.1", {port})
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""

CONFIG = """
defaults: {{interval: 10s, timeout: 2s}}
targets:
  api: {{base_url: "http://127.0.0.1:{port}", max_connections: {connections}}}
tenants:
  static: [acme]
  default_vars: {{query: shoes}}
checks:
  search:
    target: api
    request: {{path: "/v1/{{tenant}}/search", params: {{q: "{{query}}"}}}}
    expect: {{items: "$.results", min_items: 1}}
    capture: {{product: "$.results[0].id"}}
"""

RUN = """
import asyncio, sys, time
sys.path.insert(0, {tree!r})
import monitor
assert monitor.__file__.startswith({tree!r}), monitor.__file__
from monitor.config.loader import load_config_text
from monitor.core.clock import SystemClock
from monitor.probing.checks import compile_checks
from monitor.probing.http import prepare, probe_http
from monitor.probing.httpclient import build_client

async def main():
    config = load_config_text({config!r}, source="<bench>").config
    check = compile_checks(config)["search"]
    client = build_client("api", config.targets["api"], 2.0, kind={transport!r})
    request = prepare(client, check.render({{"tenant": "acme", "query": "shoes"}}))
    clock = SystemClock()
    left = {warm} + {probes}
    started = None
    async def worker():
        nonlocal left, started
        while left > 0:
            left -= 1
            if left == {probes}:
                started = time.process_time()
            result = await asyncio.create_task(
                probe_http(check, "acme", request, client, clock, {{"query": "shoes"}})
            )
            assert result.outcome.value == "ok", result
    await asyncio.gather(*(worker() for _ in range({in_flight})))
    print(1e6 * (time.process_time() - started) / {probes})
    await client.aclose()

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_run(tree: str, port: int, args: argparse.Namespace) -> float:
    config = CONFIG.format(port=port, connections=args.connections)
    code = RUN.format(
        tree=tree,
        config=config,
        warm=args.warm,
        probes=args.probes,
        transport=args.transport,
        in_flight=args.in_flight,
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
    )
    if out.returncode:
        raise SystemExit(f"{tree}: {out.stderr}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", help="directories holding a `monitor` package")
    parser.add_argument("--runs", type=int, default=5, help="runs per tree")
    parser.add_argument("--warm", type=int, default=3000)
    parser.add_argument("--probes", type=int, default=20000)
    parser.add_argument("--transport", choices=("asyncio", "aiohttp", "httpx"), default="asyncio")
    parser.add_argument("--in-flight", type=int, default=60, help="probes kept in flight")
    parser.add_argument("--connections", type=int, default=100, help="the target's max_connections")
    args = parser.parse_args()
    trees = [os.path.abspath(tree) for tree in args.trees]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(answer=ANSWER, delay=DELAY_S, port=port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        figures: dict[str, list[float]] = {tree: [] for tree in trees}
        for _ in range(args.runs):
            for tree in trees:
                figures[tree].append(one_run(tree, port, args))
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(10)
    first = statistics.median(figures[trees[0]])
    for tree in trees:
        shown = " ".join(f"{x:.0f}" for x in figures[tree])
        median = statistics.median(figures[tree])
        print(f"{tree:<40} us per probe: {shown}  median {median:.0f}  x{median / first:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
