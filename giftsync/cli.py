"""The ``giftsync`` command: one entry point that parses, then dispatches to each role.

The command bodies live in :mod:`giftsync.commands`, loaded after the worker's environment is
set: dramatiq and prometheus_client read it once, when first imported.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import structlog

from giftsync.logs import configure_logging
from giftsync.settings import log_level
from mapping.tenant import SettingsError


def _worker_environment(args: argparse.Namespace) -> None:
    """What dramatiq and prometheus_client read once, at import, set before either is."""
    # An idle consumer polls Redis at most this many ms apart; dramatiq's default (1000) adds
    # up to a second to every throttled message's wake-up.
    os.environ.setdefault("dramatiq_worker_timeout", str(args.poll_ms))
    # Set after prometheus_client's import, the forked workers would count in memory and
    # /metrics would show none of their counters.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="giftsync-metrics-")


def _version() -> str:
    try:
        return version("giftsync")
    except PackageNotFoundError:
        return "unknown"


def _redis_error(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis could not be reached (checked without importing redis)."""
    redis_mod = sys.modules.get("redis")
    dramatiq_errors = sys.modules.get("dramatiq.errors")
    kinds: tuple[type[BaseException], ...] = ()
    if redis_mod is not None:
        kinds += (redis_mod.ConnectionError, redis_mod.TimeoutError)
    if dramatiq_errors is not None:
        kinds += (dramatiq_errors.ConnectionError,)
    return bool(kinds) and isinstance(exc, kinds)


def _config_option(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Before the subcommand it sets the default; after it, SUPPRESS leaves that default alone
    # unless the option is given there too.
    parser.add_argument(
        "--config",
        default=os.environ.get("GIFTSYNC_CONFIG", "giftsync.toml") if top else argparse.SUPPRESS,
        metavar="FILE",
        help="tenants TOML file (default: $GIFTSYNC_CONFIG or ./giftsync.toml)",
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="giftsync",
        description="Keep WeGive donations and the Virtuous CRM in step.",
    )
    parser.add_argument("--version", action="version", version=f"giftsync {_version()}")
    _config_option(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the whole flow locally on embedded defaults")
    demo.add_argument("--events", type=int, default=600, help="example events to publish")
    demo.add_argument("--port", type=int, default=8765, help="sandbox port (default 8765)")
    stay_group = demo.add_mutually_exclusive_group()
    stay_group.add_argument("--stay", action="store_true", help="keep running after the summary")
    stay_group.add_argument("--exit", action="store_true", help="exit after the summary")

    preview = sub.add_parser("preview", help="dry run: print the Virtuous requests for events")
    preview.add_argument("file", nargs="?", default="-", help="JSON-lines events, or - for stdin")

    publish = sub.add_parser(
        "publish", help="backfill: validate and enqueue JSON-lines events from a file"
    )
    publish.add_argument("file", help="JSON-lines events, or - for stdin")

    ingest = sub.add_parser("ingest", help="serve the signed HTTP ingest API (POST /v1/changes)")
    ingest.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    ingest.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")

    worker = sub.add_parser(
        "worker", help="run the dramatiq workers, the scheduler and the /metrics endpoint"
    )
    worker.add_argument("--processes", type=int, default=2, help="worker processes (default 2)")
    worker.add_argument("--threads", type=int, default=8, help="threads per process (default 8)")
    worker.add_argument("--queues", nargs="*", help="only these queues (default: all)")
    worker.add_argument(
        "--shutdown-timeout-ms",
        type=int,
        default=60_000,
        help="how long a stopping worker lets a send finish (default 60000)",
    )
    worker.add_argument(
        "--poll-ms", type=int, default=100, help="longest idle poll of a queue (default 100)"
    )
    worker.add_argument("--no-scheduler", action="store_true", help="do not run the scheduler")
    worker.add_argument("--no-metrics", action="store_true", help="do not serve /metrics")

    status = sub.add_parser("status", help="gifts by state, review backlog and budget per tenant")
    status.add_argument("--tenant", help="only this tenant")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    dlq = sub.add_parser("dlq", help="list or replay dead letters")
    dlq.add_argument(
        "action", choices=["list", "replay"], help="list them, or send them back to their queues"
    )
    dlq.add_argument("ids", nargs="*", help="message ids to replay (default: all shown)")
    dlq.add_argument("--tenant", help="only this tenant's dead letters")
    dlq.add_argument("--json", action="store_true", help="machine-readable list")

    hooks = sub.add_parser(
        "webhooks", help="receive Virtuous webhooks, or register the subscription"
    )
    hooks.add_argument("action", nargs="?", choices=["subscribe"], help="subscribe: register")
    hooks.add_argument("--port", type=int, default=8082, help="port to listen on (default 8082)")
    hooks.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    hooks.add_argument("--tenant", help="subscribe: the tenant")
    hooks.add_argument("--url", help="subscribe: the receiver's public base URL")

    resume_cmd = sub.add_parser("resume", help="lift a tenant's 401 pause now")
    resume_cmd.add_argument("--tenant", required=True, help="the tenant to resume")

    console = sub.add_parser("console", help="serve the operator console (a small web page)")
    console.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    console.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; any other needs GIFTSYNC_CONSOLE_TOKEN)",
    )

    doctor = sub.add_parser(
        "doctor", help="check settings, Redis, every tenant's token and clock skew"
    )
    doctor.add_argument("--tenant", help="only this tenant's secrets and token")
    doctor.add_argument("--json", action="store_true", help="machine-readable findings")
    doctor.add_argument(
        "--role",
        choices=["all", "worker", "ingest", "webhooks", "console", "subscribe"],
        default="all",
        help="check only what this role needs (default all); use the pod's own role",
    )

    pull_cmd = sub.add_parser("pull", help="pull a tenant's Virtuous changes now, in process")
    pull_cmd.add_argument("--tenant", required=True, help="the tenant to pull")
    pull_cmd.add_argument("--since", help="start at this UTC date or time instead of the cursor")
    pull_cmd.add_argument(
        "--kind",
        choices=["gifts", "recurring", "both"],
        default="both",
        help="which records to pull (default both)",
    )

    sandbox = sub.add_parser("sandbox", help="run the local Virtuous stand-in", add_help=False)
    sandbox.add_argument(
        "rest", nargs=argparse.REMAINDER, help="the sandbox's own options (giftsync sandbox -h)"
    )
    for name, command in sub.choices.items():
        if name != "sandbox":
            _config_option(command, top=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``giftsync`` command line; returns the exit status."""
    parser = _build_parser()
    # argparse's REMAINDER takes nothing when the first word after "sandbox" is an option
    # ("giftsync sandbox --port 8765"), so the sandbox's own options arrive as unknown ones.
    args, unknown = parser.parse_known_args(argv)
    if args.command == "sandbox":
        args.rest = [*unknown, *args.rest]
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.config:
        os.environ["GIFTSYNC_CONFIG"] = args.config
    if args.command == "worker":
        _worker_environment(args)
    configure_logging(log_level())
    # After the worker's environment: importing the commands imports dramatiq and
    # prometheus_client, which read it once.
    from giftsync import commands

    try:
        return commands.COMMANDS[args.command](args)
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"giftsync: configuration error: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # One line for the operator; the traceback only at DEBUG, as a JSON log line.
        structlog.get_logger("giftsync.cli").debug("command_failed", exc_info=exc)
        if _redis_error(exc):
            reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            print(
                f"giftsync: cannot reach Redis at {commands.redis_where()}: {reason}",
                file=sys.stderr,
            )
            return 3
        first = str(exc).splitlines()[0][:300] if str(exc) else ""
        print(f"giftsync {args.command}: {type(exc).__name__}: {first}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
