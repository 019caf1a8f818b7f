"""Benchmark 5: Redis bytes per buffered gift, and worker memory across a 200,000-event run.

Buffer: 40 batch tenants whose max wait is a day each get 99 gifts, one short of a
batch, so nothing can flush. Redis's ``used_memory`` is read once the workers are up and
again when every gift is ``buffered`` and the changes queues are empty: the difference per gift
(less the client connections' buffers, which come and go with the traffic) is what
buffering keeps, the ledger record included. It is measured twice: once for the second half
of the gifts (the marginal cost, into buffers that exist) and once for all of them (including
the keys and structures the first gifts create). ``MEMORY USAGE`` of the buffer keys
alone (entries hash and order set) and of the ledger records gives the split.

Worker memory: the throughput benchmark's run with 2 worker processes, 200,000 events, with
the resident memory of every process of the worker deployment sampled from /proc every
100 ms. Flat means the last quarter's peak is within 10% of the first quarter's.
"""

from __future__ import annotations

from typing import Any

from benchmarks.deployment import make_config, org, tenant_table
from benchmarks.harness import (
    Result,
    bench_deployment,
    submitted,
    wait_for_consumers,
)
from benchmarks.throughput import measure
from giftsync.examples import transaction, version_at
from giftsync.waiting import wait_for
from producers.publish import publish_many

NAME = "memory"
TITLE = "Memory: Redis per buffered gift, worker RSS over a long run"
FIGURES = (
    "Redis bytes per buffered gift",
    "Redis bytes per buffered gift, first gifts included",
    "buffer keys bytes per gift",
    "ledger record bytes per gift",
    "worker RSS first quarter peak",
    "worker RSS last quarter peak",
    "last/first quarter peak",
)
PER_TENANT = 99


def _names(count: int) -> list[str]:
    return [f"bench-{i:03d}" for i in range(count)]


def _kept_bytes(info: dict[str, Any]) -> int:
    # Client buffers come and go with the traffic; what buffering keeps is the rest.
    return int(info["used_memory"]) - int(info.get("mem_clients_normal", 0))


def buffered_bytes(tenant_count: int) -> dict[str, float]:
    """Bytes per buffered gift: all of Redis, the buffer keys, the ledger records."""
    names = _names(tenant_count)

    def tenants(url: str) -> str:
        return "".join(
            tenant_table(name, url, "VIRTUOUS_TOKEN_HOPE", batch_max_wait_seconds=86_400)
            for name in names
        )

    with bench_deployment(tenants, make_config(org("hope-shelter", "demo-token-hope"))) as (
        dep,
        _server,
    ):
        dep.start_worker(processes=1, threads=8)
        wait_for_consumers(dep, 1)
        marks = [_kept_bytes(dep.redis.info("memory"))]
        half = PER_TENANT // 2
        # Two rounds: the second adds gifts to buffers that exist, so its cost per gift is
        # the marginal one, without the keys and structures a first gift creates.
        for first, last in ((0, half), (half, PER_TENANT)):
            publish_many(
                transaction(name, n * PER_TENANT + k + 1, amount=1000 + k, version=version_at(k))
                for k in range(first, last)
                for n, name in enumerate(names)
            )
            done = last * tenant_count

            def buffered(done: int = done) -> bool:
                return submitted(dep, names, "buffered") >= done and not dep.changes_waiting()

            wait_for(buffered, timeout=120, what="every gift buffered")
            marks.append(_kept_bytes(dep.redis.info("memory")))
        count = PER_TENANT * tenant_count
        buffer_keys = [dep.key("buf", n, part) for n in names for part in ("entries", "order")]
        records = [key for key in dep.redis.scan_iter(dep.key("rec", "*"), count=1000)]
        pipe = dep.redis.pipeline(transaction=False)
        for key in buffer_keys + records:
            pipe.memory_usage(key, samples=0)
        sizes = [int(n or 0) for n in pipe.execute()]
        return {
            "gifts": count,
            "total": (marks[2] - marks[0]) / count,
            "marginal": (marks[2] - marks[1]) / ((PER_TENANT - half) * tenant_count),
            "buffer": sum(sizes[: len(buffer_keys)]) / count,
            "ledger": sum(sizes[len(buffer_keys) :]) / count,
        }


def run(quick: bool) -> Result:
    """Run benchmark 5."""
    tenant_count, events = (20, 3_000) if quick else (40, 200_000)
    result = Result(
        NAME,
        TITLE,
        params={
            "buffer_tenants": tenant_count,
            "gifts_per_tenant": PER_TENANT,
            "rss_events": events,
            "rss_workers": "1 x (2 processes, 8 threads)",
        },
    )
    got = buffered_bytes(tenant_count)
    result.add("Redis bytes per buffered gift", got["marginal"], "bytes")
    result.add("Redis bytes per buffered gift, first gifts included", got["total"], "bytes")
    result.add("buffer keys bytes per gift", got["buffer"], "bytes")
    result.add("ledger record bytes per gift", got["ledger"], "bytes")
    run_: dict[str, Any] = measure(events, 2, sample_rss=True)
    quarters = run_["rss_quarters"]
    first, last = quarters[0][0], quarters[-1][0]
    ratio = last / first if first else float("nan")
    result.add("worker RSS first quarter peak", first / 1024, "MiB")
    result.add("worker RSS last quarter peak", last / 1024, "MiB")
    result.add("last/first quarter peak", ratio, "x", "<= 1.10", None if quick else ratio <= 1.1)
    singles = ", ".join(f"{single / 1024:.0f}" for _total, single in quarters)
    result.notes.append(
        f"{got['gifts']:,} gifts buffered over {tenant_count} tenants; RSS is the whole worker "
        f"deployment (main, 2 workers, scheduler); largest single process per quarter: "
        f"{singles} MiB; run took {run_['seconds']:.1f} s"
    )
    return result
