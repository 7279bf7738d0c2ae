"""What the runbooks tell a responder holds: each starts with what to do first, every log
line it quotes is one recmon writes, every alert links one. (Their queries run against real
Prometheus, their commands against the sandbox, in tests/integration/test_runbook_queries.py
and test_locations.py.)"""

from __future__ import annotations

import re

import yaml

from monitor.core.notifications import RUNBOOKS as RULE_RUNBOOKS
from tests.helpers import ROOT
from tests.runbooks import RUNBOOKS, log_quotes, pages, queries, shell_blocks

SOURCE = "\n".join(p.read_text() for p in (ROOT / "monitor").rglob("*.py"))


def test_every_runbook_starts_with_do_first() -> None:
    for page in pages():
        sections = re.findall(r"^## (.+)$", page.read_text(), re.M)
        assert sections and sections[0] == "Do first", f"{page.name}: {sections[:2]}"
        do_first = page.read_text().split("## Do first\n", 1)[1].split("\n## ", 1)[0]
        # One bullet per way it fires, each saying what to do.
        bullets = [line for line in do_first.splitlines() if line.startswith("- ")]
        assert len(bullets) >= 2, page.name


def test_every_quoted_log_line_is_one_recmon_writes() -> None:
    quoted = {(page.name, msg) for page in pages() for msg in log_quotes(page)}
    assert len(quoted) >= 6
    for name, msg in quoted:
        # "…" stands for a part that varies; every fixed part is in the code as written.
        for part in filter(None, (p.strip() for p in re.split(r"…|\.\.\.", msg))):
            assert part in SOURCE, f"{name}: no log line {msg!r} ({part!r}) in monitor/"


def test_log_lines_are_quoted_in_the_checkable_form() -> None:
    # A log line quoted any other way ("search the log for \"...\"") escapes the check above.
    for page in pages():
        text = page.read_text()
        loose = re.findall(r"\blog(?:s| line)?\s+\"[^\"]+\"", text)
        assert loose == [], f'{page.name}: quote log lines as `msg="…"`: {loose}'


def test_every_runbook_has_queries_and_promql_only_in_promql_blocks() -> None:
    for page in pages():
        assert queries(page), f"{page.name} has no ```promql block"
        outside = re.sub(r"```promql\n.*?```", "", page.read_text(), flags=re.S)
        # A query in running text (rate(...), increase(...)) is one no test runs.
        inline = re.findall(r"`[^`\n]*\b(?:rate|increase|sum by|count by)\s*\([^`\n]*`", outside)
        assert inline == [], f"{page.name}: {inline}"


def test_shell_commands_are_only_in_sh_blocks() -> None:
    # A curl, openssl or jq in running text is a command no test runs (kubectl and dig are
    # left in prose: they need a cluster, or the network of one location).
    for page in pages():
        outside = re.sub(r"```(?:sh|promql)\n.*?```", "", page.read_text(), flags=re.S)
        inline = re.findall(r"`(?:curl|openssl|jq|recmon) [^`]*`", outside)
        assert inline == [], f"{page.name}: {inline}"
    assert sum(len(shell_blocks(page)) for page in pages()) >= 9


def test_every_alert_and_rule_links_a_runbook_page_that_exists() -> None:
    names = {p.name for p in pages()}
    for path in RULE_RUNBOOKS.values():
        assert path.removeprefix("docs/runbooks/") in names, path
    for rules in ("recmon-rules.yml", "recmon-locations.yml"):
        groups = yaml.safe_load((ROOT / "deploy" / "prometheus" / rules).read_text())["groups"]
        for rule in (r for g in groups for r in g["rules"] if "alert" in r):
            page = rule["annotations"]["runbook_url"].rsplit("/", 1)[-1]
            assert (RUNBOOKS / page).is_file(), f"{rule['alert']}: {page}"
