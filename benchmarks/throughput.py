"""Benchmark 1: throughput from publish to submitted with the cap lifted, beside a naive baseline.

Three batch tenants whose cap (and the sandbox organisations') is far above anything the run
can spend. For 1, 2 and 4 worker processes (8 threads each), on a fresh Redis and sandbox:
workers are started and warmed up (one full batch per tenant submitted), then the clock
starts, the platform (:mod:`benchmarks.publisher`, a process of its own) validates and
enqueues every event with ``publish_many``, and the clock stops when the ledger counts every
event ``submitted`` (accepted by the sandbox's batch endpoint). The sandbox must then hold
exactly that many import entries.

The naive baseline (:mod:`benchmarks.naive`) runs on the same kind of deployment with 2
worker processes of 8 threads, on a smaller count when the full one would take too long; the
ratio compares it with giftsync on the same 2 processes.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks import publisher
from benchmarks.deployment import make_config, org, tenant_table
from benchmarks.harness import Result, RssSampler, bench_deployment, submitted
from benchmarks.naive import run_naive
from benchmarks.publisher import events
from giftsync.examples import transaction, version_at
from giftsync.waiting import wait_for
from producers.publish import publish_many

NAME = "throughput"
TITLE = "Throughput, publish to submitted, cap lifted"
FIGURES = (
    "giftsync 1 process",
    "giftsync 2 processes",
    "giftsync 4 processes",
    "naive baseline 2 processes",
    "ratio giftsync/naive (2 processes)",
)
TENANTS = ("hope-shelter", "river-arts", "north-food-bank")
TOKENS = {"hope-shelter": "hope", "river-arts": "river", "north-food-bank": "north"}
# A cap no run can reach: 100 million calls an hour.
NO_CAP = 100_000_000
THREADS = 8
TARGET = 5000.0
WARM_UP = 300


def _tenants(url: str) -> str:
    return "".join(
        tenant_table(
            t,
            url,
            f"VIRTUOUS_TOKEN_{TOKENS[t].upper()}",
            calls_per_hour=NO_CAP,
            batch_max_wait_seconds=1,
        )
        for t in TENANTS
    )


def _config() -> Any:
    return make_config(*(org(t, f"demo-token-{TOKENS[t]}", calls_per_hour=NO_CAP) for t in TENANTS))


def import_entries(dep: Any) -> int:
    """Import entries the in-process sandbox holds, every organisation."""
    state = dep.sandbox.state
    with state.lock:
        return sum(len(b.entries) for s in state.orgs.values() for b in s.imports.values())


def measure(count: int, processes: int, *, sample_rss: bool = False) -> dict[str, Any]:
    """One timed run; returns seconds, events/s, the publish rate and (optionally) RSS peaks."""
    with bench_deployment(_tenants, _config()) as (dep, _server):
        worker = dep.start_worker(processes=processes, threads=THREADS)
        publish_many(events(WARM_UP, 1, TENANTS))
        wait_for(
            lambda: submitted(dep, list(TENANTS)) >= WARM_UP,
            timeout=120,
            what="the warm-up batches",
        )
        total = WARM_UP + count
        with RssSampler([worker.pid]) as rss:
            started = time.monotonic()
            platform = publisher.start(dep.env, count, 1_000_000, TENANTS)
            wait_for(
                lambda: submitted(dep, list(TENANTS)) >= total,
                timeout=count / 100 + 60,
                interval=0.02,
                what=f"{total} submitted",
            )
            ended = time.monotonic()
            publishing = publisher.seconds_taken(platform)
        entries = import_entries(dep)
        if entries != total:
            raise AssertionError(f"the sandbox holds {entries} import entries, not {total}")
        out: dict[str, Any] = {
            "seconds": ended - started,
            "rate": count / (ended - started),
            "publish_rate": count / publishing,
        }
        if sample_rss:
            out["rss_quarters"] = rss.quarter_peaks(started, ended)
        return out


def run(quick: bool) -> Result:
    """Run benchmark 1."""
    count = 3_000 if quick else 200_000
    naive_count = 300 if quick else 20_000
    result = Result(
        NAME,
        TITLE,
        params={
            "events": count,
            "threads": THREADS,
            "naive_events": naive_count,
            "tenants": len(TENANTS),
        },
    )
    rates: dict[int, float] = {}
    for processes in (1, 2, 4):
        got = measure(count, processes)
        rates[processes] = got["rate"]
        result.add(
            f"giftsync {processes} process{'es' if processes > 1 else ''}",
            got["rate"],
            "events/s",
            f">= {TARGET:,.0f}",
            None if quick else got["rate"] >= TARGET,
        )
        result.notes.append(
            f"{processes} process(es): {count:,} events in {got['seconds']:.1f} s; "
            f"publish_many alone enqueued {got['publish_rate']:,.0f} events/s"
        )
    naive_rate = measure_naive(naive_count, processes=2)
    result.add("naive baseline 2 processes", naive_rate, "events/s")
    result.add("ratio giftsync/naive (2 processes)", rates[2] / naive_rate, "x")
    result.notes.append(f"naive baseline measured on {naive_count:,} events (one POST each)")
    return result


def measure_naive(count: int, *, processes: int) -> float:
    """Events/s of the naive baseline on ``count`` events."""
    with bench_deployment(
        lambda url: tenant_table("river-arts", url, "VIRTUOUS_TOKEN_RIVER"),
        make_config(org("river-arts", "demo-token-river", calls_per_hour=NO_CAP)),
    ) as (dep, server):
        made = dep.admin(
            "POST", "contacts", json={"org": "river-arts", "firstName": "Kim", "lastName": "Lee"}
        )["contacts"]
        contact = int(made[0]["id"])
        batch = [
            transaction(
                "river-arts", i + 1, amount=1000 + i, version=version_at(i), contact_id=contact
            )
            for i in range(count + 50)
        ]
        assert dep.log_dir is not None
        seconds = run_naive(
            dep.sandbox,
            server.url,
            "river-arts",
            "demo-token-river",
            batch,
            processes=processes,
            threads=THREADS,
            log=dep.log_dir / "naive.log",
            timeout=count / 20 + 60,
        )
        return count / seconds
