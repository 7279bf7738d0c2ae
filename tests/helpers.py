"""Shared test helpers: configurations and checks built from short YAML snippets."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pickle
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import pytest

from monitor.config.loader import LoadedConfig, load_config_text
from monitor.probing.checks import HttpCheck, compile_checks

# The repository's root, wherever a test module sits below tests/.
ROOT = Path(__file__).resolve().parent.parent

# Sandbox latencies for tests that do not measure latency: quick, and far from any timeout.
FAST = {"search": 5.0, "recommendations": 5.0}

BASE_CONFIG = """
defaults: {interval: 10s, timeout: 2s}
targets:
  api: {base_url: "http://api.test"}
tenants:
  static: [acme, globex]
  default_vars: {query: shoes}
checks:
  search:
    target: api
    request: {path: "/v1/{tenant}/search", params: {q: "{query}"}}
    expect: {items: "$.results", min_items: 1}
    capture: {product: "$.results[0].id"}
  recommendations:
    target: api
    after: search
    request: {path: "/v1/{tenant}/recommendations", params: {product: "{product}"}}
    expect: {items: "$.recommendations", min_items: 1}
"""


def load(text: str = BASE_CONFIG, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    return load_config_text(textwrap.dedent(text), source="test.yaml", environ=environ or {})


def checks(text: str = BASE_CONFIG) -> dict[str, HttpCheck]:
    return compile_checks(load(text).config)


T = TypeVar("T")


def once_per_run(factory: pytest.TempPathFactory, name: str, compute: Callable[[Path], T]) -> T:
    """`compute(directory)`'s value, computed once per test run however many xdist workers ask
    for it (a long replay that tests on several workers read): the first to ask computes it,
    in a directory of the run's temporary directory that every worker shares, and leaves it
    there pickled; the others wait for it and read it. Outside xdist, simply computed (in a
    directory of its own)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return compute(factory.mktemp(name))
    directory = factory.getbasetemp().parent / name
    path = directory.with_suffix(".pickle")
    with open(directory.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            value: T = pickle.loads(path.read_bytes())
            return value
        directory.mkdir()
        value = compute(directory)
        path.write_bytes(pickle.dumps(value))
        return value


async def settle() -> None:
    """Let the event loop run what is ready, and what that makes ready (a few rounds)."""
    for _ in range(5):
        await asyncio.sleep(0)
