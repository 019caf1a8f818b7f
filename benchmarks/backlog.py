"""Benchmark 3: calls per gift and drain time on a giving-day backlog in batch mode.

200,000 gifts for one batch tenant are published at once against a compressed cap of
``CAP`` calls per ``WINDOW`` seconds, so the 2,000 calls they need take a few minutes. The
clock runs from the start of publishing until the ledger counts every gift submitted.

Figures: calls per gift (Virtuous's own count of calls over the gifts; 0.01 is full batches
of 100), the drain time, and the drain time over the theoretical minimum at the cap. That
minimum is the cap's rate applied to the calls needed, ``calls * WINDOW / CAP``; the absolute
lower bound a client that bursts a whole window at once could reach,
``(ceil(calls / CAP) - 1) * WINDOW``, is reported beside it.
"""

from __future__ import annotations

import math
import time
from typing import Any

from benchmarks import publisher
from benchmarks.deployment import make_config, org, tenant_table
from benchmarks.harness import (
    Result,
    bench_deployment,
    submitted,
    wait_for_consumers,
)
from giftsync.waiting import wait_for

NAME = "backlog"
TITLE = "Calls per gift and drain time, 200,000-gift backlog, batch mode"
FIGURES = ("calls per gift", "drain time", "drain time / minimum at the cap")
TENANT = "north-food-bank"


def run(quick: bool) -> Result:
    """Run benchmark 3."""
    count, cap, window = (3_000, 10, 3.0) if quick else (200_000, 600, 60.0)
    result = Result(
        NAME,
        TITLE,
        params={
            "gifts": count,
            "cap": cap,
            "window_seconds": window,
            "workers": "1 x (2 processes, 8 threads)",
        },
    )
    config = make_config(org(TENANT, "demo-token-north", calls_per_hour=cap, window_seconds=window))

    def tenants(url: str) -> str:
        return tenant_table(
            TENANT,
            url,
            "VIRTUOUS_TOKEN_NORTH",
            calls_per_hour=cap,
            rate_window_seconds=window,
            batch_max_wait_seconds=1,
        )

    with bench_deployment(tenants, config) as (dep, _server):
        dep.start_worker(processes=2, threads=8)
        wait_for_consumers(dep, 2)
        started = time.monotonic()
        platform = publisher.start(dep.env, count, 1, (TENANT,))
        wait_for(
            lambda: submitted(dep, [TENANT]) >= count,
            timeout=count / cap * window + 120,
            what="the backlog to drain",
        )
        drained = time.monotonic() - started
        publisher.seconds_taken(platform)
        stats: dict[str, Any] = dep.admin("GET", "stats")["orgs"][TENANT]
    calls = int(stats["calls"])
    per_gift = calls / count
    minimum = calls * window / cap
    bound = (math.ceil(calls / cap) - 1) * window
    ratio = drained / minimum
    result.add("calls per gift", per_gift, "", "<= 0.0101", None if quick else per_gift <= 0.0101)
    result.add("drain time", drained, "s")
    result.add(
        "drain time / minimum at the cap", ratio, "x", "<= 1.03", None if quick else ratio <= 1.03
    )
    result.notes.append(
        f"{calls:,} calls; minimum at the cap's rate {minimum:.1f} s; a whole-window burst "
        f"could reach {bound:.0f} s ({drained / bound if bound else float('nan'):.2f}x); "
        f"429s {stats['rate_limited']}, busiest window {stats['max_calls_in_window']} of {cap}"
    )
    return result
