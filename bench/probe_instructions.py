"""Instructions per probe of the probe path (valgrind's callgrind, user space), two or more
source trees: a count the machine's load hardly moves, where bench/probe_path.py's CPU time
varies by +-15% from run to run on a shared machine.

    .venv/bin/python bench/probe_instructions.py /tmp/main .     # main against this tree

bench/probe_path.py's run (its server, a task per probe, 60 in flight) under callgrind,
twice per tree with --few and --many measured probes: the difference over the difference in
probes is what a probe costs, start-up and warm-up left out. Needs valgrind (Debian's); each
run is ~50x slower than without it (~1 minute a tree). Counts move by ~1% between runs on an
idle machine, more under load (a loaded server answers later: more loop turns a probe).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import probe_path  # the server, the configuration and the run


def instructions(tree: str, port: int, probes: int, work: str) -> int:
    config = probe_path.CONFIG.format(port=port)
    code = probe_path.RUN.format(tree=tree, config=config, warm=500, probes=probes)
    script = os.path.join(work, f"run_{probes}.py")
    with open(script, "w") as file:
        file.write(code)
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={os.path.join(work, 'callgrind.out')}",
            sys.executable,
            script,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode or found is None:
        raise SystemExit(f"{tree}: {out.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", help="directories holding a `monitor` package")
    parser.add_argument("--few", type=int, default=500, help="measured probes, first run")
    parser.add_argument("--many", type=int, default=3000, help="measured probes, second run")
    args = parser.parse_args()
    trees = [os.path.abspath(tree) for tree in args.trees]
    port = probe_path.free_port()
    answer, delay = probe_path.ANSWER, probe_path.DELAY_S
    server = subprocess.Popen(
        [sys.executable, "-c", probe_path.SERVER.format(answer=answer, delay=delay, port=port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        counts = []
        with tempfile.TemporaryDirectory(prefix="probe-instructions-") as work:
            for tree in trees:
                few = instructions(tree, port, args.few, work)
                many = instructions(tree, port, args.many, work)
                counts.append((many - few) / (args.many - args.few))
    finally:
        server.terminate()
        server.wait(10)
    for tree, count in zip(trees, counts, strict=True):
        print(f"{tree:<40} instructions per probe: {count:,.0f}  x{count / counts[0]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
