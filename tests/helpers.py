"""Shared test helpers: configurations and checks built from short YAML snippets."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

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
