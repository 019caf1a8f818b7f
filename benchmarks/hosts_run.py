"""One run of benchmark 7 (:mod:`benchmarks.hosts`): a deployment on every host, the backlog
published, the first host killed mid-send if asked, and what the sandbox and Redis hold after.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from benchmarks import publisher
from benchmarks.deployment import Deployment, make_config, org, tenant_table
from benchmarks.harness import CallSampler, bench_deployment, submitted, wait_for_consumers
from benchmarks.netns import Host, Network
from benchmarks.redelivery import Redelivery, broker_ids
from giftsync.examples import transaction, version_at
from giftsync.waiting import wait_for
from producers.publish import publish_many
from sandbox.config import FaultConfig
from workers.store.keys import Keys

BATCH, REALTIME = "hope-shelter", "river-arts"
THREADS = 4
# Every Virtuous answer takes this long, so a kill finds calls in flight.
SLOW_SECONDS = 0.5
# Real-time transaction ids start here, apart from the batch tenant's.
REALTIME_FIRST_ID = 1_000_001


@dataclass
class Kill:
    """What the host kill found and how its messages came back."""

    awaiting: int
    processes: int
    redelivery: Redelivery
    at_submitted: int


@dataclass
class Outcome:
    """What one run recorded."""

    count: int
    realtime: int
    # The sandbox's stats per organisation at the end.
    stats: dict[str, Any]
    # transactionId of every import entry (batch) and of every Gift (real-time).
    entries: list[str]
    gifts: list[str]
    # (monotonic time, the batch organisation's admitted calls so far)
    samples: list[tuple[float, int]]
    started: float
    drained: float
    realtime_done: float | None
    kill: Kill | None
    calls_by_host: list[int]
    heartbeat_seconds: float


def run_once(net: Network, cap: int, window: float, realtime: int, *, kill: bool) -> Outcome:
    """One run: the backlog (and the real-time gifts) drained by every host, the first host
    killed mid-send when ``kill``."""
    count = 3 * cap * 100
    orgs = [org(BATCH, "demo-token-hope", calls_per_hour=cap, window_seconds=window)]
    if realtime:
        orgs.append(org(REALTIME, "demo-token-river", calls_per_hour=cap, window_seconds=window))
    # Half the answers wait before the request is applied, half after: a kill mid-call may
    # leave it undone or done with its answer lost.
    faults = FaultConfig(
        slow_rate=0.5,
        slow_seconds=SLOW_SECONDS,
        timeout_after_apply_rate=0.5,
        stall_seconds=SLOW_SECONDS,
    )
    config = make_config(*orgs, faults=faults)
    tenants = _tenants(cap, window, bool(realtime))
    with bench_deployment(tenants, config, host=net.gateway) as (dep, _server):
        victim_ids = _start_hosts(dep, net)
        contact = 0
        if realtime:
            made = dep.admin("POST", "contacts", json={"org": REALTIME, "lastName": "Lee"})
            contact = int(made["contacts"][0]["id"])
        killed: Kill | None = None
        with CallSampler(dep, BATCH) as sampler, ExitStack() as following:
            started = time.monotonic()
            platform = publisher.start(dep.env, count, 1, (BATCH,))
            if realtime:
                publish_many(
                    transaction(REALTIME, i, version=version_at(i), contact_id=contact)
                    for i in range(REALTIME_FIRST_ID, REALTIME_FIRST_ID + realtime)
                )
            if kill:
                killed = _kill(dep, net, victim_ids, count // 3)
                following.enter_context(killed.redelivery)
            wait_for(
                lambda: submitted(dep, [BATCH]) >= count,
                timeout=4 * window * 3 + 120,
                what="the backlog to drain",
            )
            drained = time.monotonic() - started
            if killed is not None:
                wait_for(
                    killed.redelivery.done,
                    timeout=60,
                    what="the killed host's messages to be picked up",
                )
            realtime_done = None
            if realtime:
                # A real-time record whose sender died stays locked for the record lock's
                # time to live (workers/flows/direct_send.py) before another host may send it.
                wait_for(
                    lambda: submitted(dep, [REALTIME], "sent") >= realtime,
                    timeout=realtime / cap * window * 2 + 300,
                    what="every real-time gift created",
                )
                realtime_done = time.monotonic() - started
            publisher.seconds_taken(platform)
        stats = dep.admin("GET", "stats")["orgs"]
        entries = [
            e["transactionId"]
            for b in dep.admin("GET", "imports", params={"org": BATCH})[BATCH]
            for e in b["entries"]
        ]
        gifts = (
            [
                g["transactionId"]
                for g in dep.admin("GET", "gifts", params={"org": REALTIME})[REALTIME]
            ]
            if realtime
            else []
        )
        logs = _calls_by_host(dep, len(net.hosts))
        heartbeat = int(dep.env["GIFTSYNC_HEARTBEAT_TIMEOUT_MS"]) / 1000
    return Outcome(
        count,
        realtime,
        stats,
        entries,
        gifts,
        sampler.samples,
        started,
        drained,
        realtime_done,
        killed,
        logs,
        heartbeat,
    )


def _tenants(cap: int, window: float, realtime: bool) -> Any:
    def tenants(url: str) -> str:
        text = tenant_table(
            BATCH,
            url,
            "VIRTUOUS_TOKEN_HOPE",
            calls_per_hour=cap,
            rate_window_seconds=window,
            batch_max_wait_seconds=1,
        )
        if realtime:
            text += tenant_table(
                REALTIME,
                url,
                "VIRTUOUS_TOKEN_RIVER",
                mode="real_time",
                calls_per_hour=cap,
                rate_window_seconds=window,
            )
        return text

    return tenants


def _start_hosts(dep: Deployment, net: Network) -> set[str]:
    """Start a deployment on every host, the first alone first; the first's broker ids."""
    namespace = Keys(dep.prefix).dramatiq_namespace
    before = broker_ids(dep.redis, namespace)
    first, *others = net.hosts
    dep.start_worker(processes=1, threads=THREADS, wrapper=first.wrapper())
    wait_for_consumers(dep, 1, timeout=120)
    # A worker process's consumers fetch as soon as it is ready; each fetch stamps its id.
    victim: set[str] = wait_for(
        lambda: (broker_ids(dep.redis, namespace) - before) or None,
        timeout=30,
        what="the first host's workers to fetch",
    )
    for host in others:
        dep.start_worker(processes=1, threads=THREADS, wrapper=host.wrapper())
    wait_for_consumers(dep, len(net.hosts), timeout=120)
    return victim


def _kill(dep: Deployment, net: Network, victim_ids: set[str], after: int) -> Kill:
    """Once ``after`` gifts are submitted and the first host has a call awaiting its answer,
    SIGKILL every process of that host; then take its unacknowledged messages."""
    host: Host = net.hosts[0]
    wait_for(
        lambda: submitted(dep, [BATCH]) >= after,
        timeout=300,
        what=f"{after} gifts submitted before the kill",
    )
    port = dep.sandbox.port
    awaiting: int = wait_for(
        lambda: host.calls_awaiting_answer(net.gateway, port) or None,
        timeout=60,
        interval=0.005,
        what="a call of the first host to be waiting for its answer",
    )
    at_submitted = submitted(dep, [BATCH])
    processes = host.kill()
    killed_at = time.monotonic()
    namespace = Keys(dep.prefix).dramatiq_namespace
    return Kill(
        awaiting, processes, Redelivery(dep.redis, namespace, victim_ids, killed_at), at_submitted
    )


def _calls_by_host(dep: Deployment, hosts: int) -> list[int]:
    """Virtuous calls each host's deployment logged (httpx logs one line per request)."""
    assert dep.log_dir is not None
    return [
        (dep.log_dir / f"worker-{n}.log").read_bytes().count(b"HTTP Request: ")
        for n in range(hosts)
    ]
