"""The runbooks as data: their PromQL queries and the log lines they quote.

Runbooks write every query a reader is told to run in a ```promql block (one query a line,
placeholders such as `<tenant>` for what the page names), every shell command in a ```sh
block (`$API` for the API's base URL), and quote recmon's log lines as `msg="…"` (the `msg` of
a JSON log line, "…" for a part that varies), so tests can run the first two and find the
last in the code. (kubectl and dig stay in prose: they need a cluster, or the network of a
location.)
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.helpers import ROOT

RUNBOOKS = ROOT / "docs" / "runbooks"
_PROMQL = re.compile(r"^(?P<indent>[ \t]*)```promql\n(?P<body>.*?)^(?P=indent)```", re.S | re.M)
_SH = re.compile(r"^(?P<indent>[ \t]*)```sh\n(?P<body>.*?)^(?P=indent)```", re.S | re.M)
_LOG_LINE = re.compile(r'`msg="(?P<msg>[^"`]+)"`')
_PLACEHOLDER = re.compile(r"<(?P<name>[a-z]+)>")


def pages() -> list[Path]:
    return sorted(RUNBOOKS.glob("*.md"))


def queries(page: str | Path) -> list[str]:
    text = (RUNBOOKS / page).read_text() if isinstance(page, str) else page.read_text()
    return [
        line.strip()
        for block in _PROMQL.finditer(text)
        for line in block["body"].splitlines()
        if line.strip()
    ]


def shell_blocks(page: str | Path) -> list[str]:
    """Each ```sh block as one script, its indentation removed."""
    text = (RUNBOOKS / page).read_text() if isinstance(page, str) else page.read_text()
    return [
        "\n".join(line.removeprefix(block["indent"]) for line in block["body"].splitlines())
        for block in _SH.finditer(text)
    ]


def log_quotes(page: Path) -> list[str]:
    return [m["msg"] for m in _LOG_LINE.finditer(page.read_text())]


def fill(expr: str, values: dict[str, str]) -> str:
    """The query with the page's placeholders replaced by the scenario's values."""
    missing = {m["name"] for m in _PLACEHOLDER.finditer(expr)} - set(values)
    assert not missing, f"{expr}: no value for {missing}"
    return _PLACEHOLDER.sub(lambda m: values[m["name"]], expr)


Query = Callable[[str], Awaitable[list[Any]]]


async def without_data(
    query: Query, page: str, values: dict[str, str], skip: frozenset[str] = frozenset()
) -> list[str]:
    """The page's queries (placeholders filled) that return nothing now; `skip` names queries
    whose scenario is not this one (each with its reason where it is passed)."""
    found = queries(page)
    assert found, f"{page} has no ```promql block"
    return [fill(q, values) for q in found if q not in skip and not await query(fill(q, values))]
