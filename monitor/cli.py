"""Command line: recmon run | once | check-config | sandbox | demo (DESIGN.md contract)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from prometheus_client import disable_created_metrics

from monitor import __version__
from monitor.app.modes import EXIT_ERROR, OnceOptions, run_forever, run_once
from monitor.config.loader import ConfigError, LoadedConfig, load_config_file
from monitor.core.secrets import Redactor
from monitor.core.tenancy import Shard
from monitor.state.store import StateUnavailable
from monitor.telemetry.logs import setup_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recmon",
        description="Synthetic per-tenant monitor for search and recommendations APIs.",
    )
    parser.add_argument("--version", action="version", version=f"recmon {__version__}")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=os.environ.get("RECMON_LOG_FORMAT", "text"),
        help="text for people, json for log pipelines (one JSON object per line)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=os.environ.get("RECMON_LOG_LEVEL", "info"),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="probe on schedule and serve /metrics (sidecar, Deployment)"
    )
    run.add_argument("--config", required=True, help="path to probes.yaml")
    run.add_argument("--listen", help="override metrics.listen, e.g. 127.0.0.1:9464")
    run.add_argument("--results-log", help="append every probe result to this file as a JSON line")
    _shard_option(run)

    once = commands.add_parser("once", help="probe every tenant once, notify, exit 0/1/2 (CronJob)")
    once.add_argument("--config", required=True, help="path to probes.yaml")
    once.add_argument("--pushgateway", help="override metrics.pushgateway URL")
    once.add_argument(
        "--metrics-file", help="also write the metrics to this file (textfile format)"
    )
    once.add_argument("--quiet", action="store_true", help="no summary on standard output")
    once.add_argument(
        "--flush-timeout",
        type=float,
        default=30.0,
        help="seconds to spend delivering notifications before exiting (default 30); "
        "what is left is delivered by the next run",
    )
    once.add_argument(
        "--alerts-exit-code",
        type=int,
        choices=(0, 1),
        default=1,
        help="exit code when the round ends with alerts firing (default 1); 0 for a "
        "Kubernetes CronJob, so that only errors (exit 2) mark its Job failed",
    )
    _shard_option(once)

    check = commands.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("path", help="path to probes.yaml")
    check.add_argument(
        "--dump", action="store_true", help="print the effective configuration, secrets redacted"
    )

    import monitor.sandbox.cli as sandbox_cli

    sandbox = commands.add_parser("sandbox", help="serve the simulated multi-tenant service")
    sandbox_cli.add_arguments(sandbox)

    replay = commands.add_parser("replay", help="replay an incident scenario in virtual time")
    replay.add_argument(
        "scenario", choices=("incident", "latency", "healthy-week"), help="which scenario"
    )
    replay.add_argument("--seed", type=int, default=1, help="random seed for the simulated noise")

    from monitor.sandbox import demo

    demo_parser = commands.add_parser(
        "demo", help="sandbox + monitor with faults switched on and off"
    )
    demo.add_arguments(demo_parser)
    return parser


def _default_shard() -> str:
    """RECMON_SHARD ("1/3"), or RECMON_SHARD_INDEX with RECMON_SHARD_COUNT — the index can come
    straight from a StatefulSet pod's apps.kubernetes.io/pod-index label."""
    if "RECMON_SHARD" in os.environ:
        return os.environ["RECMON_SHARD"]
    index = os.environ.get("RECMON_SHARD_INDEX")
    if index is not None:
        return f"{index}/{os.environ.get('RECMON_SHARD_COUNT', '1')}"
    return "0/1"


def _shard_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shard",
        default=_default_shard(),
        help="probe only shard i of n of the tenants, e.g. 1/3 "
        "(env RECMON_SHARD, or RECMON_SHARD_INDEX and RECMON_SHARD_COUNT)",
    )


def _load(path: str, redactor: Redactor) -> LoadedConfig | None:
    try:
        loaded = load_config_file(path)
    except ConfigError as exc:
        print(
            redactor.redact(f"configuration error{'s' if len(exc.problems) > 1 else ''}:\n{exc}"),
            file=sys.stderr,
        )
        return None
    redactor.add(loaded.secrets)
    return loaded


def main(argv: Sequence[str] | None = None) -> int:
    disable_created_metrics()  # type: ignore[no-untyped-call]
    args = _parser().parse_args(argv)
    redactor = Redactor()
    setup_logging(fmt=args.log_format, level=args.log_level, redactor=redactor)

    if args.command == "check-config":
        loaded = _load(args.path, redactor)
        if loaded is None:
            return EXIT_ERROR
        config = loaded.config
        if args.dump:
            from monitor.config.dump import dump_config

            print(redactor.redact(dump_config(config)), end="")
        print(
            f"{args.path}: ok ({len(config.targets)} targets, {len(config.checks)} checks)",
            file=sys.stderr if args.dump else sys.stdout,
        )
        return 0
    if args.command == "sandbox":
        import monitor.sandbox.cli as sandbox_cli

        return int(sandbox_cli.run(args))
    if args.command == "replay":
        from monitor.replay.runner import format_report, replay
        from monitor.replay.scenarios import SCENARIOS

        print(format_report(replay(SCENARIOS[args.scenario](), seed=args.seed)))
        return 0
    if args.command == "demo":
        from monitor.sandbox import demo

        return demo.run(args)

    try:
        shard = Shard.parse(args.shard)
    except ValueError as exc:
        print(f"recmon: {exc}", file=sys.stderr)
        return EXIT_ERROR
    loaded = _load(args.config, redactor)
    if loaded is None:
        return EXIT_ERROR
    try:
        if args.command == "run":
            return asyncio.run(
                run_forever(
                    loaded,
                    shard=shard,
                    listen=args.listen,
                    results_log=args.results_log,
                    redactor=redactor,
                )
            )
        options = OnceOptions(
            shard=shard,
            pushgateway=args.pushgateway,
            metrics_file=args.metrics_file,
            quiet=args.quiet,
            flush_within=args.flush_timeout,
            alerts_exit_code=args.alerts_exit_code,
        )
        return asyncio.run(run_once(loaded, options))
    except KeyboardInterrupt:
        return EXIT_ERROR
    except StateUnavailable as exc:
        logging.getLogger("recmon").error(str(exc))
        return EXIT_ERROR
    except Exception:
        logging.getLogger("recmon").exception("internal error")
        return EXIT_ERROR
