"""The `escalation-bot` command: run, demo, check-config, manifest, doctor, explain, db."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from bot.config import AppConfig, Env, check_config, load_config
from bot.core.errors import ConfigError
from bot.core.redact import redact
from bot.logs import json_logs

CONFIG_HELP = "the app.yaml to read"


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except for a flag (off) or an option with none (None)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """The command's parser and every subcommand's (add_subparsers makes them of the same class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)


def version() -> str:
    """The installed package's version; the source tree's when it is not installed."""
    try:
        return metadata.version("escalation-bot")
    except metadata.PackageNotFoundError:
        from bot import __version__

        return __version__


def _load(path: str) -> AppConfig | None:
    try:
        return load_config(path, show_values=True)
    except ConfigError as exc:
        print(f"{path}: the configuration has {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return None


def cmd_run(args: argparse.Namespace) -> int:
    import uvicorn

    from bot.app import Bot
    from bot.doctor import cause, slack_problem

    config = _load(args.config)
    env = Env.from_environ()
    problems = env.problems_for_run()
    if config is None or problems:
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    from slack_sdk.errors import SlackApiError, SlackClientError
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from bot.store.db import DEFAULT_DATABASE_URL, SchemaMismatch

    try:
        bot = Bot(config, env)
    except SchemaMismatch as exc:
        print(f"escalation-bot: {exc}", file=sys.stderr)
        return 2
    except (DBAPIError, ArgumentError, OSError) as exc:
        url = redact(env.database_url_or_default(DEFAULT_DATABASE_URL))
        print(f"escalation-bot: cannot use the database at DATABASE_URL={url}: {cause(exc)}", file=sys.stderr)
        return 1
    from bot.shutdown import catch_signals, serve

    signalled = catch_signals()  # the heartbeat may claim work from here on: a signal stops it gracefully
    try:
        bot.start_background()
    except (SlackApiError, SlackClientError, OSError) as exc:
        bot.stop()
        print(f"escalation-bot: {slack_problem(env, exc)}", file=sys.stderr)
        return 1
    server = uvicorn.Server(
        uvicorn.Config(
            bot.web,
            host=args.host,
            port=args.port,
            log_level="info",
            lifespan="off",
            access_log=False,
            log_config=None if json_logs() else uvicorn.config.LOGGING_CONFIG,  # JSON: the root's handler
        )
    )
    mode = "Socket Mode" if env.socket_mode else f"HTTP at http://{args.host}:{args.port}/slack/events"
    logging.getLogger("bot").info("escalation-bot serving Slack over %s", mode)
    return serve(bot, server, signalled)  # until SIGTERM or SIGINT; then stops within runtime.shutdown_grace


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.sandbox.demo import main

    return main(sys.stdout, channel=args.channel, as_json=args.json, llm_fixture=args.llm_fixture)


def cmd_check_config(args: argparse.Namespace) -> int:
    problems = check_config(args.config, Env.from_environ() if args.env else None, show_values=True)
    if problems:
        print(f"{args.config}: {len(problems)} problem(s):")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print(f"{args.config}: OK")
    return 0


def cmd_manifest(args: argparse.Namespace) -> int:
    from bot.manifest import manifest_yaml

    config = _load(args.config)
    if config is None:
        return 2
    socket_mode = args.socket_mode or Env.from_environ().socket_mode
    try:
        text = manifest_yaml(config, socket_mode)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{args.config}: {problem}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from bot.doctor import run_doctor

    if args.json:  # automation gets its JSON document even when app.yaml itself is wrong
        from bot.doctor.report import Report

        try:
            config = load_config(args.config, show_values=True)
        except ConfigError as exc:
            report = Report()
            for problem in exc.problems:
                report.add("configuration", False, f"{args.config}: {problem}", "correct app.yaml")
            report.write(sys.stdout, as_json=True)
            return 2
        return run_doctor(config, Env.from_environ(), sys.stdout, as_json=True)
    loaded = _load(args.config)
    if loaded is None:
        return 2
    return run_doctor(loaded, Env.from_environ(), sys.stdout, as_json=False)


def cmd_explain(args: argparse.Namespace) -> int:
    from bot.explain import run_explain

    config = _load(args.config)
    if config is None:
        return 2
    return run_explain(config, Env.from_environ(), args.alert, sys.stdout, sys.stderr)


def cmd_db(args: argparse.Namespace) -> int:
    from bot.dbcli import db_current, db_upgrade
    from bot.store.db import DEFAULT_DATABASE_URL

    url = Env.from_environ().database_url_or_default(DEFAULT_DATABASE_URL)
    command = db_upgrade if args.action == "upgrade" else db_current
    return command(url, sys.stdout, sys.stderr)


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="escalation-bot",
        description="Fix ML pipeline failures at Level 1; "
        "escalate the rest in Slack, level by level, until a decision is recorded.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--version", action="version", version=f"escalation-bot {version()}")
    sub = p.add_subparsers(dest="command", required=True, help="what to do (COMMAND --help for its options)")
    run = sub.add_parser("run", help="run the bot against real Slack")
    run.add_argument("--config", default="app.yaml", help=CONFIG_HELP)
    run.add_argument(
        "--port",
        type=int,
        default=3000,
        help="the HTTP port (Slack requests, alert webhooks, probes, metrics)",
    )
    run.add_argument("--host", default="0.0.0.0", help="the address to listen on")
    run.set_defaults(func=cmd_run)
    demo = sub.add_parser(
        "demo", help="run the demo scenarios on SQLite, the Slack emulator and the sandbox cluster"
    )
    demo.add_argument("--channel", help="show only this channel (ml-alerts, data-coordinator, tech-leads, …)")
    demo.add_argument("--json", action="store_true", help="print the channels' raw messages as JSON")
    demo.add_argument(
        "--llm-fixture",
        action="store_true",
        help="let Claude's stand-in (a loopback Messages API answering from recorded fixtures) investigate "
        "and draft, instead of the rule-based drafts; still no network",
    )
    demo.set_defaults(func=cmd_demo)
    check = sub.add_parser("check-config", help="validate app.yaml and print every problem with its key path")
    check.add_argument("--config", default="app.yaml", help=CONFIG_HELP)
    check.add_argument("--env", action="store_true", help="also check the environment variables `run` needs")
    check.set_defaults(func=cmd_check_config)
    manifest = sub.add_parser("manifest", help="print the Slack app manifest for app.yaml")
    manifest.add_argument("--config", default="app.yaml", help=CONFIG_HELP)
    manifest.add_argument(
        "--socket-mode",
        action="store_true",
        help="a manifest for Socket Mode, without request URLs (also when SLACK_APP_TOKEN is set)",
    )
    manifest.set_defaults(func=cmd_manifest)
    doctor = sub.add_parser(
        "doctor",
        help="check everything app.yaml turns on: environment, database, Slack, Kubernetes and its RBAC, "
        "MLflow, feature store, Claude",
    )
    doctor.add_argument("--config", default="app.yaml", help=CONFIG_HELP)
    doctor.add_argument(
        "--json",
        action="store_true",
        help='print one JSON document {"ok": ..., "checks": [{"name", "ok", "detail", "fix"}, ...]} '
        "instead of lines (default: lines)",
    )
    doctor.set_defaults(func=cmd_doctor)
    explain = sub.add_parser(
        "explain", help="print what the bot would do with an Alertmanager webhook body, changing nothing"
    )
    explain.add_argument("--config", default="app.yaml", help=CONFIG_HELP)
    explain.add_argument("alert", metavar="ALERT.json", help="the webhook body (- reads it from stdin)")
    explain.set_defaults(func=cmd_explain)
    db = sub.add_parser(
        "db",
        help="upgrade the database schema or show its revision (DATABASE_URL, else sqlite:///escalation-bot.db)",
    )
    db.set_defaults(func=lambda _: _usage(db))
    actions = db.add_subparsers(dest="action", help="what to do with the schema")
    upgrade = actions.add_parser("upgrade", help="apply every migration not yet applied; print from → to")
    upgrade.set_defaults(func=cmd_db)
    current = actions.add_parser(
        "current", help="print the current and newest revisions; exit 1 when behind, 2 when unreachable"
    )
    current.set_defaults(func=cmd_db)
    return p


def _usage(command: argparse.ArgumentParser) -> int:
    command.print_help(sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from bot.logs import configure

    configure(args.verbose, Env.from_environ().log_format)
    if args.command == "run":
        logging.getLogger("bot").setLevel(logging.INFO)
    if hasattr(args, "config") and args.command != "check-config" and not Path(args.config).exists():
        print(f"{args.config}: file not found (pass --config PATH)", file=sys.stderr)
        return 2
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a reader gone early (`| head`) is found here, not in Python's flush at exit
        return code
    except BrokenPipeError:  # stop quietly, as other command-line tools do, instead of a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the flush at exit must not fail too
        return 1


if __name__ == "__main__":
    sys.exit(main())
