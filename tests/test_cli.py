"""The command line behaves like the tools people know: global options in any position, the
configuration as PATH, --config PATH or RECMON_CONFIG in every command, help that describes
each command, and a busy port that is one line and exit 2."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli import _parser, main

GOOD = """
targets:
  api: {base_url: "http://127.0.0.1:1"}
tenants: {static: [acme]}
checks:
  search: {target: api, request: {path: /search}}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "probes.yaml"
    path.write_text(GOOD)
    return path


def _commands() -> dict[str, argparse.ArgumentParser]:
    # argparse has no public way to reach its subparsers.
    action = next(a for a in _parser()._actions if a.dest == "command")
    assert isinstance(action.choices, dict)
    return action.choices


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-level", "debug", "once", "--config", "P"],
        ["once", "--config", "P", "--log-level", "debug"],
        ["once", "--log-level", "debug", "P"],
        ["--log-format", "json", "once", "P", "--log-level", "debug"],
    ],
)
def test_global_options_work_before_and_after_the_command(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    assert args.log_level == "debug"
    assert "P" in (args.path, args.config)


def test_an_option_after_the_command_overrides_the_one_before() -> None:
    args = _parser().parse_args(["--log-level", "error", "run", "P", "--log-level", "debug"])
    assert args.log_level == "debug"
    defaults = _parser().parse_args(["run", "P"])
    assert (defaults.log_level, defaults.log_format) == ("info", "text")


@pytest.mark.parametrize("form", ["positional", "option", "environment"])
def test_check_config_accepts_every_form_of_the_path(
    form: str, config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RECMON_CONFIG", raising=False)
    argv = {
        "positional": ["check-config", str(config)],
        "option": ["check-config", "--config", str(config)],
        "environment": ["check-config"],
    }[form]
    if form == "environment":
        monkeypatch.setenv("RECMON_CONFIG", str(config))
    assert main(argv) == 0
    assert f"{config}: ok" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["run", "once"])
def test_run_and_once_accept_the_positional_path(command: str, config: Path) -> None:
    args = _parser().parse_args([command, str(config)])
    assert args.path == str(config)


def test_no_configuration_or_two_different_ones_are_errors(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RECMON_CONFIG", raising=False)
    assert main(["once"]) == 2
    assert "give PATH, --config PATH or set RECMON_CONFIG" in capsys.readouterr().err
    assert main(["check-config", str(config), "--config", "other.yaml"]) == 2
    assert "two configuration files given" in capsys.readouterr().err
    # The same file twice is no conflict.
    assert main(["check-config", str(config), "--config", str(config)]) == 0


def test_help_describes_every_command_and_the_shard_numbering() -> None:
    for name, sub in _commands().items():
        assert sub.description, f"recmon {name} --help has no description"
    for name in ("run", "once"):
        text = " ".join(_commands()[name].format_help().split())
        assert "counted from 0" in text
        assert "e.g. 1/3" not in text


def test_sandbox_help_lists_every_fault_field() -> None:
    from dataclasses import fields

    from monitor.sandbox.faults import Fault

    text = _commands()["sandbox"].format_help()
    for field in fields(Fault):
        assert f"  {field.name}:" in text, field.name


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


@pytest.mark.parametrize("command", ["run", "sandbox"])
def test_a_busy_port_is_one_line_and_exit_2(command: str, busy_port: int, config: Path) -> None:
    args = {
        "run": ["run", str(config), "--listen", f"127.0.0.1:{busy_port}"],
        "sandbox": ["sandbox", "--port", str(busy_port)],
    }[command]
    done = subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert f"cannot listen on 127.0.0.1:{busy_port}: Address already in use" in lines[0]
