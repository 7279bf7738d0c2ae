"""Command line: recmon run | once | check-config | sandbox | replay | demo (the contract is
in README.md: commands, options, exit codes)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import disable_created_metrics

from monitor import __version__
from monitor.app.exitcodes import EXIT_ERROR
from monitor.config.loader import ConfigError, LoadedConfig, load_config_file
from monitor.config.webconfig import WebConfig, WebConfigError, load_web_config
from monitor.core.secrets import Redactor
from monitor.core.tenancy import Shard
from monitor.state.store import HistoryRead, StateUnavailable
from monitor.telemetry.logs import setup_logging
from monitor.telemetry.polltime import TimedSelector, loop_selector
from monitor.telemetry.webauth import server_context


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions keep their line breaks (the sandbox lists its fault fields)."""


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--log-format and --log-level, accepted before and after the subcommand like git's or
    kubectl's. After it they default to SUPPRESS, so they override only when given."""
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=os.environ.get("RECMON_LOG_FORMAT", "text") if top else argparse.SUPPRESS,
        help="text for people, json for log pipelines (one JSON object per line; "
        "env RECMON_LOG_FORMAT)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=os.environ.get("RECMON_LOG_LEVEL", "info") if top else argparse.SUPPRESS,
        help="env RECMON_LOG_LEVEL (default info)",
    )


def _config_options(parser: argparse.ArgumentParser) -> None:
    """The configuration file: PATH, --config PATH or RECMON_CONFIG, in every command."""
    parser.add_argument(
        "path", nargs="?", metavar="PATH", help="path to probes.yaml (or --config, RECMON_CONFIG)"
    )
    parser.add_argument("--config", metavar="PATH", help="path to probes.yaml (same as PATH)")


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name, help=summary, description=description, formatter_class=_Formatter
    )
    _global_options(parser, top=False)
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recmon",
        description="Synthetic per-tenant monitor for search and recommendations APIs.",
        epilog="Global options (--log-format, --log-level) go before or after the command. "
        "'recmon COMMAND --help' describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"recmon {__version__}")
    _global_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = _command(
        commands,
        "run",
        "probe on schedule and serve /metrics (sidecar, Deployment)",
        "Probe every tenant on schedule, page through the configured sinks, serve /metrics, "
        "/healthz, /readyz and /status. Runs until SIGTERM; SIGHUP or a change to the file "
        "reloads the configuration. Exit 0 after a clean stop, 2 on errors (a bad "
        "configuration, a busy port, a state file in use).",
    )
    _config_options(run)
    run.add_argument("--listen", help="override metrics.listen, e.g. 127.0.0.1:9464")
    run.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        help="TLS and basic auth for /, /status and /metrics: a web configuration file in the "
        "Prometheus exporters' format (overrides metrics.web_config_file)",
    )
    run.add_argument(
        "--results-log",
        help="append every probe result to this file as a JSON line (flushed each line)",
    )
    _shard_option(run)

    once = _command(
        commands,
        "once",
        "probe every tenant once, notify, exit 0/1/2 (CronJob)",
        "Probe every tenant once, evaluate the alert rules against the saved state, deliver "
        "notifications, save state, push or write metrics, print a summary. Exit 0 when no "
        "alert fires, 1 when alerts fire (see --alerts-exit-code), 2 on errors (a bad "
        "configuration, no tenants, a failed push or metrics file, a state file in use).",
    )
    _config_options(once)
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

    check = _command(
        commands,
        "check-config",
        "validate a configuration file and exit",
        "Validate a configuration file: every problem with its key path and line, then "
        "warnings for settings that are valid but probably wrong. Exit 0 when valid, 2 when "
        "not.",
    )
    _config_options(check)
    check.add_argument(
        "--dump", action="store_true", help="print the effective configuration, secrets redacted"
    )
    check.add_argument(
        "--strict", action="store_true", help="warnings count as errors (exit 2), e.g. in CI"
    )

    import monitor.sandbox.cli as sandbox_cli

    sandbox = _command(
        commands,
        "sandbox",
        "serve the simulated multi-tenant service",
        sandbox_cli.DESCRIPTION,
    )
    sandbox_cli.add_arguments(sandbox)

    replay = _command(
        commands,
        "replay",
        "replay an incident scenario in virtual time",
        "Replay a scenario through the real detector and alert planner on a virtual clock "
        "(days in seconds) and print what was paged and when, ending with a verdict line.",
    )
    replay.add_argument(
        "scenario",
        choices=("incident", "latency", "healthy-week", "fallback"),
        help="which scenario",
    )
    replay.add_argument("--seed", type=int, default=1, help="random seed for the simulated noise")

    report = _command(
        commands,
        "report",
        "availability, incident impact and p95 per tenant from the state file's history",
        "Read the history in the state file (kept 90 days) and print, per tenant × check: "
        "availability over the period (probes inside maintenance windows excluded), the "
        "impact table (every run of failed probes: from, to, minutes, worst outcome), the "
        "day-by-day p95 and the incidents. --incident ID limits the impact table to one "
        "incident's tenants and time. Reads while `recmon run` writes. Exit 0, or 2 on an "
        "unreadable file, an unknown incident or a bad time.",
    )
    _config_options(report)
    report.add_argument(
        "--state",
        action="append",
        metavar="FILE",
        help="a state file to read instead of the configuration's state.path; repeat it to "
        "merge shards into one report",
    )
    report.add_argument(
        "--from",
        dest="since",
        metavar="TIME",
        help="start, ISO 8601 (2026-11-01 or 2026-11-01T12:00:00Z; UTC unless it says); "
        "default 30 days before --to",
    )
    report.add_argument("--to", dest="until", metavar="TIME", help="end (default now)")
    report.add_argument("--incident", metavar="ID", help="report on this incident")
    report.add_argument(
        "--prometheus",
        metavar="URL",
        help="availability from this Prometheus instead (every recmon reporting there: "
        "shards, locations); availability only, maintenance included",
    )
    report.add_argument("--tenant", default="*", metavar="GLOB", help="tenants (default all)")
    report.add_argument("--format", choices=("md", "csv", "json", "html"), default="md")

    from monitor.sandbox import demo_options

    demo_parser = _command(
        commands,
        "demo",
        "sandbox + monitor with faults switched on and off",
        "Start the sandbox and a monitor in one process, then switch faults on and off in "
        "three phases (healthy, faults, recovery), printing a table of live probe results "
        "per round and the pages sent.",
    )
    demo_options.add_arguments(demo_parser)
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
        help="probe only shard i of n of the tenants, counted from 0: 0/3, 1/3 and 2/3 "
        "split them in three (env RECMON_SHARD, or RECMON_SHARD_INDEX and RECMON_SHARD_COUNT; "
        "default 0/1, every tenant)",
    )


def _config_path(args: argparse.Namespace) -> str:
    """PATH, --config PATH or RECMON_CONFIG; two different paths given are an error."""
    given = {p for p in (args.path, args.config) if p}
    if len(given) > 1:
        raise ValueError(
            f"two configuration files given ({args.path} and --config {args.config}): give one"
        )
    path = args.path or args.config or os.environ.get("RECMON_CONFIG")
    if not path:
        raise ValueError("no configuration file: give PATH, --config PATH or set RECMON_CONFIG")
    return str(path)


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


def _web_config(path: str | None) -> WebConfig | None:
    """The web configuration file, checked (its certificate and key load); WebConfigError
    otherwise. Its messages name keys and files, never a hash."""
    if path is None:
        return None
    web = load_web_config(path)
    if web.tls:
        try:
            server_context(web)
        except ValueError as exc:
            raise WebConfigError(web.source, [("", None, str(exc))]) from None
    return web


def _time(text: str) -> float:
    """An ISO 8601 date or time, UTC unless it names its zone."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r} (e.g. 2026-11-01T12:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _merged(reads: Sequence[HistoryRead]) -> HistoryRead:
    """One history from several state files (one per shard)."""
    return HistoryRead(
        [row for r in reads for row in r.hours],
        sorted((event for r in reads for event in r.events), key=lambda e: e[1]),
    )


def _prometheus_report(args: argparse.Namespace) -> int:
    from monitor.app.history_prometheus import PROMETHEUS_NOTE, prometheus_availability
    from monitor.app.history_report import Report, render

    if args.incident:
        print("recmon report: --incident reads a state file, not --prometheus", file=sys.stderr)
        return EXIT_ERROR
    try:
        until = _time(args.until) if args.until else time.time()
        since = _time(args.since) if args.since else until - 30 * 86400
        if until <= since:
            raise ValueError("the period is empty: --to must be after --from")
        rows = prometheus_availability(args.prometheus, since, until, tenants=args.tenant)
    except ValueError as exc:
        print(f"recmon report: {exc}", file=sys.stderr)
        return EXIT_ERROR
    report = Report(since, until, args.tenant, rows, (), (), (), (), notes=(PROMETHEUS_NOTE,))
    sys.stdout.write(render(report, args.format))
    return 0


def _report(args: argparse.Namespace, redactor: Redactor) -> int:
    from monitor.app.assembly import state_path
    from monitor.app.history_report import build_report, find_incident, render
    from monitor.state.store import read_history_file

    if args.prometheus:
        return _prometheus_report(args)
    paths = list(args.state or ())
    if not paths:
        try:
            loaded = _load(_config_path(args), redactor)
        except ValueError as exc:
            print(f"recmon report: {exc} (or --state FILE)", file=sys.stderr)
            return EXIT_ERROR
        if loaded is None:
            return EXIT_ERROR
        paths = [str(state_path(loaded))]
    now = time.time()
    try:
        until = _time(args.until) if args.until else now
        since = _time(args.since) if args.since else until - 30 * 86400
        incident = None
        if args.incident:
            # Events only first (no hour rows): the incident says which hours to read.
            events = _merged([read_history_file(p, math.inf, math.inf) for p in paths])
            incident = find_incident(events, args.incident)
            since = incident.opened_at - incident.opened_at % 3600
            closed = incident.closed_at if incident.closed_at is not None else now
            until = closed - closed % 3600 + 3600
        # Only the period's hour rows: a 90-day file holds millions.
        read = _merged([read_history_file(p, since - since % 3600, until) for p in paths])
        report = build_report(read, since, until, tenants=args.tenant, incident=incident, now=now)
        began = min((row.start for row in report.impact), default=since)
        if incident is not None and began < since:
            # The impact began before the page (the rule's evidence gathering): from there.
            since = began - began % 3600
            read = _merged([read_history_file(p, since, until) for p in paths])
            report = build_report(
                read, since, until, tenants=args.tenant, incident=incident, now=now
            )
    except (ValueError, StateUnavailable) as exc:
        print(f"recmon report: {exc}", file=sys.stderr)
        return EXIT_ERROR
    sys.stdout.write(render(report, args.format))
    return 0


def _run_timed(main: Callable[[TimedSelector], Coroutine[Any, Any, int]]) -> int:
    """asyncio.run(main(polls)) on a selector event loop whose selector times its polls
    (monitor.telemetry.polltime): the probes' transport stamps each answer with the poll that
    read it, handed `polls` by the composition root (nothing looks the loop's selector up)."""
    # This thread runs the loop: its waits for a CPU at the end of a poll count as doubt, and
    # its voluntary switches tell a poll that slept.
    polls = loop_selector()
    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(polls)) as runner:
        return runner.run(main(polls))


def main(argv: Sequence[str] | None = None) -> int:
    disable_created_metrics()  # type: ignore[no-untyped-call]
    args = _parser().parse_args(argv)
    redactor = Redactor()
    setup_logging(fmt=args.log_format, level=args.log_level, redactor=redactor)

    if args.command in ("run", "once", "check-config"):
        try:
            args.path = _config_path(args)
        except ValueError as exc:
            print(f"recmon {args.command}: {exc}", file=sys.stderr)
            return EXIT_ERROR

    if args.command == "check-config":
        loaded = _load(args.path, redactor)
        if loaded is None:
            return EXIT_ERROR
        config = loaded.config
        try:
            _web_config(config.metrics.web_config_file)
        except WebConfigError as exc:
            print(f"web configuration error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        if args.dump:
            from monitor.config.dump import dump_config

            print(redactor.redact(dump_config(config)), end="")
        for warning in loaded.warnings:
            print(f"warning: {warning.format(loaded.source)}", file=sys.stderr)
        if loaded.warnings and args.strict:
            print(f"{args.path}: {len(loaded.warnings)} warning(s), --strict", file=sys.stderr)
            return EXIT_ERROR
        noted = f", {len(loaded.warnings)} warning(s)" if loaded.warnings else ""
        print(
            f"{args.path}: ok ({len(config.targets)} targets, {len(config.checks)} checks{noted})",
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
    if args.command == "report":
        return _report(args, redactor)

    try:
        shard = Shard.parse(args.shard)
    except ValueError as exc:
        print(f"recmon: {exc}", file=sys.stderr)
        return EXIT_ERROR
    loaded = _load(args.path, redactor)
    if loaded is None:
        return EXIT_ERROR
    for warning in loaded.warnings:
        logging.getLogger("recmon").warning(
            f"configuration warning: {redactor.redact(warning.format(loaded.source))}"
        )
    try:
        # Imported by the command that runs them: check-config, sandbox, replay and report
        # start without every part of the monitor (~0.3 CPU-s), once without the status page.
        if args.command == "run":
            from monitor.app.longrun import LongRunning

            try:
                web = _web_config(args.web_config_file or loaded.config.metrics.web_config_file)
            except WebConfigError as exc:
                print(f"web configuration error: {exc}", file=sys.stderr)
                return EXIT_ERROR

            def run_long(polls: TimedSelector) -> Coroutine[Any, Any, int]:
                running = LongRunning(
                    loaded,
                    shard=shard,
                    listen=args.listen,
                    results_log=args.results_log,
                    redactor=redactor,
                    web=web,
                    polls=polls,
                )
                return running.run()

            return _run_timed(run_long)
        from monitor.app.once import OnceOptions, one_round

        options = OnceOptions(
            shard=shard,
            pushgateway=args.pushgateway,
            metrics_file=args.metrics_file,
            quiet=args.quiet,
            flush_within=args.flush_timeout,
            alerts_exit_code=args.alerts_exit_code,
        )
        return _run_timed(lambda polls: one_round(loaded, options, redactor=redactor, polls=polls))
    except KeyboardInterrupt:
        return EXIT_ERROR
    except StateUnavailable as exc:
        logging.getLogger("recmon").error(str(exc))
        return EXIT_ERROR
    except Exception:
        logging.getLogger("recmon").exception("internal error")
        return EXIT_ERROR
