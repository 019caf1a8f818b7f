"""Benchmark 7: a thousand tenants on one deployment, one of them with a giving-day backlog.

Three deployments in one run, each on a Redis of its own, with the same workers (2 processes,
8 threads) and the same real-time tenant settings (10,000 calls an hour, donor known):

1. **One tenant configured.** Worker start, Redis and worker load while idle, then real-time
   gifts one every 100 ms: publish to Gift created, p50/p99/max (``benchmarks/latency.py``'s
   measure). This is the single-tenant figure the others are set beside.
2. **Every tenant configured** (1,000; 100 in the quick form, see ``_params``): the big one in
   batch mode at 300 calls per 60 s, most in real time, 100 small batch tenants with a 10 s
   max wait. Worker start; while every tenant is idle, Redis's commands/s and
   CPU, the workers' CPU and memory, Redis's memory, one pass of the scheduler's pull task
   timed in this process and one ``/metrics`` scrape (the Redis-held gauges and the worker
   processes' merged counters). Then the same real-time gifts into a sample of 20
   tenants (round-robin) and one gift into each small batch tenant, idle; then the big
   tenant's 200,000 gifts are published at once (the platform in a process of its own),
   real-time gifts keep flowing through its intake, and once every backlog gift is in the
   ledger and both changes queues are empty (the backlog now waits on the cap alone) the same
   real-time and batch gifts again: **beside the backlog**.

Batch tenants' figure: seconds from ``publish()`` to the gift ``submitted`` in the ledger
(polled every 50 ms), beside their configured max wait. The big tenant must still hold gifts
at the end (else the backlog did not last the measurement) and its calls during it are shown
as a share of its cap's rate.

3. **The ceiling of one Redis**: a third deployment, 3 batch tenants with the cap lifted (as the
throughput benchmark runs them), 60,000 gifts published at once; Redis's CPU seconds
(``INFO cpu``, user + system) from the start of publishing to the last gift ``submitted``,
per gift. One core over that is the gifts/s one Redis could carry at 100% of its single
thread. The backlog's own figures (Redis CPU per gift during its intake and while it drains at
the cap, less the idle rate) are noted beside it.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

from benchmarks import publisher
from benchmarks.deployment import Deployment
from benchmarks.fleet import (
    BIG,
    BatchWatch,
    Fleet,
    RealTimeProbe,
    idle_load,
    known_donors,
    pull_pass_seconds,
    read_redis,
    scrape_seconds,
)
from benchmarks.harness import (
    Result,
    bench_deployment,
    sandbox_calls,
    submitted,
    wait_for_consumers,
)
from benchmarks.latency import percentile
from giftsync.waiting import wait_for

NAME = "tenants"
TITLE = "A thousand tenants, one with a 200,000-gift backlog at its cap"
FIGURES = (
    "real-time p50, one tenant configured",
    "real-time p99, one tenant configured",
    "real-time p50 beside the backlog",
    "real-time p99 beside the backlog",
    "real-time max beside the backlog",
    "p99 beside the backlog / one tenant",
    "real-time p99, every tenant idle",
    "real-time p99 during the backlog's intake",
    "batch publish to submitted beside the backlog, median",
    "batch publish to submitted beside the backlog, max",
    "batch publish to submitted, every tenant idle, max",
    "big tenant's gifts still waiting at the end",
    "big tenant's calls during the measurement / its cap",
    "worker start, one tenant",
    "worker start, every tenant",
    "Redis commands/s idle, one tenant",
    "Redis commands/s idle, every tenant",
    "Redis CPU idle, one tenant",
    "Redis CPU idle, every tenant",
    "worker CPU idle, one tenant",
    "worker CPU idle, every tenant",
    "Redis memory, one tenant",
    "Redis memory, every tenant idle",
    "worker RSS, one tenant",
    "worker RSS, every tenant",
    "scheduler pull pass over every tenant",
    "/metrics scrape, Redis-held gauges",
    "/metrics scrape, worker counters",
    "cap lifted: gifts/s, publish to submitted",
    "cap lifted: Redis CPU",
    "cap lifted: Redis CPU per gift",
    "one Redis's ceiling at 100% CPU",
)
PROCESSES, THREADS = 2, 8


def _params(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "tenants": 100,
            "batch_tenants": 10,
            "sample": 10,
            "backlog": 5_000,
            "cap": 5,
            "window": 2.0,
            "batch_wait": 2.0,
            "gifts": 40,
            "idle_seconds": 5.0,
            "lifted_gifts": 3_000,
        }
    return {
        "tenants": 1000,
        "batch_tenants": 100,
        "sample": 20,
        "backlog": 200_000,
        "cap": 300,
        "window": 60.0,
        "batch_wait": 10.0,
        "gifts": 500,
        "idle_seconds": 20.0,
        "lifted_gifts": 60_000,
    }


def _start(dep: Deployment, extra: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    dep.start_worker(processes=PROCESSES, threads=THREADS, extra=extra)
    wait_for_consumers(dep, PROCESSES, timeout=300)
    return time.monotonic() - started


def _stats(latencies: list[float]) -> tuple[float, float, float]:
    return percentile(latencies, 0.5), percentile(latencies, 0.99), max(latencies)


def _one_tenant(p: dict[str, Any]) -> dict[str, Any]:
    fleet = Fleet(None, ("rt-0000",), ())
    with bench_deployment(fleet.tenants_file, fleet.sandbox_config(), env=fleet.env()) as (
        dep,
        _server,
    ):
        donors = known_donors(dep, list(fleet.real_time))
        start = _start(dep)
        idle = idle_load(dep, p["idle_seconds"])
        probe = RealTimeProbe(dep, donors)
        probe.run(5)  # warm-up: the first call of each process opens its connections
        keys = probe.run(p["gifts"])
        latencies = probe.latencies(keys, timeout=120)
        dep.stop()
    return {"start": start, **idle, "latency": _stats(latencies)}


def _changes_left(dep: Deployment) -> int:
    return dep.changes_waiting()


def _ledgered(dep: Deployment, tenant: str) -> int:
    return sum(dep.state_counts(tenant).values())


def _probe_round(
    probe: RealTimeProbe, watch: BatchWatch, batch: tuple[str, ...], count: int
) -> list[tuple[str, str]]:
    """``count`` real-time gifts; one gift into each batch tenant, spread over the same span."""
    step = max(count // max(len(batch), 1), 1)

    def alongside(index: int) -> None:
        if index % step == 0 and index // step < len(batch):
            watch.publish(batch[index // step])

    return probe.run(count, alongside=alongside)


def _many(p: dict[str, Any]) -> dict[str, Any]:
    fleet = Fleet.of(p["tenants"], p["batch_tenants"], p["cap"], p["window"], p["batch_wait"])
    sample = list(fleet.real_time[: p["sample"]])
    mp_dir = tempfile.mkdtemp(prefix="giftsync-bench-metrics-")
    out: dict[str, Any] = {}
    with bench_deployment(fleet.tenants_file, fleet.sandbox_config(), env=fleet.env()) as (
        dep,
        _server,
    ):
        donors = known_donors(dep, sample)
        out["start"] = _start(dep, {"PROMETHEUS_MULTIPROC_DIR": mp_dir})
        out.update(idle_load(dep, p["idle_seconds"]))
        idle_cpu = out["redis_cpu"]
        out["pull_pass"] = pull_pass_seconds()
        out["scrape"] = scrape_seconds(mp_dir)
        probe = RealTimeProbe(dep, donors)
        probe.run(5)
        with BatchWatch(dep) as watch:
            keys = _probe_round(probe, watch, fleet.batch, p["gifts"])
            out["idle_latency"] = _stats(probe.latencies(keys, timeout=120))
            out["idle_intake"] = _stats(probe.intake_delays(keys))
            out["idle_batch"] = watch.delays(timeout=p["batch_wait"] + 60)

        # The backlog: published at once by the platform's own process.
        backlog = p["backlog"]
        before = read_redis(dep)
        platform = publisher.start(dep.env, backlog, 1, (BIG,))

        def intake_done() -> bool:
            return (
                platform.poll() is not None
                and _ledgered(dep, BIG) >= backlog
                and _changes_left(dep) == 0
                and not dep.redis.hlen(dep.key("buf", BIG, "entries"))
            )

        keys = probe.run(0, until=intake_done)
        after = read_redis(dep)
        publisher.seconds_taken(platform)
        out["intake_latency"] = _stats(probe.latencies(keys, timeout=300))
        out["intake_intake"] = _stats(probe.intake_delays(keys))
        out["intake_seconds"] = after.at - before.at
        out["intake_cpu"] = (after.cpu_seconds - before.cpu_seconds) - idle_cpu * (
            after.at - before.at
        )
        out["intake_ops"] = after.commands - before.commands

        # Beside the backlog: it waits on the cap alone now.
        calls_before, sent_before, first = (
            sandbox_calls(dep, BIG),
            submitted(dep, [BIG]),
            read_redis(dep),
        )
        with BatchWatch(dep, first_id=1000) as watch:
            keys = _probe_round(probe, watch, fleet.batch, p["gifts"])
            out["latency"] = _stats(probe.latencies(keys, timeout=120))
            out["latency_intake"] = _stats(probe.intake_delays(keys))
            out["batch"] = watch.delays(timeout=p["batch_wait"] + 60)
        last = read_redis(dep)
        sent = submitted(dep, [BIG]) - sent_before
        span = last.at - first.at
        out["big_share"] = (sandbox_calls(dep, BIG) - calls_before) / (
            span * p["cap"] / p["window"]
        )
        out["left"] = backlog - submitted(dep, [BIG])
        out["drain_cpu"] = ((last.cpu_seconds - first.cpu_seconds) - idle_cpu * span, sent)
        dep.stop()
        # The benchmark's own Redis: emptied at once rather than key by key on the way out.
        dep.redis.flushdb()
    return out


def _cap_lifted(count: int) -> dict[str, Any]:
    """Redis's CPU per gift where nothing waits on a cap: publish to submitted, batch mode."""
    names = ("batch-a", "batch-b", "batch-c")
    fleet = Fleet(None, (), names, batch_wait=1.0)
    with bench_deployment(fleet.tenants_file, fleet.sandbox_config(), env=fleet.env()) as (
        dep,
        _server,
    ):
        _start(dep)
        warm = 300
        publisher.seconds_taken(publisher.start(dep.env, warm, 1, names))
        wait_for(lambda: submitted(dep, list(names)) >= warm, timeout=120, what="the warm-up")
        first = read_redis(dep)
        platform = publisher.start(dep.env, count, 1_000_000, names)
        wait_for(
            lambda: submitted(dep, list(names)) >= warm + count,
            timeout=count / 100 + 60,
            interval=0.02,
            what="every gift submitted",
        )
        last = read_redis(dep)
        publisher.seconds_taken(platform)
        dep.stop()
    span = last.at - first.at
    cpu = last.cpu_seconds - first.cpu_seconds
    return {
        "gifts": count,
        "rate": count / span,
        "cpu_share": cpu / span,
        "cpu_us": 1e6 * cpu / count,
        "commands": (last.commands - first.commands) / count,
    }


def run(quick: bool) -> Result:
    """Run benchmark 7."""
    p = _params(quick)
    result = Result(
        NAME,
        TITLE,
        params={
            **p,
            "workers": f"1 x ({PROCESSES} processes, {THREADS} threads)",
            "gap_seconds": 0.1,
        },
    )
    one = _one_tenant(p)
    many = _many(p)
    lifted = _cap_lifted(p["lifted_gifts"])
    _report(result, p, one, many, lifted)
    return result


def _report(
    result: Result,
    p: dict[str, Any],
    one: dict[str, Any],
    many: dict[str, Any],
    lifted: dict[str, Any],
) -> None:
    add = result.add
    add("real-time p50, one tenant configured", one["latency"][0], "ms")
    add("real-time p99, one tenant configured", one["latency"][1], "ms")
    p50, p99, worst = many["latency"]
    add("real-time p50 beside the backlog", p50, "ms")
    add(
        "real-time p99 beside the backlog",
        p99,
        "ms",
        "< 250 ms",
        None if p["tenants"] < 1000 else p99 < 250,
    )
    add("real-time max beside the backlog", worst, "ms")
    add("p99 beside the backlog / one tenant", p99 / one["latency"][1], "x")
    add("real-time p99, every tenant idle", many["idle_latency"][1], "ms")
    add("real-time p99 during the backlog's intake", many["intake_latency"][1], "ms")
    batch = sorted(many["batch"])
    wait = p["batch_wait"]
    add(
        "batch publish to submitted beside the backlog, median",
        percentile(batch, 0.5),
        f"s (max wait {wait:g} s)",
    )
    add(
        "batch publish to submitted beside the backlog, max",
        batch[-1],
        f"s (max wait {wait:g} s)",
        f"<= {wait + 2:g} s",
        None if p["tenants"] < 1000 else batch[-1] <= wait + 2,
    )
    add("batch publish to submitted, every tenant idle, max", max(many["idle_batch"]), "s")
    add(
        "big tenant's gifts still waiting at the end",
        many["left"],
        "gifts",
        "> 0",
        many["left"] > 0,
    )
    add("big tenant's calls during the measurement / its cap", many["big_share"], "")
    add("worker start, one tenant", one["start"], "s")
    add("worker start, every tenant", many["start"], "s")
    add("Redis commands/s idle, one tenant", one["ops"], "/s")
    add("Redis commands/s idle, every tenant", many["ops"], "/s")
    add("Redis CPU idle, one tenant", 100 * one["redis_cpu"], "% of a core")
    add("Redis CPU idle, every tenant", 100 * many["redis_cpu"], "% of a core")
    add("worker CPU idle, one tenant", 100 * one["worker_cpu"], "% of a core")
    add("worker CPU idle, every tenant", 100 * many["worker_cpu"], "% of a core")
    add("Redis memory, one tenant", one["memory"], "MiB")
    add("Redis memory, every tenant idle", many["memory"], "MiB")
    add("worker RSS, one tenant", one["rss"], "MiB")
    add("worker RSS, every tenant", many["rss"], "MiB")
    add("scheduler pull pass over every tenant", 1000 * many["pull_pass"], "ms")
    state_seconds, counter_seconds, series = many["scrape"]
    add("/metrics scrape, Redis-held gauges", state_seconds, "s")
    add("/metrics scrape, worker counters", counter_seconds, f"s ({series:,} series)")
    intake_us = 1e6 * many["intake_cpu"] / p["backlog"]
    drain_cpu, drained = many["drain_cpu"]
    drain_us = 1e6 * drain_cpu / max(drained, 1)
    add("cap lifted: gifts/s, publish to submitted", lifted["rate"], "gifts/s")
    add("cap lifted: Redis CPU", 100 * lifted["cpu_share"], "% of a core")
    add("cap lifted: Redis CPU per gift", lifted["cpu_us"], "µs")
    add("one Redis's ceiling at 100% CPU", 1e6 / lifted["cpu_us"], "gifts/s")

    def ms(values: tuple[float, float, float]) -> str:
        return "/".join(f"{v:,.0f}" for v in values) + " ms"

    result.notes += [
        f"{p['tenants']:,} tenants: {BIG} (batch, {p['cap']} calls per {p['window']:g} s, "
        f"{p['backlog']:,} gifts), {p['batch_tenants']} small batch tenants (max wait "
        f"{p['batch_wait']:g} s), the rest real time; real-time gifts round-robin over "
        f"{p['sample']} of them, one every 100 ms, {p['gifts']} per measurement",
        f"real-time p50/p99/max, publish to Gift created (of which publish to the ledger "
        f"record: the changes queue and intake): every tenant idle {ms(many['idle_latency'])} "
        f"({ms(many['idle_intake'])}); during the backlog's intake "
        f"{ms(many['intake_latency'])} ({ms(many['intake_intake'])}); beside the backlog "
        f"{ms(many['latency'])} ({ms(many['latency_intake'])})",
        f"intake of the backlog: {many['intake_seconds']:.1f} s, "
        f"{many['intake_ops'] / p['backlog']:.1f} Redis commands and {intake_us:.0f} µs of "
        f"Redis CPU per gift (less the idle rate); while it drained at the cap, "
        f"{drain_us:.0f} µs per gift submitted ({drained:,} of them, throttled batches' "
        f"wake-ups and this run's probes included)",
        f"cap lifted: {lifted['gifts']:,} gifts over 3 batch tenants, 2 processes x 8 threads, "
        f"{lifted['commands']:.1f} Redis commands per gift",
    ]
