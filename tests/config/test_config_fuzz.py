"""Property-based: whatever text reaches the loader, it answers with a configuration or a clean
ConfigError naming a line — never a traceback."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config.loader import ConfigError, load_config_text
from tests.helpers import BASE_CONFIG

# CPU-bound (1,200 examples, ~5 CPU-seconds, the parallel phase's costliest tests without a
# subprocess) and reads no clock (deadline=None): tests/run.py runs it at idle priority.
pytestmark = pytest.mark.background

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        ["5s", "1MiB", "50/s", "$.results", "${UNSET}", "${HOME}", "{tenant}", "*", "../admin"]
    ),
)
keys = st.one_of(
    st.sampled_from(
        [
            "defaults",
            "targets",
            "tenants",
            "checks",
            "static",
            "request",
            "expect",
            "path",
            "interval",
            "timeout",
            "items",
            "min_items",
            "alerts",
            "notify",
            "tls",
            "engine",
            "metrics",
            "state",
        ]
    ),
    st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=10),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)


def check(text: str) -> None:
    try:
        load_config_text(text, source="fuzz.yaml", environ={"HOME": "/root"})
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.message
            assert problem.format("fuzz.yaml").startswith("fuzz.yaml")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    check(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes_decoded_loosely(data: bytes) -> None:
    check(data.decode("utf-8", errors="replace"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_yaml_structures(document: object) -> None:
    import yaml

    check(yaml.safe_dump(document))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=len(BASE_CONFIG) - 1), st.text(max_size=8))
def test_mutations_of_a_valid_file(position: int, insert: str) -> None:
    check(BASE_CONFIG[:position] + insert + BASE_CONFIG[position + 1 :])
