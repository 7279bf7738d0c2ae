"""`recmon demo`'s command-line options, apart from the demo itself: every recmon command
builds the parser, and none but the demo needs what the demo imports."""

from __future__ import annotations

import argparse

DEFAULT_LISTEN = "127.0.0.1:9464"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenants", type=int, default=8, help="sandbox tenants (default 8)")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between probes of a tenant (default 2)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="tables to show in each phase after the 2 that let alerts fire or resolve "
        "(default 3: 5 tables a phase)",
    )
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        help=f"where to serve the status page (default {DEFAULT_LISTEN}; a free port if taken)",
    )
    parser.add_argument(
        "--locations",
        action="store_true",
        help="the second demo: three recmon at three locations, real Prometheus and "
        "Alertmanager (Debian packages) with the shipped cross-location rules and routing: "
        "a location problem, a tenant problem, a platform outage, a location gone silent",
    )
