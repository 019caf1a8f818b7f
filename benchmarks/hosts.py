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
The full run first drains the same backlog with no host killed, for comparison.

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
import math
from collections import Counter
from contextlib import ExitStack

from starlette.requests import ClientDisconnect

from benchmarks.cap import rolling_shares
from benchmarks.harness import Result
from benchmarks.hosts_run import (
    BATCH,
    REALTIME,
    REALTIME_FIRST_ID,
    SLOW_SECONDS,
    THREADS,
    Kill,
    Outcome,
    run_once,
)
from benchmarks.netns import HostsUnavailable, network
from workers.flows.direct_send import RECORD_LOCK_MS
from workers.queue.scheduler import MAINTENANCE_EVERY_SECONDS

NAME = "hosts"
TITLE = "Workers on several hosts: one Redis, one limiter per tenant, a host killed mid-send"
HOSTS = 3
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
CONTROL = "no host killed"


class _QuietDisconnects(logging.Filter):
    """The killed host's calls end in ClientDisconnect in the sandbox: expected, not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ClientDisconnect))


def run(quick: bool) -> Result:
    """Run benchmark 7."""
    cap, window = (20, 4.0) if quick else (60, 20.0)
    realtime = 0 if quick else 2 * cap
    result = Result(
        NAME,
        TITLE,
        params={
            "hosts": HOSTS,
            "workers": f"{HOSTS} hosts x (1 process, {THREADS} threads)",
            "cap": cap,
            "window_seconds": window,
            "backlog": "3 windows of 100-gift batches",
            "realtime_gifts": realtime,
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
        control = None if quick else run_once(net, cap, window, 0, kill=False)
        killed = run_once(net, cap, window, realtime, kill=True)
    assert killed.kill is not None
    result.params["heartbeat_timeout_seconds"] = killed.heartbeat_seconds
    _report_batch(result, "", cap, window, killed)
    _report_kill(result, killed.kill, killed)
    if control is not None:
        _report_batch(result, f"{CONTROL}: ", cap, window, control)
    if realtime:
        _report_realtime(result, cap, killed)
    return result


def _repeats(refs: list[str], expected: set[str]) -> tuple[int, int, int]:
    """(distinct expected ids present, duplicates beyond one each, expected ids missing)."""
    counts = Counter(refs)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    present = len(expected & counts.keys())
    return present, duplicates, len(expected) - present


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
    # Cumulative counts at each window's last sample, made per window; the empty windows
    # after the last call are not the backlog's.
    per = [b - a for a, b in zip([0, *counts], counts, strict=False)]
    while per and per[-1] == 0:
        per.pop()
    return per


def _report_batch(result: Result, label: str, cap: int, window: float, run: Outcome) -> None:
    """The batch tenant's figures; ``label`` prefixes them (the comparison run's)."""
    stats = run.stats[BATCH]
    shares = rolling_shares(run.samples, window, cap)
    mean = 100 * sum(shares) / len(shares) if shares else float("nan")
    # The backlog cannot drain sooner than a full window's burst each window.
    bound = (math.ceil(stats["calls"] / cap) - 1) * window
    per_window = " / ".join(map(str, _per_window(run.samples, window)))
    if not label:
        busiest = int(stats["max_calls_in_window"])
        within = busiest <= cap
        result.add("busiest rolling window", busiest, f"calls (cap {cap})", f"<= {cap}", within)
        limited = int(stats["rate_limited"])
        result.add("429s", limited, "", "0", limited == 0)
        _, duplicates, lost = _repeats(run.entries, {str(i) for i in range(1, run.count + 1)})
        result.add(
            "import entries in Virtuous / events published",
            f"{len(run.entries):,} / {run.count:,}",
        )
        result.add("duplicates", duplicates, "", "0", duplicates == 0)
        result.add("lost", lost, "", "0", lost == 0)
    result.add(f"{label}share of the cap used", mean, "%")
    result.add(f"{label}time to drain", run.drained, f"s (a full window each window: {bound:g} s)")
    result.notes.append(
        f"{label or 'batch: '}{stats['calls']:,} calls, {stats['duplicates_noop']:,} resent "
        f"entries answered as no-ops, busiest rolling window {stats['max_calls_in_window']}, "
        f"429s {stats['rate_limited']}; emptiest rolling window "
        f"{100 * min(shares) if shares else float('nan'):.1f}% of the cap; calls in each "
        f"window from the first call: {per_window}"
    )


def _seconds(value: float | None) -> float | str:
    return round(value, 2) if value is not None else "n/a (nothing held)"


def _report_kill(result: Result, kill: Kill, run: Outcome) -> None:
    held = kill.redelivery
    result.add("killed host: calls awaiting their answer at the kill", kill.awaiting)
    queues = ", ".join(f"{q} {n}" for q, n in sorted(held.by_queue().items()))
    result.add("killed host: messages in flight at the kill", len(held.held), f"({queues})")
    back, picked = held.last_given_back(), held.last_picked_up()
    result.add("killed host's messages given back after", _seconds(back), "s" if back else "")
    heartbeat = run.heartbeat_seconds
    result.add(
        "killed host's messages picked up by the other hosts after",
        _seconds(picked),
        "s" if picked else "",
        f"<= heartbeat {heartbeat:g} s + maintenance every {MAINTENANCE_EVERY_SECONDS:g} s",
        None if picked is None else picked <= heartbeat + MAINTENANCE_EVERY_SECONDS,
    )
    actors = ", ".join(f"{a} {n}" for a, n in sorted(held.by_actor().items()))
    result.notes.append(
        f"host 1 killed ({kill.processes} processes) {held.killed_at - run.started:.1f} s "
        f"after publishing began, at {kill.at_submitted:,} of {run.count:,} gifts submitted; "
        f"it held {actors}; Virtuous calls by host, from the workers' logs (the killed "
        f"host's last calls may be missing): {' / '.join(map(str, run.calls_by_host))}"
    )


def _report_realtime(result: Result, cap: int, run: Outcome) -> None:
    stats = run.stats[REALTIME]
    count = run.realtime
    expected = {str(i) for i in range(REALTIME_FIRST_ID, REALTIME_FIRST_ID + count)}
    _, duplicates, lost = _repeats(run.gifts, expected)
    result.add("real-time: gifts in Virtuous / events published", f"{len(run.gifts):,} / {count:,}")
    result.add("real-time: duplicates", duplicates, "", "0", duplicates == 0)
    result.add("real-time: lost", lost, "", "0", lost == 0)
    busiest = int(stats["max_calls_in_window"])
    unit, within = f"calls (cap {cap})", busiest <= cap
    result.add("real-time: busiest rolling window", busiest, unit, f"<= {cap}", within)
    result.add("real-time: 429s", int(stats["rate_limited"]), "", "0", stats["rate_limited"] == 0)
    if run.realtime_done is not None:
        result.add("real-time: all created after", run.realtime_done, "s")
    result.notes.append(
        f"real-time: {stats['calls']:,} calls for {len(run.gifts)} gifts (lookups after the "
        f"kill included); a record whose sender was killed holding its lock waits out the "
        f"lock (RECORD_LOCK_MS, {RECORD_LOCK_MS / 1000:g} s) before another host may send it"
    )
