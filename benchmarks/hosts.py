"""Benchmark 7: workers on several hosts sharing one Redis, and one of them killed mid-send.

Three "hosts" are network namespaces on this machine, each joined by a veth pair to a bridge
in the root namespace (:mod:`benchmarks.netns`); Redis and the sandbox listen on the bridge's
address only, so every worker reaches them over its own virtual network, as from another
machine. Each host runs one worker deployment (1 process, 4 threads) with the same
``REDIS_URL``, ``GIFTSYNC_PREFIX`` and tenants file, so each tenant has one limiter in Redis.

A batch tenant at a compressed cap (60 calls per 20 s; --quick: 20 per 4 s) gets a backlog of
three windows of full batches, published at once from a process of its own; the full run
adds a real-time tenant at the same cap with two windows of gifts. Every Virtuous answer takes
0.5 s, so calls are in flight most of the time: half wait before the request is applied (the
sandbox's slow fault), half after (its timeout-after-apply fault, held for less than the
client's timeout), so a call cut by the kill may be undone, or done with its answer lost.
Once a third of the backlog is submitted and the first host has a call waiting for its answer
(read from the kernel's sockets with ``ss``), every process of that host gets SIGKILL at once.

Figures: the busiest rolling window of Virtuous calls against the cap and the 429s (the
sandbox's exact counts); import entries in the sandbox against events published, with
duplicates (entries beyond one per transactionId) and lost (published ids with none); the
share of the cap used while the backlog lasted (as in benchmarks/cap.py); the time to drain;
and, for the messages the killed host had fetched and not acknowledged (dramatiq's ack sets,
:mod:`benchmarks.redelivery`), when they were given back and when the other hosts picked
them up. That wait is the heartbeat timeout (5 s here, the deployment's setting; 15 s by
default) plus up to one scheduler maintenance period (5 s).

Without root (or without ``ip``) the benchmark cannot make its hosts: every figure then reads
"skipped" and a note says why.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect

from benchmarks import publisher
from benchmarks.cap import rolling_shares
from benchmarks.deployment import Deployment, make_config, org, tenant_table
from benchmarks.harness import CallSampler, Result, bench_deployment, submitted, wait_for_consumers
from benchmarks.netns import Host, HostsUnavailable, Network, network
from benchmarks.redelivery import Redelivery, broker_ids
from giftsync.examples import transaction, version_at
from giftsync.waiting import wait_for
from producers.publish import publish_many
from sandbox.config import FaultConfig
from workers.flows.direct_send import RECORD_LOCK_MS
from workers.queue.scheduler import MAINTENANCE_EVERY_SECONDS
from workers.store.keys import Keys

NAME = "hosts"
TITLE = "Workers on several hosts: one Redis, one limiter per tenant, a host killed mid-send"
BATCH, REALTIME = "hope-shelter", "river-arts"
HOSTS = 3
THREADS = 4
# Every Virtuous answer takes this long, so a kill finds calls in flight.
SLOW_SECONDS = 0.5
# Real-time transaction ids start here, apart from the batch tenant's.
REALTIME_FIRST_ID = 1_000_001
FIGURES = (
    "busiest rolling window",
    "429s",
    "import entries in Virtuous / events published",
    "duplicates",
    "lost",
    "share of the cap used",
    "time to drain",
    "killed host: calls awaiting their answer at the kill",
    "killed host: messages in flight at the kill",
    "killed host's messages given back after",
    "killed host's messages picked up by the other hosts after",
)


class _QuietDisconnects(logging.Filter):
    """The killed host's calls end in ClientDisconnect in the sandbox: expected, not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ClientDisconnect))


@dataclass
class Kill:
    """What the host kill found and how its messages came back."""

    awaiting: int
    processes: int
    redelivery: Redelivery
    at_submitted: int


def run(quick: bool) -> Result:
    """Run benchmark 7."""
    cap, window = (20, 4.0) if quick else (60, 20.0)
    result = Result(
        NAME,
        TITLE,
        params={
            "hosts": HOSTS,
            "workers": f"{HOSTS} hosts x (1 process, {THREADS} threads)",
            "cap": cap,
            "window_seconds": window,
            "backlog": "3 windows of 100-gift batches",
            "realtime_gifts": 0 if quick else 2 * cap,
            "virtuous_answer_seconds": SLOW_SECONDS,
        },
    )
    with ExitStack() as stack:
        try:
            net = stack.enter_context(network(HOSTS))
        except HostsUnavailable as exc:
            for label in FIGURES:
                result.add(label, "skipped")
            result.notes.append(f"skipped: the hosts could not be made: {exc}")
            return result
        quiet = _QuietDisconnects()
        logging.getLogger("uvicorn.error").addFilter(quiet)
        stack.callback(logging.getLogger("uvicorn.error").removeFilter, quiet)
        _measure(net, cap, window, 0 if quick else 2 * cap, result)
    return result


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


def _repeats(refs: list[str], expected: set[str]) -> tuple[int, int, int]:
    """(distinct expected ids present, duplicates beyond one each, expected ids missing)."""
    counts = Counter(refs)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    present = len(expected & counts.keys())
    return present, duplicates, len(expected) - present


def _measure(net: Network, cap: int, window: float, realtime: int, result: Result) -> None:
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
        heartbeat = int(dep.env["GIFTSYNC_HEARTBEAT_TIMEOUT_MS"]) / 1000
        result.params["heartbeat_timeout_seconds"] = heartbeat
        victim_ids = _start_hosts(dep, net)
        contact = 0
        if realtime:
            made = dep.admin("POST", "contacts", json={"org": REALTIME, "lastName": "Lee"})
            contact = int(made["contacts"][0]["id"])
        with CallSampler(dep, BATCH) as sampler:
            started = time.monotonic()
            platform = publisher.start(dep.env, count, 1, (BATCH,))
            if realtime:
                publish_many(
                    transaction(REALTIME, i, version=version_at(i), contact_id=contact)
                    for i in range(REALTIME_FIRST_ID, REALTIME_FIRST_ID + realtime)
                )
            kill = _kill(dep, net, victim_ids, count // 3)
            with kill.redelivery:
                wait_for(
                    lambda: submitted(dep, [BATCH]) >= count,
                    timeout=4 * window * 3 + 120,
                    what="the backlog to drain",
                )
                drained = time.monotonic() - started
                wait_for(
                    kill.redelivery.done,
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
    _report(result, cap, window, count, stats[BATCH], entries, sampler, drained)
    _report_kill(result, kill, heartbeat)
    if realtime and realtime_done is not None:
        _report_realtime(result, cap, realtime, stats[REALTIME], gifts, realtime_done)
    actors = ", ".join(f"{a} {n}" for a, n in sorted(kill.redelivery.by_actor().items()))
    result.notes.append(
        f"host 1 killed ({kill.processes} processes) {kill.redelivery.killed_at - started:.1f} s "
        f"after publishing began, at {kill.at_submitted:,} of {count:,} gifts submitted; it "
        f"held {actors}; Virtuous calls by host, from the workers' logs (the killed host's "
        f"last calls may be missing): {' / '.join(str(n) for n in logs)}"
    )


def _calls_by_host(dep: Deployment, hosts: int) -> list[int]:
    """Virtuous calls each host's deployment logged (httpx logs one line per request)."""
    assert dep.log_dir is not None
    return [
        (dep.log_dir / f"worker-{n}.log").read_bytes().count(b"HTTP Request: ")
        for n in range(hosts)
    ]


def _report(
    result: Result,
    cap: int,
    window: float,
    count: int,
    stats: dict[str, Any],
    entries: list[str],
    sampler: CallSampler,
    drained: float,
) -> None:
    busiest = int(stats["max_calls_in_window"])
    result.add("busiest rolling window", busiest, f"calls (cap {cap})", f"<= {cap}", busiest <= cap)
    limited = int(stats["rate_limited"])
    result.add("429s", limited, "", "0", limited == 0)
    _, duplicates, lost = _repeats(entries, {str(i) for i in range(1, count + 1)})
    result.add("import entries in Virtuous / events published", f"{len(entries):,} / {count:,}")
    result.add("duplicates", duplicates, "", "0", duplicates == 0)
    result.add("lost", lost, "", "0", lost == 0)
    shares = rolling_shares(sampler.samples, window, cap)
    mean = 100 * sum(shares) / len(shares) if shares else float("nan")
    result.add("share of the cap used", mean, "%")
    minimum = stats["calls"] * window / cap
    result.add("time to drain", drained, f"s (minimum at the cap's rate {minimum:.0f} s)")
    result.notes.append(
        f"batch: {stats['calls']:,} calls, {stats['duplicates_noop']:,} resent entries "
        f"answered as no-ops; emptiest rolling window "
        f"{100 * min(shares) if shares else float('nan'):.1f}% of the cap; calls in each "
        f"window from the first call: {' / '.join(map(str, _per_window(sampler.samples, window)))}"
    )


def _per_window(samples: list[tuple[float, int]], window: float) -> list[int]:
    """Calls in consecutive windows, the first starting at the first call."""
    base = samples[0][1]
    first = next((t for t, n in samples if n > base), None)
    if first is None:
        return []
    counts: list[int] = []
    for t, n in samples:
        if t >= first:
            slot = int((t - first) // window)
            # A window without samples holds what the one before ended with.
            counts.extend([counts[-1] if counts else 0] * (slot + 1 - len(counts)))
            counts[slot] = n - base
    # Cumulative counts at each window's last sample, made per window.
    return [b - a for a, b in zip([0, *counts], counts, strict=False)]


def _report_kill(result: Result, kill: Kill, heartbeat: float) -> None:
    held = kill.redelivery
    result.add("killed host: calls awaiting their answer at the kill", kill.awaiting)
    queues = ", ".join(f"{q} {n}" for q, n in sorted(held.by_queue().items()))
    result.add("killed host: messages in flight at the kill", len(held.held), f"({queues})")
    back, picked = held.last_given_back(), held.last_picked_up()
    result.add("killed host's messages given back after", _seconds(back), "s" if back else "")
    bound = heartbeat + MAINTENANCE_EVERY_SECONDS
    result.add(
        "killed host's messages picked up by the other hosts after",
        _seconds(picked),
        "s" if picked else "",
        f"<= heartbeat {heartbeat:g} s + maintenance every {MAINTENANCE_EVERY_SECONDS:g} s",
        None if picked is None else picked <= bound,
    )


def _seconds(value: float | None) -> float | str:
    return round(value, 2) if value is not None else "n/a (nothing held)"


def _report_realtime(
    result: Result,
    cap: int,
    count: int,
    stats: dict[str, Any],
    gifts: list[str],
    done: float,
) -> None:
    expected = {str(i) for i in range(REALTIME_FIRST_ID, REALTIME_FIRST_ID + count)}
    _, duplicates, lost = _repeats(gifts, expected)
    result.add("real-time: gifts in Virtuous / events published", f"{len(gifts):,} / {count:,}")
    result.add("real-time: duplicates", duplicates, "", "0", duplicates == 0)
    result.add("real-time: lost", lost, "", "0", lost == 0)
    busiest = int(stats["max_calls_in_window"])
    result.add(
        "real-time: busiest rolling window",
        busiest,
        f"calls (cap {cap})",
        f"<= {cap}",
        busiest <= cap,
    )
    result.add("real-time: 429s", int(stats["rate_limited"]), "", "0", stats["rate_limited"] == 0)
    result.add("real-time: all created after", done, "s")
    result.notes.append(
        f"real-time: {stats['calls']:,} calls for {len(gifts)} gifts (lookups after the kill "
        f"included); a record whose sender was killed holding its lock waits out the lock "
        f"(RECORD_LOCK_MS, {RECORD_LOCK_MS / 1000:g} s) before another host may send it"
    )
