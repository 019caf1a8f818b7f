"""The ``giftsync`` command: one entry point that dispatches to each role.

Each subcommand imports its module lazily so ``giftsync preview`` never needs Redis and
``giftsync sandbox`` never imports the workers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from mapping.tenant import SettingsError

Command = Callable[[argparse.Namespace], int]


def _open_input(name: str) -> TextIO:
    if name == "-":
        return sys.stdin
    return Path(name).open(encoding="utf-8")


def _cmd_preview(args: argparse.Namespace) -> int:
    from giftsync.settings import load_tenants
    from mapping.preview import preview_event

    tenants = load_tenants(Path(args.config))
    invalid = 0
    with _open_input(args.file) as lines:
        for line in lines:
            if not line.strip():
                continue
            result = preview_event(line, tenants)
            invalid += result["decision"] == "invalid"
            sys.stdout.write(json.dumps(result, sort_keys=False) + "\n")
    return 1 if invalid else 0


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from sandbox.cli import main as sandbox_main

    status: int = sandbox_main(list(args.rest))
    return status


def _cmd_publish(args: argparse.Namespace) -> int:
    from producers.backfill import run

    return run(args.file)


def _cmd_ingest(args: argparse.Namespace) -> int:
    from producers.ingest import serve

    serve(host=args.host, port=args.port)
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    import tempfile

    # dramatiq reads this once, at import: an idle consumer polls Redis at most this many ms
    # apart. Its default (1000) adds up to a second to every throttled message's wake-up.
    os.environ.setdefault("dramatiq_worker_timeout", str(args.poll_ms))
    # Also read once, when prometheus_client is first imported (workers.broker imports it):
    # set after that, the forked workers would count in memory and /metrics would show none
    # of their counters.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="giftsync-metrics-")

    from dramatiq.cli import main as dramatiq_main
    from dramatiq.cli import make_argument_parser

    from giftsync.settings import get_settings
    from workers.broker import QUEUES

    get_settings()  # fail fast, with every configuration problem, before forking workers
    argv = [
        "workers.actors",
        "--processes",
        str(args.processes),
        "--threads",
        str(args.threads),
        "--queues",
        *(args.queues or QUEUES),
        "--worker-shutdown-timeout",
        str(args.shutdown_timeout_ms),
    ]
    if not args.no_scheduler:
        argv += ["--fork-function", "workers.scheduler:run"]
    if not args.no_metrics:
        argv += ["--fork-function", "workers.metrics_server:run"]
    dramatiq_main(make_argument_parser().parse_args(argv))  # type: ignore[no-untyped-call]
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from workers.runtime import runtime
    from workers.status import render, tenant_status

    rt = runtime()
    names = [args.tenant] if args.tenant else sorted(rt.settings.tenants)
    report = [tenant_status(rt, rt.settings.tenant(name)) for name in names]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    return 0


def _cmd_dlq(args: argparse.Namespace) -> int:
    from workers.deadletters import list_dead_letters, replay

    letters = list_dead_letters(args.tenant)
    if args.action == "list":
        if args.json:
            print(json.dumps([letter.as_dict() for letter in letters], indent=2))
        elif not letters:
            print("no dead letters")
        for letter in [] if args.json else letters:
            print(
                f"{letter.message_id}  {letter.tenant or '-'}  {letter.actor}  "
                f"attempts={letter.attempts}  {letter.reason}"
            )
        return 0
    wanted = set(args.ids)
    chosen = [letter for letter in letters if not wanted or letter.message_id in wanted]
    missing = wanted - {letter.message_id for letter in chosen}
    for message_id in sorted(missing):
        print(f"giftsync: no dead letter {message_id}", file=sys.stderr)
    from workers.broker import get_broker

    count = replay(chosen, get_broker())
    print(f"replayed {count} dead letter(s)")
    return 1 if missing else 0


def _cmd_resume(args: argparse.Namespace) -> int:
    from workers.runtime import runtime
    from workers.sending import resume

    rt = runtime()
    rt.settings.tenant(args.tenant)
    print("resumed" if resume(rt, args.tenant) else "was not paused")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from giftsync.demo import run_demo

    stay = True if args.stay else (False if args.exit else None)
    return run_demo(events=args.events, stay=stay, port=args.port)


def _cmd_webhooks(args: argparse.Namespace) -> int:
    from giftsync.settings import get_settings
    from producers import webhooks

    settings = get_settings()
    if args.action == "subscribe":
        if not args.tenant or not args.url:
            print("giftsync: webhooks subscribe needs --tenant and --url", file=sys.stderr)
            return 2
        answer = webhooks.subscribe(settings, settings.tenant(args.tenant), args.url)
        print(f"subscribed: webhook {answer.get('id')} for tenant {args.tenant}")
        return 0
    webhooks.serve(settings, args.host, args.port)
    return 0


def _cmd_pull(args: argparse.Namespace) -> int:
    import time

    from workers import pull
    from workers.middleware import Throttled
    from workers.pull_plan import OUTCOMES
    from workers.runtime import runtime

    rt = runtime()
    tenant = rt.settings.tenant(args.tenant)
    for kind in ("gifts", "recurring") if args.kind == "both" else (args.kind,):
        if args.since:
            try:
                pull.reset_cursor(rt, tenant, kind, args.since)
            except ValueError as exc:
                print(f"giftsync: --since: {exc}", file=sys.stderr)
                return 2
        report = pull.PullReport(kind)

        def draw(r: pull.PullReport) -> None:
            total = r.records + (r.remaining or 0)
            done = 30 * r.records // total if total else 30
            counts = "  ".join(f"{o} {r.counts[o]}" for o in OUTCOMES)
            bar = f"[{'#' * done}{'.' * (30 - done)}]"
            sys.stderr.write(f"\r{r.kind:<9} {bar} {r.records}/{total}  {counts}")
            sys.stderr.flush()

        while not report.done:
            try:
                pull.pull(
                    rt, tenant, kind, report=report, on_page=draw if sys.stderr.isatty() else None
                )
            except Throttled as exc:
                if exc.reason == "paused":
                    print(
                        f"\ngiftsync: tenant {tenant.name} is paused (Virtuous said 401)",
                        file=sys.stderr,
                    )
                    return 1
                # Only here may a pull wait in place: nothing else is queued behind it.
                time.sleep(exc.delay_seconds)
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        counts = ", ".join(f"{o} {report.counts[o]}" for o in OUTCOMES)
        print(f"{kind}: {report.records} records in {report.pages} pages: {counts}")
    return 0


def _cmd_console(args: argparse.Namespace) -> int:
    from giftsync.console import serve

    serve(host=args.host, port=args.port)
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from giftsync.doctor import main as doctor_main

    return doctor_main(tenant=args.tenant, as_json=args.json)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="giftsync",
        description="Keep WeGive donations and the Virtuous CRM in step.",
    )
    parser.add_argument(
        "--config",
        default=os.environ.get("GIFTSYNC_CONFIG", "giftsync.toml"),
        help="tenants TOML file (default: $GIFTSYNC_CONFIG or ./giftsync.toml)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the whole flow locally on embedded defaults")
    demo.add_argument("--events", type=int, default=600, help="example events to publish")
    demo.add_argument("--port", type=int, default=8765, help="sandbox port (default 8765)")
    stay_group = demo.add_mutually_exclusive_group()
    stay_group.add_argument("--stay", action="store_true", help="keep running after the summary")
    stay_group.add_argument("--exit", action="store_true", help="exit after the summary")
    demo.set_defaults(func=_cmd_demo)

    preview = sub.add_parser("preview", help="dry run: print the Virtuous requests for events")
    preview.add_argument("file", nargs="?", default="-", help="JSON-lines events, or - for stdin")
    preview.set_defaults(func=_cmd_preview)

    publish = sub.add_parser(
        "publish", help="backfill: validate and enqueue JSON-lines events from a file"
    )
    publish.add_argument("file", help="JSON-lines events, or - for stdin")
    publish.set_defaults(func=_cmd_publish)

    ingest = sub.add_parser("ingest", help="serve the signed HTTP ingest API (POST /v1/changes)")
    ingest.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    ingest.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ingest.set_defaults(func=_cmd_ingest)

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
    worker.set_defaults(func=_cmd_worker)

    status = sub.add_parser("status", help="gifts by state, review backlog and budget per tenant")
    status.add_argument("--tenant", help="only this tenant")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_cmd_status)

    dlq = sub.add_parser("dlq", help="list or replay dead letters")
    dlq.add_argument("action", choices=["list", "replay"])
    dlq.add_argument("ids", nargs="*", help="message ids to replay (default: all shown)")
    dlq.add_argument("--tenant", help="only this tenant's dead letters")
    dlq.add_argument("--json", action="store_true", help="machine-readable list")
    dlq.set_defaults(func=_cmd_dlq)

    hooks = sub.add_parser(
        "webhooks", help="receive Virtuous webhooks, or register the subscription"
    )
    hooks.add_argument("action", nargs="?", choices=["subscribe"], help="subscribe: register")
    hooks.add_argument("--port", type=int, default=8082, help="port to listen on (default 8082)")
    hooks.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    hooks.add_argument("--tenant", help="subscribe: the tenant")
    hooks.add_argument("--url", help="subscribe: the receiver's public base URL")
    hooks.set_defaults(func=_cmd_webhooks)

    resume_cmd = sub.add_parser("resume", help="lift a tenant's 401 pause now")
    resume_cmd.add_argument("--tenant", required=True)
    resume_cmd.set_defaults(func=_cmd_resume)

    console = sub.add_parser("console", help="serve the operator console (a small web page)")
    console.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    console.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; any other needs GIFTSYNC_CONSOLE_TOKEN)",
    )
    console.set_defaults(func=_cmd_console)

    doctor = sub.add_parser(
        "doctor", help="check settings, Redis, every tenant's token and clock skew"
    )
    doctor.add_argument("--tenant", help="only this tenant's secrets and token")
    doctor.add_argument("--json", action="store_true", help="machine-readable findings")
    doctor.set_defaults(func=_cmd_doctor)

    pull_cmd = sub.add_parser("pull", help="pull a tenant's Virtuous changes now, in process")
    pull_cmd.add_argument("--tenant", required=True)
    pull_cmd.add_argument("--since", help="start at this UTC date or time instead of the cursor")
    pull_cmd.add_argument("--kind", choices=["gifts", "recurring", "both"], default="both")
    pull_cmd.set_defaults(func=_cmd_pull)

    sandbox = sub.add_parser("sandbox", help="run the local Virtuous stand-in", add_help=False)
    sandbox.add_argument("rest", nargs=argparse.REMAINDER)
    sandbox.set_defaults(func=_cmd_sandbox)
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
    func: Command = args.func
    try:
        return func(args)
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"giftsync: configuration error: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
