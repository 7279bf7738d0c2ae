"""JsonPath.items: the list a path designates, counted by count_items."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.core.jsonpath import compile_path

DOCUMENT = {"results": [{"id": "a"}, {"id": "b"}], "none": None, "one": {"id": "c"}, "n": 3}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.results", [{"id": "a"}, {"id": "b"}]),
        ("$.results[*].id", ["a", "b"]),
        ("$.none", []),  # null reads as no items
        ("$.one", None),  # an object is the wrong shape
        ("$.n", None),  # so is a scalar
        ("$.absent", None),
        ("$.results[5]", None),
        ("$.*", [[{"id": "a"}, {"id": "b"}], None, {"id": "c"}, 3]),
    ],
)
def test_items_are_the_list_a_path_designates(path: str, expected: list[Any] | None) -> None:
    compiled = compile_path(path)
    assert compiled.items(DOCUMENT) == expected
    assert compiled.count_items(DOCUMENT) == (None if expected is None else len(expected))
