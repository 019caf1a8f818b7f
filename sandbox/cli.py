"""``giftsync sandbox`` (or ``python -m sandbox``): run the Virtuous sandbox in the foreground.

Without ``--config`` it serves the demo organisations (tokens ``demo-token-hope``,
``demo-token-river``, ``demo-token-north``). Options given on the command line override the
config file: ``--hour-seconds`` and ``--calls-per-hour`` apply to every organisation.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import replace
from typing import Any

from sandbox.config import ConfigError, FaultConfig, SandboxConfig, demo_config, load_config
from sandbox.ratelimit import HEADER_MODES
from sandbox.server import serve


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="giftsync sandbox", description="Run a local stand-in for the Virtuous API."
    )
    add = p.add_argument
    add("--port", type=int, metavar="N", default=8765, help="port to serve on (default 8765)")
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("--config", metavar="FILE", help="TOML or JSON file: organisations and settings")
    add(
        "--hour-seconds",
        type=float,
        metavar="N",
        help="how many real seconds 'an hour' (the rate-limit window) lasts",
    )
    add("--calls-per-hour", type=int, metavar="N", help="the cap for every organisation")
    add(
        "--other-integrations-calls-per-hour",
        type=int,
        metavar="N",
        help="calls other integrations spend per window, for every organisation",
    )
    add(
        "--rate-limit-headers",
        choices=HEADER_MODES,
        help="how the window counts and what X-RateLimit-Reset names, for every organisation",
    )
    add(
        "--duplicate-response",
        choices=("noop", "error"),
        help="answer a repeated transactionSource/transactionId with 200 or 400",
    )
    add("--fail-rate", type=float, metavar="SHARE", help="share of /api calls answered 500")
    add("--slow-rate", type=float, metavar="SHARE", help="share of /api calls answered slowly")
    add("--slow-seconds", type=float, metavar="SECONDS", help="delay of a slow answer")
    add(
        "--drop-rate",
        type=float,
        metavar="SHARE",
        help="share of /api calls whose connection drops",
    )
    add(
        "--timeout-after-apply-rate",
        type=float,
        metavar="SHARE",
        help="share of /api calls applied, then held past the client's timeout",
    )
    add("--stall-seconds", type=float, metavar="SECONDS", help="how long such an answer is held")
    add(
        "--webhook-drop-rate",
        type=float,
        metavar="SHARE",
        help="share of webhook deliveries dropped",
    )
    add(
        "--webhook-bulk",
        action="store_true",
        help="deliver the gifts one run creates as one bulk webhook",
    )
    add(
        "--nightly-every",
        type=float,
        metavar="SECONDS",
        help="run the nightly batch every SECONDS (default: only on demand)",
    )
    add("--seed", type=int, metavar="N", help="seed for the fault RNG")
    return p


_FAULT_OPTIONS = (
    "fail_rate",
    "slow_rate",
    "slow_seconds",
    "drop_rate",
    "timeout_after_apply_rate",
    "stall_seconds",
    "webhook_drop_rate",
)


def build_config(args: argparse.Namespace) -> SandboxConfig:
    """The config the options describe (the file's, or the demo's, with overrides applied)."""
    config = load_config(args.config) if args.config else demo_config()
    org_changes: dict[str, Any] = {}
    if args.hour_seconds is not None:
        org_changes["window_seconds"] = args.hour_seconds
    if args.calls_per_hour is not None:
        org_changes["calls_per_hour"] = args.calls_per_hour
    if args.other_integrations_calls_per_hour is not None:
        org_changes["other_integrations_calls_per_hour"] = args.other_integrations_calls_per_hour
    if args.rate_limit_headers is not None:
        org_changes["rate_limit_headers"] = args.rate_limit_headers
    orgs = [replace(org, **org_changes) for org in config.orgs]
    fault_changes = {k: getattr(args, k) for k in _FAULT_OPTIONS if getattr(args, k) is not None}
    faults: FaultConfig = replace(config.faults, **fault_changes)
    changes: dict[str, Any] = {"orgs": orgs, "faults": faults}
    if args.duplicate_response:
        changes["duplicate_response"] = args.duplicate_response
    if args.webhook_bulk:
        changes["webhook_bulk"] = True
    if args.nightly_every is not None:
        changes["nightly_every_seconds"] = args.nightly_every
    if args.seed is not None:
        changes["seed"] = args.seed
    return replace(config, **changes)


def main(argv: list[str] | None = None) -> int:
    """Parse the options and serve until interrupted; 2 on a bad config."""
    args = _parser().parse_args(argv)
    try:
        config = build_config(args)
    except (ConfigError, OSError) as exc:
        print(f"giftsync sandbox: {exc}", file=sys.stderr)
        return 2
    host = f"[{args.host}]" if ":" in args.host else args.host
    orgs = ", ".join(
        f"{o.name} ({o.calls_per_hour} calls per {o.window_seconds:g}s)" for o in config.orgs
    )
    print(
        f"Virtuous sandbox on http://{host}:{args.port}  (Import Tool page: /, "
        f"admin: /_admin/stats)\norganisations: {orgs}",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        serve(config, args.host, args.port)
    return 0
