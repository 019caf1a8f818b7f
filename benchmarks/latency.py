"""Benchmark 4: real-time latency from ``publish()`` to the Gift existing in the sandbox.

One real-time tenant with the cap lifted and a donor Virtuous already knows, so each gift is
one ``POST /api/Gift``. Under light load (one ``publish()`` every ``GAP`` seconds, each event
its own message) the wall time just before each ``publish()`` is compared with the Gift's
``createDateTimeUtc``, stamped by the sandbox (same machine, same clock) as it stores it.

The path: the changes queue -> ``map_changes`` (ledger) -> the send queue -> ``send_gift``
(record lock, limiter, POST). An idle dramatiq consumer polls its queue at most every
``--poll-ms`` (100 ms by default), once per queue hop.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from benchmarks.deployment import make_config, org, tenant_table
from benchmarks.harness import Result, bench_deployment, wait_for_consumers
from giftsync.examples import transaction, version_at
from giftsync.waiting import wait_for
from producers.publish import publish

NAME = "latency"
TITLE = "Real-time latency, publish to Gift created, light load"
FIGURES = ("p50", "p99", "max")
TENANT = "river-arts"
NO_CAP = 100_000_000
# Seconds between two publishes: about 10 gifts a second.
GAP = 0.1


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()


def run(quick: bool) -> Result:
    """Run benchmark 4."""
    count = 40 if quick else 500
    result = Result(
        NAME,
        TITLE,
        params={"gifts": count, "gap_seconds": GAP, "workers": "1 x (2 processes, 8 threads)"},
    )
    config = make_config(org(TENANT, "demo-token-river", calls_per_hour=NO_CAP))

    def tenants(url: str) -> str:
        return tenant_table(
            TENANT, url, "VIRTUOUS_TOKEN_RIVER", mode="real_time", calls_per_hour=NO_CAP
        )

    with bench_deployment(tenants, config) as (dep, _server):
        made = dep.admin(
            "POST", "contacts", json={"org": TENANT, "firstName": "Kim", "lastName": "Lee"}
        )["contacts"]
        contact = int(made[0]["id"])
        dep.start_worker(processes=2, threads=8)
        wait_for_consumers(dep, 2)
        published: dict[str, float] = {}
        warm = 5
        for i in range(1, warm + count + 1):
            event = transaction(
                TENANT, i, amount=1000 + i, version=version_at(i), contact_id=contact
            )
            published[str(i)] = time.time()
            publish(event)
            time.sleep(GAP)  # the load's pace, not a wait for work
        state = dep.sandbox.state

        def created() -> dict[str, str] | None:
            with state.lock:
                gifts = {
                    g["transactionId"]: g["createDateTimeUtc"]
                    for g in state.org(TENANT).gifts.values()
                }
            return gifts if len(gifts) >= warm + count else None

        gifts = wait_for(created, timeout=60, what=f"{warm + count} gifts")
    latencies = [1000 * (_epoch(gifts[tx]) - published[tx]) for tx in published if int(tx) > warm]
    p99 = percentile(latencies, 0.99)
    result.add("p50", percentile(latencies, 0.50), "ms")
    result.add("p99", p99, "ms", "< 250 ms", None if quick else p99 < 250)
    result.add("max", max(latencies), "ms")
    result.notes.append(
        f"{len(latencies)} gifts after {warm} warm-up ones, one every {GAP * 1000:.0f} ms"
    )
    return result
