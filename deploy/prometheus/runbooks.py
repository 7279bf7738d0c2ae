"""Point the Prometheus rules' runbook links at where recmon's docs are published.

    python deploy/prometheus/runbooks.py --runbook-base-url https://git.example.com/recmon/blob/main
    python deploy/prometheus/runbooks.py --check     # exit 1 unless every link is absolute

A pager opens a link, not a path: every alert's `runbook_url` is
`<base>/docs/runbooks/<page>.md`, the base being the same value as recmon's own
`notify.runbook_base_url` (where the repository's `docs/` is published). The script rewrites
the `runbook_url:` lines of recmon-rules.yml, recmon-locations.yml and their promtool tests in
place (nothing else changes); `locations.py --runbook-base-url` writes the same links when it
generates the location rules. The committed files carry DEFAULT_BASE_URL: set yours before
loading them.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent.parent / "docs" / "runbooks"
# The one base URL of the shipped rules (a placeholder: deployments set theirs).
DEFAULT_BASE_URL = "https://git.example.com/recmon/blob/main"
# The rules and their promtool unit tests (which expect the same links).
RULE_FILES = (
    HERE / "recmon-rules.yml",
    HERE / "recmon-locations.yml",
    HERE / "tests" / "recmon-rules.test.yml",
    HERE / "tests" / "recmon-rules-days.test.yml",
    HERE / "tests" / "recmon-locations.test.yml",
)
# The runbook page of a line, whatever it pointed at before (a relative path, an old base).
LINE = re.compile(r"^(?P<indent>\s*runbook_url:\s*)(?P<url>\S+?/)?(?P<page>[\w.-]+\.md)\s*$")


def runbook_link(base_url: str, page: str) -> str:
    return f"{base_url.rstrip('/')}/docs/runbooks/{page}"


def rewrite(text: str, base_url: str) -> str:
    lines = []
    for line in text.splitlines(keepends=True):
        found = LINE.match(line.rstrip("\n"))
        if found:
            line = found["indent"] + runbook_link(base_url, found["page"]) + "\n"
        lines.append(line)
    return "".join(lines)


def problems(text: str, name: str) -> list[str]:
    """Links that are not absolute or name a runbook that does not exist."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if "runbook_url:" not in line:
            continue
        url = line.split("runbook_url:", 1)[1].strip()
        page = url.rsplit("/", 1)[-1]
        if not re.match(r"^https?://[^/]+/", url) or "/docs/runbooks/" not in url:
            found.append(f"{name}:{number}: {url} is not <base>/docs/runbooks/<page>.md")
        elif not (DOCS / page).is_file():
            found.append(f"{name}:{number}: no runbook docs/runbooks/{page}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runbook-base-url",
        default=DEFAULT_BASE_URL,
        help="where recmon's docs/ is published, as notify.runbook_base_url "
        f"(default {DEFAULT_BASE_URL})",
    )
    parser.add_argument("files", nargs="*", type=Path, default=list(RULE_FILES))
    parser.add_argument(
        "--check", action="store_true", help="exit 1 unless every runbook_url is absolute"
    )
    args = parser.parse_args(argv)
    if not re.match(r"^https?://[^/]+", args.runbook_base_url):
        parser.error(f"--runbook-base-url {args.runbook_base_url!r} is not an http(s) URL")
    failed = False
    for path in args.files:
        text = path.read_text()
        if args.check:
            for problem in problems(text, path.name):
                print(problem, file=sys.stderr)
                failed = True
        else:
            path.write_text(rewrite(text, args.runbook_base_url))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
