"""``giftsync demo``: the whole flow on one machine, on embedded defaults.

It starts a Redis (an embedded redis-server unless ``REDIS_URL`` is set), the Virtuous
sandbox with three demo organisations, and ``giftsync worker``; publishes a few hundred
example change events for three tenants (batch and real-time, every status and path); waits
until every one has reached its end state; and prints a summary and where to look.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from giftsync.embedded_redis import free_port, start_embedded_redis
from giftsync.examples import demo_events
from giftsync.waiting import wait_for
from producers.publish import publish_many
from workers.observe.status import tenant_status
from workers.runtime import runtime

TENANTS = {
    "hope-shelter": ("batch", "America/Chicago", "VIRTUOUS_TOKEN_HOPE", "demo-token-hope"),
    "river-arts": ("real_time", "America/Los_Angeles", "VIRTUOUS_TOKEN_RIVER", "demo-token-river"),
    "north-food-bank": ("batch", "America/New_York", "VIRTUOUS_TOKEN_NORTH", "demo-token-north"),
}
# The demo's organisations get a larger budget than Virtuous's 10,000 calls an hour, so a few
# hundred real-time gifts (each may look up and create its donor's Contact first) finish in
# seconds; the limiter still paces every call against it.
DEMO_CALLS_PER_HOUR = 200_000
# States a record may still leave on its own; the demo waits until none is in them.
IN_FLIGHT = ("buffered", "batched", "queued")


def _tenants_toml(sandbox_url: str) -> str:
    tables = []
    for name, (mode, zone, token_env, _token) in TENANTS.items():
        tables.append(
            f"[tenants.{name}]\n"
            f'virtuous_base_url = "{sandbox_url}"\n'
            f'virtuous_token_env = "{token_env}"\n'
            f'timezone = "{zone}"\n'
            f'mode = "{mode}"\n'
            "batch_max_wait_seconds = 2\n"
            f"calls_per_hour = {DEMO_CALLS_PER_HOUR}\n"
            "send_processing_ach_as_success = false\n"
            "fund_allocations = true\n"
            "fee_splitting = true\n"
            'transaction_source = "WeGive"\n'
        )
    return "\n".join(tables)


def run_demo(*, events: int = 600, stay: bool | None = None, port: int = 8765) -> int:
    """Run the demo; returns the exit status."""
    # The sandbox is not in the production image: only the demo and `giftsync sandbox` load it.
    import sandbox.config

    stay = sys.stdout.isatty() if stay is None else stay
    workdir = Path(tempfile.mkdtemp(prefix="giftsync-demo-"))
    embedded = None
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        embedded = start_embedded_redis()
        redis_url = embedded.url
        print(f"started an embedded Redis at {redis_url}")
    try:
        sandbox_port = port if _port_free(port) else free_port()
        config = sandbox.config.demo_config()
        orgs = [replace(org, calls_per_hour=DEMO_CALLS_PER_HOUR) for org in config.orgs]
        with sandbox.start_sandbox(replace(config, orgs=orgs), port=sandbox_port) as running:
            return _run(running, redis_url, workdir, events, stay)
    finally:
        if embedded is not None:
            embedded.stop()


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _run(sandbox: Any, redis_url: str, workdir: Path, count: int, stay: bool) -> int:

    config_path = workdir / "tenants.toml"
    config_path.write_text(_tenants_toml(sandbox.url), encoding="utf-8")
    metrics_port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "GIFTSYNC_CONFIG": str(config_path),
        "GIFTSYNC_PREFIX": f"giftsync-demo-{uuid.uuid4().hex[:6]}",
        "GIFTSYNC_METRICS_PORT": str(metrics_port),
        "GIFTSYNC_LOG_LEVEL": "WARNING",
        **{token_env: token for _m, _z, token_env, token in TENANTS.values()},
    }
    os.environ.update(env)
    print(f"sandbox (a local Virtuous) at {sandbox.url}")
    log_path = workdir / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "giftsync.cli", "worker", "--processes", "2", "--threads", "4"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        return _drive(sandbox, count, metrics_port, log_path, worker, stay, demo_events)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)


def _drive(
    sandbox: Any,
    count: int,
    metrics_port: int,
    log_path: Path,
    worker: subprocess.Popen[bytes],
    stay: bool,
    demo_events: Any,
) -> int:

    existing = httpx.get(f"{sandbox.url}/_admin/contacts", timeout=10).json()
    contact_ids = {name: [c["id"] for c in people] for name, people in existing.items()}
    started = time.monotonic()
    published = publish_many(demo_events(count, list(TENANTS), contact_ids=contact_ids))
    print(f"published {published} change events for {len(TENANTS)} tenants")
    rt = runtime()

    def settled() -> bool:
        if worker.poll() is not None:
            raise RuntimeError(f"demo: the worker exited; see {log_path}")
        seen = 0
        for name in TENANTS:
            counts = rt.ledger.state_counts(name)
            seen += sum(counts.values())
            if any(counts.get(state, 0) for state in IN_FLIGHT):
                return False
        return seen >= published

    wait_for(settled, timeout=180, interval=0.2, what="every event to reach its end state")
    elapsed = time.monotonic() - started
    stats = httpx.get(f"{sandbox.url}/_admin/stats", timeout=10).json()
    print(f"\nall {published} events reached their end state in {elapsed:.1f}s\n")
    for name in TENANTS:
        report = tenant_status(rt, rt.settings.tenant(name))
        states = ", ".join(f"{k} {v}" for k, v in report["states"].items() if v)
        print(f"  {name} ({report['mode']}): {states}")
        batches = rt.batcher.batch_count(name)
        if batches:
            print(f"    batches sent: {batches}")
        org = stats.get("orgs", {}).get(name, {})
        if org:
            print(
                f"    calls used against the cap: {org.get('calls', '?')} of "
                f"{org.get('limit', '?')} per {org.get('window_seconds', 3600):.0f}s window"
            )
    print("\nwhere to look:")
    print(f"  the Import Tool page (what staff see):  {sandbox.url}/")
    print(f"  giftsync's metrics:                     http://127.0.0.1:{metrics_port}/metrics")
    print(f"  worker log:                             {log_path}")
    print("  the ledger, per tenant (paste into another terminal while the demo runs):")
    print(f"    {status_command(dict(os.environ))}")
    if stay:
        print("\nrunning until Ctrl-C ...")
        try:
            while worker.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


def status_command(env: dict[str, str]) -> str:
    """The exact command line that reads this demo's ledger with ``giftsync status``."""
    import shlex

    names = ("REDIS_URL", "GIFTSYNC_CONFIG", "GIFTSYNC_PREFIX")
    assignments = " ".join(f"{name}={shlex.quote(env[name])}" for name in names if name in env)
    return f"{assignments} giftsync status"
