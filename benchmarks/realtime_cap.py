"""Benchmark 6: real-time gifts against the cap: a burst into an idle tenant, and pacing.

Two real-time tenants, donors known, one worker deployment (2 processes, 8 threads):

- burst: 300 gifts published at once into an idle tenant capped at 10,000 calls an hour (3%
  of the hour). The limiter's tokens are the calls left in the rolling window, so the burst
  should go at once; the figure is the time from the first publish to the last gift sent.
- paced: 200 gifts into a tenant capped at 60 calls per 10 s, so most creates are throttled,
  some several times. A create is marked attempted only once granted, so a throttle costs no
  lookup: the figure is the calls Virtuous counted per gift created (target 1.00), beside the
  lookups, the 429s and the busiest rolling window.
"""

from __future__ import annotations

import time

from benchmarks.deployment import make_config, org, tenant_table
from benchmarks.harness import Result, bench_deployment, submitted, wait_for_consumers
from giftsync.examples import transaction, version_at
from giftsync.waiting import wait_for
from producers.publish import publish_many

NAME = "realtime_cap"
TITLE = "Real-time against the cap: a burst into an idle tenant, and gifts under pacing"
BURST, PACED = "river-arts", "north-food"
LOOKUP = "GET /api/Gift/{source}/{transaction_id}"
FIGURES = (
    "burst into an idle tenant: all created after",
    "under pacing: calls per created gift",
    "under pacing: 429s",
    "under pacing: busiest rolling window",
)


def run(quick: bool) -> Result:
    """Run benchmark 6."""
    burst_count, paced_count = (60, 40) if quick else (300, 200)
    paced_cap, paced_window = (20, 4.0) if quick else (60, 10.0)
    result = Result(
        NAME,
        TITLE,
        params={
            "burst": f"{burst_count} gifts at 10,000 calls per hour",
            "paced": f"{paced_count} gifts at {paced_cap} calls per {paced_window:g} s",
            "workers": "1 x (2 processes, 8 threads)",
        },
    )
    config = make_config(
        org(BURST, "demo-token-river", calls_per_hour=10_000),
        org(PACED, "demo-token-north", calls_per_hour=paced_cap, window_seconds=paced_window),
    )

    def tenants(url: str) -> str:
        return tenant_table(
            BURST, url, "VIRTUOUS_TOKEN_RIVER", mode="real_time", calls_per_hour=10_000
        ) + tenant_table(
            PACED,
            url,
            "VIRTUOUS_TOKEN_NORTH",
            mode="real_time",
            calls_per_hour=paced_cap,
            rate_window_seconds=paced_window,
        )

    with bench_deployment(tenants, config) as (dep, _server):
        contacts = {}
        for name in (BURST, PACED):
            made = dep.admin("POST", "contacts", json={"org": name, "lastName": "Lee"})
            contacts[name] = int(made["contacts"][0]["id"])
        dep.start_worker(processes=2, threads=8)
        wait_for_consumers(dep, 2)

        def events(tenant: str, count: int) -> list[dict[str, object]]:
            return [
                transaction(tenant, i, version=version_at(i), contact_id=contacts[tenant])
                for i in range(1, count + 1)
            ]

        started = time.monotonic()
        publish_many(events(BURST, burst_count))
        wait_for(
            lambda: submitted(dep, [BURST], "sent") >= burst_count,
            timeout=300,
            what="the burst to be created",
        )
        burst_seconds = time.monotonic() - started

        started = time.monotonic()
        publish_many(events(PACED, paced_count))
        wait_for(
            lambda: submitted(dep, [PACED], "sent") >= paced_count,
            timeout=paced_count / paced_cap * (paced_window + 1) * 3 + 60,
            what="the paced gifts to be created",
        )
        paced_seconds = time.monotonic() - started
        stats = dep.admin("GET", "stats")
        created = len(dep.admin("GET", "gifts")[PACED])
    orgs = stats["orgs"]
    by_endpoint = stats["requests"]["by_endpoint"]
    paced = orgs[PACED]
    per_gift = paced["calls"] / created if created else float("nan")
    result.add(
        "burst into an idle tenant: all created after",
        round(burst_seconds, 2),
        "s",
        "<= 30 s",
        None if quick else burst_seconds <= 30,
    )
    result.add(
        "under pacing: calls per created gift",
        round(per_gift, 3),
        "",
        "1.00",
        None if quick else abs(per_gift - 1.0) < 0.005,
    )
    result.add(
        "under pacing: 429s", int(paced["rate_limited"]), "", "0", paced["rate_limited"] == 0
    )
    result.add(
        "under pacing: busiest rolling window",
        int(paced["max_calls_in_window"]),
        f"calls (cap {paced_cap})",
        f"<= {paced_cap}",
        paced["max_calls_in_window"] <= paced_cap,
    )
    result.notes.append(
        f"burst: {orgs[BURST]['calls']:,} calls for {burst_count} gifts; paced: "
        f"{paced['calls']:,} calls for {created} gifts in {paced_seconds:.1f} s "
        f"(the cap allows {paced_count / paced_cap * paced_window:.0f} s at best past the "
        f"first window); lookups by reference over both tenants: "
        f"{by_endpoint.get(LOOKUP, {}).get('count', 0)}"
    )
    return result
