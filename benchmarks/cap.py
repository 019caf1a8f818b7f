"""Benchmark 2: how much of the cap a backlog far above it gets, with "an hour" compressed.

One batch tenant and its sandbox organisation share a cap of ``CAP`` calls per ``WINDOW``
seconds (the sandbox counts every arrival in an exact rolling window and answers 429 past
it). A backlog of three windows' worth of full batches is published at once and drained by
two worker deployments that share the limiter through Redis. While it drains, the
organisation's admitted-call count is sampled every 50 ms in process.

Figures: the share of the cap used while the backlog lasts (the mean, over every rolling
window that lies between the first and the last call, of calls in it / cap), the share of
the emptiest such window, the 429s Virtuous served, and the busiest rolling window (exact,
from the sandbox). The limiter's design gives up ``(B-1)/C + g/W`` of the cap (burst and
guard; see workers/store/limiter.py): 1.3% at 600 per 60 s (B = 6, g = 0.3 s).
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks import publisher
from benchmarks.deployment import make_config, org, tenant_table
from benchmarks.harness import (
    CallSampler,
    Result,
    bench_deployment,
    submitted,
    wait_for_consumers,
)
from giftsync.waiting import wait_for

NAME = "cap"
TITLE = "Use of the cap, compressed hour, backlog far above the cap"
FIGURES = ("share of the cap used", "emptiest window share", "429s", "busiest rolling window")
TENANT = "hope-shelter"


def rolling_shares(samples: list[tuple[float, int]], window: float, cap: int) -> list[float]:
    """calls / cap in every window ``[t, t + window]`` from a sample ``t`` between the first
    and the last call (calls are counted at the samples, so each is exact to one interval)."""
    first = next(t for t, n in samples if n > samples[0][1])
    total = samples[-1][1]
    last = next(t for t, n in samples if n >= total)
    shares = []
    j = 0
    for t, n in samples:
        if t < first or t + window > last:
            continue
        while j < len(samples) - 1 and samples[j + 1][0] <= t + window:
            j += 1
        shares.append((samples[j][1] - n) / cap)
    return shares


def run(quick: bool) -> Result:
    """Run benchmark 2."""
    cap, window = (40, 4.0) if quick else (600, 60.0)
    calls = 3 * cap
    count = calls * 100
    result = Result(
        NAME,
        TITLE,
        params={
            "cap": cap,
            "window_seconds": window,
            "events": count,
            "batches": calls,
            "workers": "2 x (1 process, 8 threads)",
        },
    )
    config = make_config(org(TENANT, "demo-token-hope", calls_per_hour=cap, window_seconds=window))

    def tenants(url: str) -> str:
        return tenant_table(
            TENANT,
            url,
            "VIRTUOUS_TOKEN_HOPE",
            calls_per_hour=cap,
            rate_window_seconds=window,
            batch_max_wait_seconds=1,
        )

    with bench_deployment(tenants, config) as (dep, _server):
        dep.start_worker(processes=1, threads=8)
        dep.start_worker(processes=1, threads=8)
        wait_for_consumers(dep, 2)
        with CallSampler(dep, TENANT) as sampler:
            started = time.monotonic()
            platform = publisher.start(dep.env, count, 1, (TENANT,))
            wait_for(
                lambda: submitted(dep, [TENANT]) >= count,
                timeout=window * 5 + 60,
                what="the backlog to drain",
            )
            drained = time.monotonic() - started
            publisher.seconds_taken(platform)
        stats: dict[str, Any] = dep.admin("GET", "stats")["orgs"][TENANT]
    shares = rolling_shares(sampler.samples, window, cap)
    mean = sum(shares) / len(shares)
    judged = None if quick else mean >= 0.98
    result.add("share of the cap used", 100 * mean, "%", ">= 98%", judged)
    result.add("emptiest window share", 100 * min(shares), "%")
    result.add(
        "429s", int(stats["rate_limited"]), "", "0", None if quick else stats["rate_limited"] == 0
    )
    result.add(
        "busiest rolling window",
        int(stats["max_calls_in_window"]),
        f"calls (cap {cap})",
        f"<= {cap}",
        stats["max_calls_in_window"] <= cap,
    )
    result.notes.append(
        f"{count:,} gifts in {stats['calls']:,} calls drained in {drained:.1f} s; "
        f"{len(shares)} rolling windows sampled"
    )
    return result
