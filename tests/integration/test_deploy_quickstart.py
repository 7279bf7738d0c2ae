"""docs/DEPLOY.md's quickstart, walked as written on Debian's packages: the sandbox and `recmon
run` as the guide starts them, the real Prometheus with the shipped prometheus.example.yml and
recmon-rules.yml, the real Alertmanager with the shipped alertmanager.yml (its receiver is the
sandbox's webhook recorder, as the guide says), then the Pushgateway section with `recmon
once`. Every URL and `amtool` command in those sections is taken from the guide and must
answer; a fault on every tenant gives exactly one notification, clearing it resolves it.

Only two things differ from the guide, both mechanical: the ports are free loopback ports
(the guide's 8080, 9464, 9090, 9093 and 9091 are rewritten wherever they appear), and time is
shortened — probes every 1 s instead of 60 s, Prometheus scraping and evaluating every 1 s,
the rules' 5-minute windows 10 s and their `for: 2m` 2 s, Alertmanager's group_wait and
group_interval 3 s — so that a straggler that would make a second notification arrives
inside the test instead of minutes after it. Routes, matchers, receivers and rule
expressions are the shipped ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.binaries import free_port, require_binary, running
from tests.integration.recmonproc import RecmonProcess
from tests.localhttp import TLS

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "DEPLOY.md").read_text()
WITHIN = 60.0
SETTLE = 8.0  # after the first notification: long enough for two more group_intervals
GUIDE_PORTS = {8080: "sandbox", 9464: "recmon", 9090: "prometheus", 9093: "alertmanager"}
PUSHGATEWAY_PORT = 9091
GUIDE_CONFIG = "/tmp/recmon-quickstart.yaml"  # the guide's copy of probes.yaml


def section(title_start: str) -> str:
    start = GUIDE.index(f"\n## {title_start}")
    end = GUIDE.find("\n## ", start + 4)
    return GUIDE[start:end]


QUICKSTART = section("From zero to a dashboard")


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def commands(text: str) -> list[str]:
    """Every shell command of the section's sh blocks, continuation lines joined."""
    out = []
    for block in shell_blocks(text):
        joined = re.sub(r"\\\n\s*", "", block)
        out += [
            line.strip()
            for line in joined.splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
    return out


def guide_urls(text: str) -> list[str]:
    """URLs the guide gives to open or curl (a bare host:port is a configuration value)."""
    found = []
    for url in re.findall(r"http://127\.0\.0\.1:\d+/[^\s`'\"]*", text):
        url = url.rstrip(".,;")
        while url.endswith(")") and url.count("(") < url.count(")"):
            url = url[:-1]
        found.append(url)
    return sorted(set(found))


@dataclass
class Ports:
    mapping: dict[int, int] = field(
        default_factory=lambda: {p: free_port() for p in [*GUIDE_PORTS, PUSHGATEWAY_PORT]}
    )

    def url(self, guide_port: int) -> str:
        return f"http://127.0.0.1:{self.mapping[guide_port]}"

    def local(self, text: str) -> str:
        return re.sub(
            r"127\.0\.0\.1:(\d+)",
            lambda m: f"127.0.0.1:{self.mapping.get(int(m.group(1)), int(m.group(1)))}",
            text,
        )


def faster(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in text, f"{old!r} is no longer in the shipped file: update the test"
        text = text.replace(old, new)
    return text


def recmon_config(ports: Ports, workdir: Path) -> Path:
    """The repository's probes.yaml, copied as the guide copies it (never appended to: the
    tracked file stays as shipped), with the guide's `cat >>` block appended to the copy."""
    assert f"cp probes.yaml {GUIDE_CONFIG}" in commands(QUICKSTART)
    (heredoc,) = re.findall(
        rf"cat >> {re.escape(GUIDE_CONFIG)} <<'YAML'\n(.*?)\n\s*YAML\n", QUICKSTART, re.S
    )
    assert "cat >> probes.yaml" not in QUICKSTART
    appended = "\n".join(
        line[3:] if line.startswith("   ") else line for line in heredoc.split("\n")
    )
    text = (ROOT / "probes.yaml").read_text() + appended + "\n"
    text = faster(text, {"interval: 60s": "interval: 1s", "timeout: 5s": "timeout: 1s"})
    # Detection on the same shortened clock: the storm gathers for 1 s, the empty-results
    # share window holds 10 probes instead of 5 minutes' worth.
    text += "alerts:\n  storm: {group_wait: 1s}\n  empty_results: {window: 10s}\n"
    path = workdir / "probes.yaml"
    path.write_text(ports.local(text))
    return path


def prometheus_files(ports: Ports, workdir: Path) -> Path:
    config = faster(
        (ROOT / "deploy/prometheus/prometheus.example.yml").read_text(),
        {
            "scrape_interval: 15s": "scrape_interval: 1s",
            "evaluation_interval: 15s": "evaluation_interval: 1s",
        },
    )
    rules = faster(
        (ROOT / "deploy/prometheus/recmon-rules.yml").read_text(),
        {"[5m]": "[10s]", "for: 2m": "for: 2s"},
    )
    (workdir / "recmon-rules.yml").write_text(rules)
    path = workdir / "prometheus.example.yml"
    path.write_text(ports.local(config))
    return path


def alertmanager_file(ports: Ports, workdir: Path) -> Path:
    config = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
    assert "global" not in config  # nothing tries to mail localhost:25
    config["route"].update(group_wait="3s", group_interval="3s")
    path = workdir / "alertmanager.yml"
    path.write_text(ports.local(yaml.safe_dump(config)))
    return path


def run_guide_command(
    command: str, ports: Ports, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """A command from the guide, ports rewritten, run from the repository's directory."""
    args = shlex.split(ports.local(command))
    if args[0].startswith(".venv/bin/"):
        args = [sys.executable, "-m", "monitor", *args[1:]]
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False, **kwargs
    )


def one(commands_: list[str], start: str) -> str:
    (found,) = [c for c in commands_ if c.startswith(start)]
    return found


@dataclass
class Stack:
    ports: Ports
    workdir: Path
    recmon: RecmonProcess
    env: dict[str, str]

    def get(self, url: str) -> httpx.Response:
        return httpx.get(url, timeout=10, verify=TLS)

    def notifications(self) -> list[dict[str, Any]]:
        answer = self.get(f"{self.ports.url(8080)}/_admin/notifications").json()
        return [n["body"] for n in answer["notifications"]]

    def prometheus(self, expr: str) -> list[dict[str, Any]]:
        answer = httpx.get(
            f"{self.ports.url(9090)}/api/v1/query", params={"query": expr}, verify=TLS
        )
        body = answer.json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        return list(self.get(f"{self.ports.url(9093)}/api/v2/alerts").json())


async def until(condition: Callable[[], Any], what: str, within: float = WITHIN) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


@pytest.fixture
def ports() -> Ports:
    return Ports()


@pytest.fixture
def sandbox(ports: Ports, tmp_path: Path) -> Iterator[None]:
    # `.venv/bin/recmon sandbox &`, on its port.
    (command,) = [c for c in commands(QUICKSTART) if c.startswith(".venv/bin/recmon sandbox")]
    args = [sys.executable, "-m", "monitor", *shlex.split(command.rstrip("&"))[1:]]
    args += ["--port", str(ports.mapping[8080])]
    with running(args, ready_url=f"{ports.url(8080)}/healthz", log=tmp_path / "sandbox.log"):
        yield


@pytest.fixture
async def stack(ports: Ports, sandbox: None, tmp_path: Path) -> AsyncIterator[Stack]:
    prometheus = require_binary("prometheus")
    alertmanager = require_binary("prometheus-alertmanager")
    require_binary("amtool")
    require_binary("curl")  # the guide's fault switches are curl commands
    config = recmon_config(ports, tmp_path)
    env = {"SANDBOX_URL": ports.url(8080)}
    quick = commands(QUICKSTART)
    # Step 4 as written, on the test's copies of the shipped files.
    prom_args = shlex.split(ports.local(one(quick, "prometheus ")).rstrip("&"))
    prom_args = [
        a.replace(
            "deploy/prometheus/prometheus.example.yml", str(prometheus_files(ports, tmp_path))
        ).replace("/tmp/recmon-tsdb", str(tmp_path / "tsdb"))
        for a in prom_args
    ]
    am_args = shlex.split(ports.local(one(quick, "prometheus-alertmanager ")).rstrip("&"))
    am_args = [
        a.replace(
            "deploy/alertmanager/alertmanager.yml", str(alertmanager_file(ports, tmp_path))
        ).replace("/tmp/recmon-am", str(tmp_path / "am"))
        for a in am_args
    ]
    assert prom_args[0] == "prometheus" and am_args[0] == "prometheus-alertmanager"
    prom_args[0], am_args[0] = prometheus, alertmanager

    # Step 3: check-config, then `recmon run <the copy> --listen 127.0.0.1:9464`.
    check = one(quick, ".venv/bin/recmon check-config ")
    assert check == f".venv/bin/recmon check-config {GUIDE_CONFIG}"
    checked = run_guide_command(
        check.replace(GUIDE_CONFIG, str(config)), ports, env={**os.environ, **env}
    )
    assert checked.returncode == 0, checked.stderr
    assert "warning" not in checked.stderr
    run = one(quick, ".venv/bin/recmon run ")
    assert run.startswith(f".venv/bin/recmon run {GUIDE_CONFIG} --listen 127.0.0.1:9464")
    recmon = RecmonProcess(config, env=env)
    recmon.port = ports.mapping[9464]
    recmon.url = ports.url(9464)
    with (
        running(am_args, ready_url=f"{ports.url(9093)}/-/ready", log=tmp_path / "am.log"),
        running(prom_args, ready_url=f"{ports.url(9090)}/-/ready", log=tmp_path / "prom.log"),
    ):
        await recmon.start()
        try:
            yield Stack(ports, tmp_path, recmon, env)
        finally:
            if recmon.process is not None and recmon.process.returncode is None:
                await recmon.stop()


async def test_the_quickstart_works_as_written_and_pages_once(stack: Stack) -> None:
    ports = stack.ports
    quick = commands(QUICKSTART)

    # Step 4: Prometheus scrapes recmon.
    await until(lambda: stack.prometheus('up{job="recmon"}==1'), "recmon up in Prometheus")
    await until(lambda: stack.prometheus("count(recmon_probes_total)"), "recmon_probes_total")

    # Every URL the guide gives (Pushgateway's aside) answers; the UI pages it warns about
    # really are missing from Debian's Prometheus.
    urls = [u for u in guide_urls(QUICKSTART) if f":{PUSHGATEWAY_PORT}/" not in u]
    assert any("/classic/targets" in u for u in urls)
    for url in urls:
        response = stack.get(ports.local(url))
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
    assert "recmon" in stack.get(f"{ports.url(9090)}/classic/targets").text
    for missing in ("/targets", "/alerts"):
        assert stack.get(f"{ports.url(9090)}{missing}").status_code == 404
    amtools = [c for c in quick if c.startswith("amtool ")]
    assert len(amtools) >= 4
    for command in amtools:
        done = run_guide_command(command, ports)
        assert done.returncode == 0, (command, done.stdout, done.stderr)

    # Step 6: a fault on every tenant, with the guide's own curl.
    fault = one(quick, "curl -X PUT")
    assert run_guide_command(fault, ports).returncode == 0
    started = time.monotonic()

    def notified() -> list[dict[str, Any]]:
        """What the receiver got, but RecmonOverloaded: a loaded machine (CI runs this beside
        other tests) may overload recmon, which is not the quickstart's fault (test_overload.py
        pages it)."""
        return [
            n
            for n in stack.notifications()
            if any(a["labels"]["alertname"] != "RecmonOverloaded" for a in n["alerts"])
        ]

    def firing() -> list[dict[str, Any]]:
        return [n for n in notified() if n["status"] == "firing"]

    await until(firing, "the first notification")
    first_after = time.monotonic() - started
    # Prometheus' own per-tenant RecmonEmptyResults fire too, and reach Alertmanager...
    await until(
        lambda: (
            len(
                [
                    a
                    for a in stack.alertmanager_alerts()
                    if a["labels"]["alertname"] == "RecmonEmptyResults"
                    and a["labels"].get("source") != "recmon"
                ]
            )
            == 20
        ),
        "the rules' 20 per-tenant alerts in Alertmanager",
    )
    await asyncio.sleep(SETTLE)
    # ...yet the receiver got only recmon's grouped incident and its fleet-wide companion:
    # together in one notification, or — when recmon posts the companion after the group's
    # 1 s group_wait, as a loaded machine can — in a second one for the same group.
    firing = notified()
    assert 1 <= len(firing) <= 2, [n["status"] for n in firing]
    assert all(n["status"] == "firing" and n["receiver"] == "pager" for n in firing), firing
    notification = firing[-1]  # a group's notification lists every alert of it so far
    alerts = notification["alerts"]
    assert {a["labels"]["alertname"] for a in alerts} == {"RecmonEmptyResults"}
    assert {a["labels"]["source"] for a in alerts} == {"recmon"}
    assert all(a["labels"]["grouped"] == "true" for a in alerts)
    assert any("for all 20 tenants" in a["annotations"]["summary"] for a in alerts), alerts
    # Prometheus' copies are recorded, not paged. (Its RecmonOverloaded and
    # RecmonEventLoopLagging page, rightly: a loaded machine fires them for the recmon here.)
    recorded = [
        a
        for a in stack.alertmanager_alerts()
        if a["labels"].get("source") != "recmon"
        and a["labels"]["alertname"] not in ("RecmonOverloaded", "RecmonEventLoopLagging")
    ]
    assert {r["name"] for a in recorded for r in a["receivers"]} == {"recorded"}, [
        (a["labels"]["alertname"], [r["name"] for r in a["receivers"]]) for a in recorded
    ]
    query = one(quick, "amtool --alertmanager.url=http://127.0.0.1:9093 alert query alertname=")
    shown = run_guide_command(query, ports)
    assert shown.returncode == 0 and "RecmonEmptyResults" in shown.stdout

    # Clearing it resolves it: one more notification, resolved.
    clear = one(quick, "curl -X DELETE")
    assert run_guide_command(clear, ports).returncode == 0
    cleared = time.monotonic()
    await until(lambda: any(n["status"] == "resolved" for n in notified()), "the resolve")
    resolved_after = time.monotonic() - cleared
    await asyncio.sleep(SETTLE)
    sent = notified()

    # Nothing new fired: every later notification is about the alerts of the first one, and
    # the last says all of them resolved. (recmon resolves the grouped incident and its
    # fleet-wide companion together; should their two posts straddle a 3 s group_interval,
    # Alertmanager reports the first resolve on its own — at the shipped 5 m it cannot.)
    def identity(alert: dict[str, Any]) -> str:
        return json.dumps(alert["labels"], sort_keys=True)

    paged = {identity(a) for a in notification["alerts"]}
    assert sent[: len(firing)] == firing
    assert all(identity(a) in paged for n in sent[1:] for a in n["alerts"]), sent
    assert sent[-1]["status"] == "resolved", [n["status"] for n in sent]
    assert {a["status"] for a in sent[-1]["alerts"]} == {"resolved"}
    resolved = {identity(a) for n in sent[1:] for a in n["alerts"] if a["status"] == "resolved"}
    assert resolved == paged
    assert len(sent) <= len(firing) + 2, [n["status"] for n in sent]
    print(
        f"\nquickstart (1 s probes): first notification {first_after:.1f} s after the fault, "
        f"resolved {resolved_after:.1f} s after clearing it"
    )

    # Step 7: CronJob mode and the Pushgateway, as the guide has it.
    step7 = QUICKSTART[QUICKSTART.index("7. **CronJob mode") :]
    seven = commands(step7)
    assert seven[0] == "kill $RECMON_PID"
    await stack.recmon.stop()
    gateway_args = shlex.split(ports.local(one(seven, "prometheus-pushgateway ")).rstrip("&"))
    gateway_args[0] = require_binary("prometheus-pushgateway")
    once = one(seven, ".venv/bin/recmon once ").split(";")[0]
    config = str(stack.workdir / "probes.yaml")
    env = {**os.environ, **stack.env}
    with running(
        gateway_args,
        ready_url=f"{ports.url(PUSHGATEWAY_PORT)}/-/ready",
        log=stack.workdir / "pushgateway.log",
    ):
        done = run_guide_command(once.replace(GUIDE_CONFIG, config), ports, env=env)
        assert done.returncode in (0, 1), done.stderr
        assert "probe(s)" in done.stdout or "all probes ok" in done.stdout
        metrics = stack.get(f"{ports.url(PUSHGATEWAY_PORT)}/metrics").text
        assert re.search(r'^recmon_probes_total\{.*job="recmon"', metrics, re.M), metrics[:2000]
        await until(lambda: stack.prometheus("push_time_seconds"), "Prometheus scraping the push")
        for url in guide_urls(step7):
            response = stack.get(ports.local(url))
            assert response.status_code == 200, (url, response.status_code)
    # A failed push is exit 2, said in one line.
    failed = run_guide_command(once.replace(GUIDE_CONFIG, config), ports, env=env)
    assert failed.returncode == 2, failed.stderr
    assert "push to Pushgateway failed" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_the_guide_names_files_that_exist_and_commands_that_parse() -> None:
    quick = commands(QUICKSTART)
    for command in quick:
        for word in shlex.split(command, comments=True):
            for path in re.findall(r"(?:=|^)(deploy/[\w./-]+)", word):
                assert (ROOT / path).exists(), (command, path)
    assert "pip install -q -e '.[test]'" in QUICKSTART  # step 1 installs the linters
    assert "Address already in use" in QUICKSTART
    # The shipped Alertmanager configuration is valid for Debian's amtool.
    amtool = require_binary("amtool")
    done = subprocess.run(
        [amtool, "check-config", str(ROOT / "deploy/alertmanager/alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
