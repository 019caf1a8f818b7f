"""The bodies of the ``giftsync`` subcommands; :mod:`giftsync.cli` parses and dispatches.

Imported by the command line only once the worker's environment is set (dramatiq and
prometheus_client read it when first imported).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from dramatiq.cli import main as dramatiq_main
from dramatiq.cli import make_argument_parser

from giftsync import console, demo, doctor, ingest, webhooks
from giftsync.settings import Settings, SettingsError, get_settings, load_settings, load_tenants
from mapping.preview import preview_event
from producers import backfill
from workers.errors import Throttled
from workers.flows import pull as pulls
from workers.flows.gate import resume as resume_tenant
from workers.flows.pull_plan import OUTCOMES
from workers.observe.status import render, tenant_status
from workers.queue.broker import get_broker
from workers.queue.deadletters import list_dead_letters, replay
from workers.queue.queues import QUEUES, queue_after_throttle
from workers.runtime import runtime
from workers.store.connection import connect


def run_preview(args: argparse.Namespace) -> int:
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


def run_sandbox(args: argparse.Namespace) -> int:
    # The sandbox is not in the production image: only this command and the demo load it.
    from sandbox.cli import main as sandbox_main

    status: int = sandbox_main(list(args.rest))
    return status


def run_publish(args: argparse.Namespace) -> int:
    return backfill.run(args.file)


def run_ingest(args: argparse.Namespace) -> int:
    ingest.serve(host=args.host, port=args.port)
    return 0


def worker_queues(chosen: list[str] | None) -> list[str]:
    """The queues a worker takes: every one, or those chosen plus the throttled batch sends'
    queue wherever batch sends are chosen (they come back there)."""
    queues = list(chosen or QUEUES)
    for queue in map(queue_after_throttle, list(queues)):
        if queue not in queues:
            queues.append(queue)
    return queues


def run_worker(args: argparse.Namespace) -> int:

    settings = get_settings()  # fail fast, with every configuration problem, before forking
    require_redis(settings)
    argv = [
        "workers.queue.actors",
        # giftsync.logs configured logging already; dramatiq's basicConfig would add nothing.
        "--skip-logging",
        "--processes",
        str(args.processes),
        "--threads",
        str(args.threads),
        "--queues",
        *worker_queues(args.queues),
        "--worker-shutdown-timeout",
        str(args.shutdown_timeout_ms),
    ]
    if not args.no_scheduler:
        argv += ["--fork-function", "workers.queue.scheduler:run"]
    if not args.no_metrics:
        argv += ["--fork-function", "workers.observe.metrics_server:run"]
    dramatiq_main(make_argument_parser().parse_args(argv))  # type: ignore[no-untyped-call]
    return 0


def run_status(args: argparse.Namespace) -> int:
    rt = runtime()
    names = [args.tenant] if args.tenant else sorted(rt.settings.tenants)
    report = [tenant_status(rt, rt.settings.tenant(name)) for name in names]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    return 0


def run_dlq(args: argparse.Namespace) -> int:
    if args.tenant:
        runtime().settings.tenant(args.tenant)  # an unknown tenant is an error, not "none"
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

    count = replay(chosen, get_broker())
    print(f"replayed {count} dead letter(s)")
    return 1 if missing else 0


def run_resume(args: argparse.Namespace) -> int:
    rt = runtime()
    rt.settings.tenant(args.tenant)
    print("resumed" if resume_tenant(rt, args.tenant) else "was not paused")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    stay = True if args.stay else (False if args.exit else None)
    return demo.run_demo(events=args.events, stay=stay, port=args.port)


def run_webhooks(args: argparse.Namespace) -> int:
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


def run_pull(args: argparse.Namespace) -> int:

    rt = runtime()
    tenant = rt.settings.tenant(args.tenant)
    for kind in ("gifts", "recurring") if args.kind == "both" else (args.kind,):
        if args.since:
            try:
                pulls.reset_cursor(rt, tenant, kind, args.since)
            except ValueError as exc:
                print(f"giftsync: --since: {exc}", file=sys.stderr)
                return 2
        report = pulls.PullReport(kind)

        def draw(r: pulls.PullReport) -> None:
            total = r.records + (r.remaining or 0)
            done = 30 * r.records // total if total else 30
            counts = "  ".join(f"{o} {r.counts[o]}" for o in OUTCOMES)
            bar = f"[{'#' * done}{'.' * (30 - done)}]"
            sys.stderr.write(f"\r{r.kind:<9} {bar} {r.records}/{total}  {counts}")
            sys.stderr.flush()

        while not report.done:
            try:
                pulls.pull(
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


def run_console(args: argparse.Namespace) -> int:
    console.serve(host=args.host, port=args.port)
    return 0


def run_doctor(args: argparse.Namespace) -> int:
    return doctor.main(tenant=args.tenant, as_json=args.json, role=args.role)


def require_redis(settings: Settings) -> None:
    """Ping Redis once so a command that needs it fails at once, in one line, when it is down."""

    client = connect(settings, socket_timeout=3, connect_timeout=3, retry=False)
    try:
        client.ping()
    finally:
        client.close()


def redis_where() -> str:

    try:
        return doctor.redis_where(load_settings())
    except SettingsError:
        return "its configured URL"


def _open_input(name: str) -> TextIO:
    if name == "-":
        return sys.stdin
    return Path(name).open(encoding="utf-8")


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "preview": run_preview,
    "sandbox": run_sandbox,
    "publish": run_publish,
    "ingest": run_ingest,
    "worker": run_worker,
    "status": run_status,
    "dlq": run_dlq,
    "resume": run_resume,
    "demo": run_demo,
    "webhooks": run_webhooks,
    "pull": run_pull,
    "console": run_console,
    "doctor": run_doctor,
}
