"""The naive baseline of the throughput benchmark: what a sync looks like without giftsync.

A plain dramatiq actor per event, on dramatiq's default middleware: it validates the event,
maps it with the same mapping as giftsync's real-time path, and makes one ``POST /api/Gift``
per event. No batching, no limiter, no ledger. The producer sends one message per event.

Run its workers with ``dramatiq benchmarks.naive:broker --queues naive``; the environment
names the Redis (``GIFTSYNC_NAIVE_REDIS_URL``), the sandbox (``GIFTSYNC_NAIVE_BASE_URL``) and
the token (``GIFTSYNC_NAIVE_TOKEN``). :func:`run_naive` does all of that and times it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dramatiq
import httpx
from dramatiq.brokers.redis import RedisBroker

from giftsync.waiting import wait_for
from mapping.decision import decide
from mapping.events import Transaction, parse_event
from mapping.realtime import realtime_create
from mapping.tenant import TenantSettings

QUEUE = "naive"
ACTOR = "naive_gift"
NAMESPACE = "naive-bench"
REPO = Path(__file__).resolve().parent.parent


def make_broker(url: str) -> RedisBroker:
    """A Redis broker with dramatiq's default middleware."""
    return RedisBroker(url=url, namespace=NAMESPACE)  # type: ignore[no-untyped-call]


broker = make_broker(os.environ.get("GIFTSYNC_NAIVE_REDIS_URL", "redis://127.0.0.1:6379/0"))
_local = threading.local()
_TENANT = TenantSettings(
    name=os.environ.get("GIFTSYNC_NAIVE_TENANT", "naive"),
    virtuous_base_url=os.environ.get("GIFTSYNC_NAIVE_BASE_URL", "http://127.0.0.1:1"),
    virtuous_token_env="GIFTSYNC_NAIVE_TOKEN",
    timezone="America/Chicago",
    mode="real_time",
)


def _client() -> httpx.Client:
    client: httpx.Client | None = getattr(_local, "client", None)
    if client is None:
        token = os.environ.get("GIFTSYNC_NAIVE_TOKEN", "")
        client = httpx.Client(
            base_url=_TENANT.virtuous_base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        _local.client = client
    return client


def naive_gift(event: dict[str, Any]) -> None:
    """Validate, map and create one gift with one POST /api/Gift."""
    parsed = parse_event(event)
    tx = parsed.record
    assert isinstance(tx, Transaction)
    payload = realtime_create(tx, _TENANT, decide(tx, _TENANT))
    _client().post("/api/Gift", json=payload).raise_for_status()


dramatiq.actor(actor_name=ACTOR, queue_name=QUEUE, broker=broker)(naive_gift)


def start_workers(
    redis_url: str, base_url: str, token: str, *, processes: int, threads: int, log: Path
) -> subprocess.Popen[bytes]:
    """Start ``dramatiq benchmarks.naive:broker`` in its own process group."""
    env = {
        **os.environ,
        "GIFTSYNC_NAIVE_REDIS_URL": redis_url,
        "GIFTSYNC_NAIVE_BASE_URL": base_url,
        "GIFTSYNC_NAIVE_TOKEN": token,
        "dramatiq_worker_timeout": "100",
    }
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        "benchmarks.naive:broker",
        "--queues",
        QUEUE,
        "--processes",
        str(processes),
        "--threads",
        str(threads),
    ]
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def enqueue(redis_url: str, events: Iterable[dict[str, Any]]) -> int:
    """Send one message per event, as a naive producer would; returns how many."""
    producer = make_broker(redis_url)
    count = 0
    try:
        for event in events:
            producer.enqueue(
                dramatiq.Message(
                    queue_name=QUEUE, actor_name=ACTOR, args=(event,), kwargs={}, options={}
                )
            )
            count += 1
    finally:
        producer.close()
    return count


def gifts_in(sandbox: Any, org: str) -> int:
    """Gifts the in-process sandbox holds for ``org``."""
    with sandbox.state.lock:
        return len(sandbox.state.org(org).gifts)


def run_naive(
    sandbox: Any,
    redis_url: str,
    org: str,
    token: str,
    events: list[dict[str, Any]],
    *,
    processes: int,
    threads: int,
    log: Path,
    timeout: float,
) -> float:
    """Time publish -> every gift created for ``events`` (after a warm-up); returns seconds."""
    workers = start_workers(
        redis_url, sandbox.url, token, processes=processes, threads=threads, log=log
    )
    try:
        warm, rest = events[:50], events[50:]
        enqueue(redis_url, warm)
        _wait_for_gifts(sandbox, org, len(warm), timeout)
        started = time.monotonic()
        enqueue(redis_url, rest)
        _wait_for_gifts(sandbox, org, len(events), timeout)
        return time.monotonic() - started
    finally:
        import signal

        os.killpg(workers.pid, signal.SIGKILL)
        workers.wait(timeout=30)


def _wait_for_gifts(sandbox: Any, org: str, count: int, timeout: float) -> None:
    wait_for(
        lambda: gifts_in(sandbox, org),
        until=lambda held: held >= count,
        timeout=timeout,
        what=f"naive: {count} gifts in the sandbox",
    )
